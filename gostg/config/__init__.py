"""The config model is plain data with GOST's keys (what YAML/JSON load into, what -O prints
and what the Web API reads and writes); ``build`` turns it into live objects."""

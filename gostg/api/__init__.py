"""The Web API: GOST's /config REST endpoints as a WSGI app, served by gevent.pywsgi."""

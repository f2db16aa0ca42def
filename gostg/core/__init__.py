"""The GOST model without transport code: service, hooks, chain/hop/node, router, selector,
registries and the interfaces every implementation meets."""

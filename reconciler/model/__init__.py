"""model: what the configuration repository means, and the plain data stages exchange.

It owns the desired-state kinds, the YAML loader with line numbers, cross-reference
validation and JSON Schema export; also the plain data types other stages exchange
(versions, observed facts).

Pure: it reads files only in the loader. It must never talk to a device, a forge or Git,
and never import another stage.
"""

__all__: list[str] = []

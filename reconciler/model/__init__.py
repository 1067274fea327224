"""model: the desired-state kinds, the YAML loader with line numbers, cross-reference
validation and JSON Schema export; also the plain data types other stages exchange
(versions, observed facts).

Pure: it reads files only in the loader, and never talks to a device, a forge or Git.
"""

"""The default configuration and schema, shipped as the package data ``streamer.defaults``
(pyproject.toml maps this folder there); read with importlib.resources."""

"""The package version, in a module of its own so that nothing needs `svqcast/__init__.py` to read it."""

__version__ = "0.1.0"

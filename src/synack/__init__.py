"""synack: TCP implemented in pure Python, sans-I/O core."""

__version__ = "0.1.0"

"""ross3d-model."""

__version__ = "0.1.0"

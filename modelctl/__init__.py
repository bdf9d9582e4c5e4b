"""modelctl: a command-line model hub manager for local GGUF models."""

__version__ = "0.1.0"

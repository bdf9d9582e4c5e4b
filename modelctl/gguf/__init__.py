"""GGUF files as data: ggml's quant type tables and a safe header reader (local files and HTTP ranges).

Imports only modelctl.core."""

"""modelctl's bundled inference runtime: NumPy plus Cython kernels on GGUF quantized blocks."""

"""Random but valid quantized tensors: for kernel tests, benchmarks and synthetic models.

Random bytes are valid blocks for every ggml type except for their float16
scale fields, which are set to values in a sane range (never NaN, inf, zero
or huge), so the tensors behave like real weights.
"""

from __future__ import annotations

import numpy as np

from modelctl.gguf.quants import GGML_TYPES_BY_NAME

# byte offsets of the float16 scale fields (d, m, dmin) inside one block
F16_FIELDS: dict[str, tuple[int, ...]] = {
    "Q4_0": (0,), "Q4_1": (0, 2), "Q5_0": (0,), "Q5_1": (0, 2), "Q8_0": (0,), "IQ4_NL": (0,),
    "Q2_K": (80, 82), "Q3_K": (108,), "Q4_K": (0, 2), "Q5_K": (0, 2), "Q6_K": (208,), "IQ4_XS": (0,),
}


def random_data(type_name: str, rows: int, cols: int, rng: np.random.Generator,
                scale: tuple[float, float] = (1e-3, 2e-2)) -> np.ndarray:
    """Flat uint8 bytes of a ``rows x cols`` tensor of type ``type_name`` with random contents."""
    t = GGML_TYPES_BY_NAME[type_name]
    if type_name == "F32":
        return rng.standard_normal((rows, cols), dtype=np.float32).reshape(-1).view(np.uint8)
    if type_name == "F16":
        return rng.standard_normal((rows, cols), dtype=np.float32).astype(np.float16).reshape(-1).view(np.uint8)
    if type_name == "BF16":
        bits = rng.standard_normal((rows, cols), dtype=np.float32).view(np.uint32) >> np.uint32(16)
        return bits.astype(np.uint16).reshape(-1).view(np.uint8)
    if type_name not in F16_FIELDS:
        raise ValueError(f"no random generator for {type_name}")
    if cols % t.block_size:
        raise ValueError(f"{cols} columns is not a multiple of the {type_name} block size {t.block_size}")
    nb = cols // t.block_size
    data = rng.integers(0, 256, (rows, nb, t.type_size), dtype=np.uint8)
    for off in F16_FIELDS[type_name]:
        d = rng.uniform(*scale, (rows, nb, 1)).astype(np.float16)
        data[:, :, off:off + 2] = d.view(np.uint8)
    return data.reshape(-1)


def random_tensor(type_name: str, rows: int, cols: int, rng: np.random.Generator, name: str = "w"):
    """A QTensor (ggml shape ``(cols, rows)``) over freshly generated random bytes."""
    from modelctl.runtime.loader import QTensor

    t = GGML_TYPES_BY_NAME[type_name]
    return QTensor(name, t.id, (cols, rows), random_data(type_name, rows, cols, rng))

"""The ggml tensor types and GGUF file types, as data.

Block layouts follow ggml (ggml-common.h): ``block_size`` weights are stored
in ``type_size`` bytes.  Nothing here imports numpy.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GGMLType:
    id: int
    name: str
    block_size: int  # weights per block
    type_size: int   # bytes per block

    @property
    def bits_per_weight(self) -> float:
        return self.type_size * 8 / self.block_size

    def row_bytes(self, n: int) -> int:
        """Bytes of a row of ``n`` weights (``n`` must be a multiple of block_size)."""
        return (n // self.block_size) * self.type_size


# id, name, weights per block, bytes per block  (ggml's type_traits)
_TYPES = [
    (0, "F32", 1, 4),
    (1, "F16", 1, 2),
    (2, "Q4_0", 32, 18),
    (3, "Q4_1", 32, 20),
    (6, "Q5_0", 32, 22),
    (7, "Q5_1", 32, 24),
    (8, "Q8_0", 32, 34),
    (9, "Q8_1", 32, 36),
    (10, "Q2_K", 256, 84),
    (11, "Q3_K", 256, 110),
    (12, "Q4_K", 256, 144),
    (13, "Q5_K", 256, 176),
    (14, "Q6_K", 256, 210),
    (15, "Q8_K", 256, 292),
    (16, "IQ2_XXS", 256, 66),
    (17, "IQ2_XS", 256, 74),
    (18, "IQ3_XXS", 256, 98),
    (19, "IQ1_S", 256, 50),
    (20, "IQ4_NL", 32, 18),
    (21, "IQ3_S", 256, 110),
    (22, "IQ2_S", 256, 82),
    (23, "IQ4_XS", 256, 136),
    (24, "I8", 1, 1),
    (25, "I16", 1, 2),
    (26, "I32", 1, 4),
    (27, "I64", 1, 8),
    (28, "F64", 1, 8),
    (29, "IQ1_M", 256, 56),
    (30, "BF16", 1, 2),
    (34, "TQ1_0", 256, 54),
    (35, "TQ2_0", 256, 66),
    (39, "MXFP4", 32, 17),
]

GGML_TYPES: dict[int, GGMLType] = {t[0]: GGMLType(*t) for t in _TYPES}
GGML_TYPES_BY_NAME: dict[str, GGMLType] = {t.name: t for t in GGML_TYPES.values()}

# general.file_type values (llama.cpp's llama_ftype) -> the quant name people use.
FILE_TYPES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
    10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M",
    16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S",
    22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M",
    28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0",
    37: "TQ2_0", 38: "MXFP4_MOE",
}


def tensor_nbytes(type_id: int, shape: tuple[int, ...] | list[int]) -> int:
    """Bytes of a tensor of ggml type ``type_id`` and ggml shape ``shape`` (ne0 first).

    Raises ``ValueError`` for an unknown type or a first dimension that is not
    a whole number of blocks.
    """
    t = GGML_TYPES.get(type_id)
    if t is None:
        raise ValueError(f"unknown ggml type id {type_id}")
    if not shape:
        return t.type_size
    ne0 = shape[0]
    if ne0 % t.block_size:
        raise ValueError(f"first dimension {ne0} is not a multiple of the {t.name} block size {t.block_size}")
    n = 1
    for d in shape[1:]:
        n *= d
    return (ne0 // t.block_size) * t.type_size * n

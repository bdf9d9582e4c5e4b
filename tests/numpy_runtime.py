"""TEMPORARY test-only stand-in for the kernels branch's loader and kernels API.

Until ``modelctl/runtime/loader.py`` and ``kernels.py`` land on main, the model
tests run the forward pass against this NumPy implementation of the brief's API
(dequantizing with ``gguf.quants``: slow, float32 copies — never shipped).
``install()`` does nothing once the real modules exist.
"""

from __future__ import annotations

import importlib
import sys
import types
from dataclasses import dataclass

import numpy as np


@dataclass
class QTensor:
    name: str
    type_id: int
    shape: tuple
    data: np.ndarray

    @property
    def rows(self) -> int:
        return int(np.prod(self.shape[1:])) if len(self.shape) > 1 else 1

    @property
    def cols(self) -> int:
        return int(self.shape[0])


class GGUFFile:
    def __init__(self, path):
        from modelctl.gguf_reader import read_header

        self.header = read_header(path)
        self.metadata = self.header.metadata
        self._mm = np.memmap(path, dtype=np.uint8, mode="r")
        base = self.header.data_offset
        self.tensors = {t.name: QTensor(t.name, t.type_id, tuple(t.shape),
                                        self._mm[base + t.offset: base + t.offset + t.nbytes])
                        for t in self.header.tensors}
        self._deq = {}

    @classmethod
    def open(cls, path):
        return cls(path)

    def close(self):
        self._mm = None


_DEQ: dict = {}


def dequantize(W):
    key = (W.name, W.data.__array_interface__["data"][0])
    if key not in _DEQ:
        from gguf import GGMLQuantizationType
        from gguf.quants import dequantize as deq

        _DEQ[key] = np.ascontiguousarray(
            deq(W.data.reshape(W.rows, -1), GGMLQuantizationType(W.type_id)).reshape(W.rows, W.cols),
            dtype=np.float32)
    return _DEQ[key]


def matvec(W, x, out=None, n_threads=None):
    return dequantize(W) @ np.asarray(x, np.float32)


def matmul(W, X, out=None, n_threads=None):
    return np.asarray(X, np.float32) @ dequantize(W).T


def get_rows(W, ids):
    return dequantize(W)[np.asarray(ids)].copy()


def install() -> None:
    try:
        importlib.import_module("modelctl.runtime.kernels")
        importlib.import_module("modelctl.runtime.loader")
        return
    except ImportError:
        pass
    import modelctl.runtime as rt

    k = types.ModuleType("modelctl.runtime.kernels")
    k.matvec, k.matmul, k.get_rows, k.dequantize = matvec, matmul, get_rows, dequantize
    lo = types.ModuleType("modelctl.runtime.loader")
    lo.GGUFFile, lo.QTensor = GGUFFile, QTensor
    sys.modules["modelctl.runtime.kernels"] = rt.kernels = k
    sys.modules["modelctl.runtime.loader"] = rt.loader = lo

"""Open a GGUF model for the runtime: the header through the project's reader,
the tensor data memory-mapped read-only and exposed as zero-copy views.

Nothing is copied or dequantized here: a tensor's ``data`` is a uint8 NumPy
view over the mapping, so resident memory grows only as the kernels touch
the weights (and the kernel's page cache can drop them again under pressure).

Split models (``name-00001-of-00003.gguf``, with ``split.count``/``split.no``
metadata) load as one model from any of their parts.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from modelctl.core.errors import GGUFError, NotFoundError
from modelctl.gguf.names import SHARD_RE, shard_set
from modelctl.gguf.reader import GGUFHeader, read_header
from modelctl.gguf.quants import GGML_TYPES, GGMLType



@dataclass
class QTensor:
    """A tensor as stored in the file: ggml type, ggml shape (ne0 first), raw bytes.

    ``data`` is a flat uint8 array of ``rows * row_bytes`` bytes; row ``i``
    (``cols`` weights) starts at byte ``i * row_bytes``.
    """

    name: str
    type_id: int
    shape: tuple[int, ...]
    data: np.ndarray

    @property
    def type(self) -> GGMLType:
        return GGML_TYPES[self.type_id]

    @property
    def cols(self) -> int:
        return int(self.shape[0])

    @property
    def rows(self) -> int:
        n = 1
        for d in self.shape[1:]:
            n *= int(d)
        return n

    @property
    def row_bytes(self) -> int:
        return self.type.row_bytes(self.cols)

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)

    def __repr__(self) -> str:
        return f"QTensor({self.name!r}, {self.type.name}, shape={self.shape})"


def split_paths(path: Path, header: GGUFHeader) -> list[Path]:
    """All parts of a split model, in order, given any one part and its header."""
    count = header.get("split.count")
    if count is None or count == 1:
        return [path]
    m = SHARD_RE.match(path.name)
    if not isinstance(count, int) or count < 1 or m is None:
        raise GGUFError(f"split.count is {count!r} but the file name does not end in -NNNNN-of-NNNNN.gguf",
                        where=str(path), hint="keep the parts' original names")
    if int(m["count"]) != count:
        raise GGUFError(f"file name says {int(m['count'])} parts but split.count is {count}", where=str(path))
    return [path.with_name(n) for n in shard_set(path.name)]


class GGUFFile:
    """An open GGUF model: ``header``, ``metadata``, ``tensors`` (name -> QTensor)."""

    def __init__(self, paths: list[Path], headers: list[GGUFHeader], maps: list[mmap.mmap],
                 tensors: dict[str, QTensor]):
        self.paths = paths
        self.headers = headers
        self._maps = maps
        self.tensors = tensors
        # The first part carries the model's metadata; its tensor list is
        # extended with the other parts' (their offsets are relative to their own part).
        first = headers[0]
        self.header = first if len(headers) == 1 else replace(
            first, tensors=[t for h in headers for t in h.tensors])

    @property
    def metadata(self) -> dict:
        return self.header.metadata

    @property
    def path(self) -> Path:
        return self.paths[0]

    @property
    def file_size(self) -> int:
        return sum(h.file_size or 0 for h in self.headers)

    @classmethod
    def open(cls, path: str | os.PathLike) -> "GGUFFile":
        path = Path(path)
        first_header = read_header(path)
        paths = split_paths(path, first_header)
        headers: list[GGUFHeader] = []
        for i, p in enumerate(paths):
            if not p.is_file():
                raise NotFoundError(f"part {i + 1} of {len(paths)} of a split model is missing", where=str(p),
                                    hint="download every part into the same folder")
            h = first_header if p == path else read_header(p)
            no = h.get("split.no", 0)
            if len(paths) > 1 and no != i:
                raise GGUFError(f"split.no is {no!r}, expected {i}", where=str(p))
            headers.append(h)
        maps: list[mmap.mmap] = []
        tensors: dict[str, QTensor] = {}
        try:
            for p, h in zip(paths, headers):
                mm = _map(p, h)
                maps.append(mm)
                for t in h.tensors:
                    if t.name in tensors:
                        raise GGUFError(f"tensor {t.name!r} appears in two parts", where=str(p))
                    data = np.frombuffer(mm, dtype=np.uint8, count=t.nbytes, offset=h.data_offset + t.offset) \
                        if t.nbytes else np.zeros(0, np.uint8)
                    tensors[t.name] = QTensor(t.name, t.type_id, tuple(int(d) for d in t.shape), data)
        except BaseException:
            tensors.clear()
            for mm in maps:
                _close_map(mm)
            raise
        if len(paths) > 1:
            expected = headers[0].get("split.tensors.count")
            if isinstance(expected, int) and expected != len(tensors):
                raise GGUFError(f"split.tensors.count is {expected} but the parts hold {len(tensors)} tensors",
                                where=str(paths[0]))
        return cls(paths, headers, maps, tensors)

    def close(self) -> None:
        """Drop the tensors and unmap (a mapping still viewed elsewhere is left to the GC)."""
        self.tensors = {}
        for mm in self._maps:
            _close_map(mm)
        self._maps = []

    def __enter__(self) -> "GGUFFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"GGUFFile({str(self.path)!r}, {len(self.tensors)} tensors, {len(self.paths)} part(s))"


def _map(path: Path, header: GGUFHeader) -> mmap.mmap:
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if header.file_size is not None and size != header.file_size:
            raise GGUFError("the file changed while it was being opened", where=str(path))
        if size == 0:
            raise GGUFError("empty file", where=str(path))
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def _close_map(mm: mmap.mmap) -> None:
    try:
        mm.close()
    except BufferError:
        pass  # views still exist; the mapping goes away with them

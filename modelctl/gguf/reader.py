"""A streaming, hardened GGUF header reader: metadata and tensor infos, no tensor data.

One implementation for the whole project (recommend, show, the runtime loader,
the tokenizer).  It reads from a ``ByteSource``: a local file (``FileSource``)
or a URL through HTTP range requests (``HTTPSource``), fetching only the bytes
the header needs.  Malformed, truncated or hostile input raises ``GGUFError``;
memory stays bounded by ``Limits``.

GGUF layout (v2/v3, little-endian): magic "GGUF", u32 version, u64 tensor
count, u64 metadata count, metadata key/values, tensor infos, padding to
``general.alignment``, tensor data.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import Any

from modelctl.core.errors import GGUFError, NotFoundError
from modelctl.gguf.quants import GGML_TYPES, GGMLType, tensor_nbytes

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32

# GGUF metadata value types
T_UINT8, T_INT8, T_UINT16, T_INT16, T_UINT32, T_INT32, T_FLOAT32, T_BOOL, T_STRING, T_ARRAY, \
    T_UINT64, T_INT64, T_FLOAT64 = range(13)

_SCALAR = {
    T_UINT8: "B", T_INT8: "b", T_UINT16: "H", T_INT16: "h", T_UINT32: "I", T_INT32: "i",
    T_FLOAT32: "f", T_BOOL: "?", T_UINT64: "Q", T_INT64: "q", T_FLOAT64: "d",
}
VALUE_TYPE_NAMES = {
    T_UINT8: "uint8", T_INT8: "int8", T_UINT16: "uint16", T_INT16: "int16", T_UINT32: "uint32",
    T_INT32: "int32", T_FLOAT32: "float32", T_BOOL: "bool", T_STRING: "string", T_ARRAY: "array",
    T_UINT64: "uint64", T_INT64: "int64", T_FLOAT64: "float64",
}


@dataclass(frozen=True)
class Limits:
    """Bounds that keep a hostile header from costing time or memory."""

    max_tensors: int = 1 << 20
    max_kv: int = 1 << 16
    max_key_len: int = 1 << 16
    max_string_len: int = 1 << 24       # 16 MiB (chat templates are KBs)
    max_array_len: int = 1 << 24        # elements (the largest vocabularies are ~262k tokens)
    max_dims: int = 8
    max_array_depth: int = 4
    max_header_bytes: int = 1 << 28     # what the header may make us read in all (real ones: < 20 MB)


# ---------------------------------------------------------------------------
# byte sources
# ---------------------------------------------------------------------------


class ByteSource:
    """Random-access bytes: ``read(offset, size)`` returns at most ``size`` bytes."""

    name: str = "?"
    size: int | None = None
    bytes_read: int = 0

    def read(self, offset: int, size: int) -> bytes:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class FileSource(ByteSource):
    def __init__(self, path: str | os.PathLike):
        self.name = os.fspath(path)
        try:
            self._fd = os.open(self.name, os.O_RDONLY)
        except FileNotFoundError:
            raise NotFoundError("no such file", where=self.name) from None
        except IsADirectoryError:
            raise GGUFError("is a directory, not a GGUF file", where=self.name) from None
        except OSError as exc:
            raise GGUFError(f"cannot open: {exc.strerror}", where=self.name) from None
        self.size = os.fstat(self._fd).st_size
        self.bytes_read = 0

    def read(self, offset: int, size: int) -> bytes:
        data = os.pread(self._fd, size, offset)
        self.bytes_read += len(data)
        return data

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class BytesSource(ByteSource):
    """Bytes already in memory (a header fetched elsewhere, tests).  ``size`` may
    exceed ``len(data)`` to stand for a file whose tail (the tensor data) is not
    held: reads past the held bytes return zeros up to ``size``."""

    def __init__(self, data: bytes, name: str = "<bytes>", size: int | None = None):
        self.data = bytes(data)
        self.name = name
        self.size = len(self.data) if size is None else max(size, len(self.data))
        self.bytes_read = 0

    def read(self, offset: int, size: int) -> bytes:
        end = min(offset + size, self.size)
        if offset >= end:
            return b""
        chunk = self.data[offset:end]
        chunk += bytes(end - offset - len(chunk))
        self.bytes_read += len(chunk)
        return chunk


class HTTPSource(ByteSource):
    """Bytes of a URL through HTTP ``Range`` requests (urllib; follows redirects).

    ``size`` is learnt from the first response's ``Content-Range``.  A server
    that ignores ``Range`` is read from the start only as far as needed.
    """

    def __init__(self, url: str, headers: dict[str, str] | None = None, timeout: float = 30.0):
        self.name = url
        self.url = url
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.size = None
        self.bytes_read = 0
        self.requests = 0

    def read(self, offset: int, size: int) -> bytes:
        from modelctl.core import http

        if size <= 0:
            return b""
        if self.size is not None and offset >= self.size:
            return b""
        self.requests += 1
        try:
            with http.urlopen(self.url, headers={**self.headers, "Range": f"bytes={offset}-{offset + size - 1}"},
                              timeout=self.timeout, ok=(416,)) as resp:
                status = resp.status
                if status == 416:
                    return b""
                crange = resp.headers.get("Content-Range", "")
                if status == 206:
                    if "/" in crange:
                        total = crange.rsplit("/", 1)[1].strip()
                        if total.isdigit():
                            self.size = int(total)
                    data = resp.read(size)
                else:
                    # No range support: skip to offset, read what we need, hang up.
                    length = resp.headers.get("Content-Length")
                    if length and length.isdigit():
                        self.size = int(length)
                    remaining = offset
                    while remaining > 0:
                        chunk = resp.read(min(remaining, 1 << 20))
                        if not chunk:
                            return b""
                        self.bytes_read += len(chunk)
                        remaining -= len(chunk)
                    data = resp.read(size)
        except OSError as exc:  # the connection broke while the body was read
            raise http.unreachable(exc, where=self.url) from None
        self.bytes_read += len(data)
        return data


def open_source(location: str | os.PathLike, headers: dict[str, str] | None = None) -> ByteSource:
    loc = os.fspath(location)
    if loc.startswith(("http://", "https://")):
        return HTTPSource(loc, headers=headers)
    return FileSource(loc)


# ---------------------------------------------------------------------------
# the parsed header
# ---------------------------------------------------------------------------


@dataclass
class TensorInfo:
    name: str
    shape: tuple[int, ...]   # ggml order: ne[0] (the contiguous dimension) first
    type_id: int
    offset: int              # relative to the start of the tensor data
    nbytes: int

    @property
    def type(self) -> GGMLType:
        return GGML_TYPES[self.type_id]

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass
class GGUFHeader:
    source: str
    version: int
    metadata: dict[str, Any]
    tensors: list[TensorInfo]
    alignment: int
    data_offset: int              # absolute file offset of the tensor data
    file_size: int | None
    header_bytes_read: int = 0
    value_types: dict[str, str] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)

    @property
    def architecture(self) -> str | None:
        arch = self.metadata.get("general.architecture")
        return arch if isinstance(arch, str) else None

    def arch_get(self, suffix: str, default: Any = None) -> Any:
        """``{arch}.{suffix}``, e.g. ``arch_get("block_count")``."""
        arch = self.architecture
        if arch is None:
            return default
        return self.metadata.get(f"{arch}.{suffix}", default)

    def tensor(self, name: str) -> TensorInfo | None:
        for t in self.tensors:
            if t.name == name:
                return t
        return None

    @property
    def tensor_data_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)


# ---------------------------------------------------------------------------
# parsing
# ---------------------------------------------------------------------------


class _Cursor:
    """Sequential reads over a ByteSource with a growing read-ahead buffer."""

    def __init__(self, source: ByteSource, limits: Limits, first_chunk: int = 1 << 20):
        self.src = source
        self.limits = limits
        self.buf = b""
        self.buf_start = 0
        self.pos = 0
        self.chunk = first_chunk

    def _fill(self, n: int) -> None:
        end = self.pos + n
        have_end = self.buf_start + len(self.buf)
        if end <= have_end:
            return
        if end > self.limits.max_header_bytes:
            raise GGUFError(f"header larger than {self.limits.max_header_bytes} bytes", where=self.src.name)
        if self.src.size is not None and end > self.src.size:
            raise GGUFError(f"truncated header: needs byte {end} but the file has {self.src.size}",
                            where=self.src.name, hint="the download may be incomplete")
        keep = self.buf[self.pos - self.buf_start:]
        want = max(end - have_end, self.chunk)
        self.chunk = min(self.chunk * 2, 16 << 20)
        data = self.src.read(have_end, want)
        if len(data) < end - have_end:
            raise GGUFError("truncated header: the file ends inside the metadata", where=self.src.name,
                            hint="the download may be incomplete")
        self.buf = keep + data
        self.buf_start = self.pos

    def take(self, n: int) -> bytes:
        self._fill(n)
        i = self.pos - self.buf_start
        self.pos += n
        return self.buf[i:i + n]

    def unpack(self, fmt: str):
        size = struct.calcsize("<" + fmt)
        self._fill(size)
        i = self.pos - self.buf_start
        self.pos += size
        return struct.unpack_from("<" + fmt, self.buf, i)

    def remaining(self) -> int | None:
        return None if self.src.size is None else self.src.size - self.pos


def _read_string(cur: _Cursor, max_len: int, what: str) -> str:
    (n,) = cur.unpack("Q")
    if n > max_len:
        raise GGUFError(f"{what} length {n} exceeds the limit of {max_len}", where=cur.src.name)
    rem = cur.remaining()
    if rem is not None and n > rem:
        raise GGUFError(f"{what} length {n} runs past the end of the file", where=cur.src.name)
    # surrogateescape keeps invalid UTF-8 recoverable (tokenizer pieces are bytes).
    return cur.take(n).decode("utf-8", errors="surrogateescape")


def _read_value(cur: _Cursor, vtype: int, key: str, depth: int = 0) -> Any:
    lim = cur.limits
    if vtype in _SCALAR:
        (v,) = cur.unpack(_SCALAR[vtype])
        return v
    if vtype == T_STRING:
        return _read_string(cur, lim.max_string_len, f"string value of {key!r}")
    if vtype == T_ARRAY:
        if depth >= lim.max_array_depth:
            raise GGUFError(f"arrays nested deeper than {lim.max_array_depth} in {key!r}", where=cur.src.name)
        etype, count = cur.unpack("IQ")
        if count > lim.max_array_len:
            raise GGUFError(f"array {key!r} has {count} elements, over the limit of {lim.max_array_len}",
                            where=cur.src.name)
        rem = cur.remaining()
        if etype in _SCALAR:
            item = struct.calcsize("<" + _SCALAR[etype])
            if rem is not None and count * item > rem:
                raise GGUFError(f"array {key!r} runs past the end of the file", where=cur.src.name)
            out: list = []
            step = 1 << 16
            done = 0
            while done < count:
                n = min(step, count - done)
                out.extend(cur.unpack(f"{n}{_SCALAR[etype]}"))
                done += n
            return out
        if etype == T_STRING:
            if rem is not None and count * 8 > rem:
                raise GGUFError(f"array {key!r} runs past the end of the file", where=cur.src.name)
            return [_read_string(cur, lim.max_string_len, f"element of {key!r}") for _ in range(count)]
        if etype == T_ARRAY:
            if rem is not None and count * 12 > rem:
                raise GGUFError(f"array {key!r} runs past the end of the file", where=cur.src.name)
            return [_read_value(cur, T_ARRAY, key, depth + 1) for _ in range(count)]
        raise GGUFError(f"array {key!r} has unknown element type {etype}", where=cur.src.name)
    raise GGUFError(f"metadata {key!r} has unknown value type {vtype}", where=cur.src.name)


def read_header(source: ByteSource | str | os.PathLike, limits: Limits = Limits()) -> GGUFHeader:
    """Parse the header of a GGUF file or URL.  Raises ``GGUFError`` on bad input."""
    own = not isinstance(source, ByteSource)
    src = open_source(source) if own else source
    try:
        return _parse(src, limits)
    finally:
        if own:
            src.close()


def _parse(src: ByteSource, lim: Limits) -> GGUFHeader:
    """The header of a GGUF file: its fixed part, the metadata, the tensor infos, each checked against
    ``lim`` and the file's size before anything is trusted."""
    cur = _Cursor(src, lim)
    version, n_tensors, n_kv = _read_preamble(cur, src.name, lim)
    metadata, vtypes = _read_metadata(cur, n_kv, src.name, lim)
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or isinstance(alignment, bool) or alignment <= 0 \
            or alignment & (alignment - 1) or alignment > (1 << 20):
        raise GGUFError(f"bad general.alignment {alignment!r} (must be a power of two)", where=src.name)
    tensors = [_read_tensor_info(cur, src.name, lim, alignment) for _ in range(n_tensors)]
    data_offset = -(-cur.pos // alignment) * alignment
    _check_layout(tensors, data_offset, src.size, src.name)
    return GGUFHeader(
        source=src.name, version=version, metadata=metadata, tensors=tensors, alignment=alignment,
        data_offset=data_offset, file_size=src.size, header_bytes_read=src.bytes_read, value_types=vtypes,
    )


def _read_preamble(cur: _Cursor, where: str, lim: Limits) -> tuple[int, int, int]:
    """(version, tensor count, metadata count) after the magic."""
    try:
        magic = cur.take(4)
    except GGUFError:
        raise GGUFError("not a GGUF file (too short)", where=where) from None
    if magic != MAGIC:
        raise GGUFError(f"not a GGUF file (magic {magic!r}, expected b'GGUF')", where=where,
                        hint="pick the .gguf file, not a safetensors/bin file")
    (version,) = cur.unpack("I")
    if version == 1:
        raise GGUFError("GGUF version 1 is not supported", where=where,
                        hint="convert the file with a current llama.cpp")
    if version not in (2, 3):
        raise GGUFError(f"unsupported GGUF version {version}", where=where)
    n_tensors, n_kv = cur.unpack("QQ")
    if n_tensors > lim.max_tensors:
        raise GGUFError(f"tensor count {n_tensors} exceeds the limit of {lim.max_tensors}", where=where)
    if n_kv > lim.max_kv:
        raise GGUFError(f"metadata count {n_kv} exceeds the limit of {lim.max_kv}", where=where)
    rem = cur.remaining()
    if rem is not None and n_kv * 12 + n_tensors * 28 > rem:
        raise GGUFError("header counts run past the end of the file", where=where)
    return version, n_tensors, n_kv


def _read_metadata(cur: _Cursor, n_kv: int, where: str, lim: Limits) -> tuple[dict[str, Any], dict[str, str]]:
    """(key -> value, key -> value type name) of the metadata section; a repeated key is refused."""
    metadata: dict[str, Any] = {}
    vtypes: dict[str, str] = {}
    for _ in range(n_kv):
        key = _read_string(cur, lim.max_key_len, "metadata key")
        if key in metadata:
            raise GGUFError(f"duplicate metadata key {key!r}", where=where)
        (vtype,) = cur.unpack("I")
        value = _read_value(cur, vtype, key)
        if vtype == T_ARRAY and isinstance(value, list):
            vtypes[key] = "array"
        else:
            vtypes[key] = VALUE_TYPE_NAMES.get(vtype, "?")
        metadata[key] = value
    return metadata, vtypes


def _read_tensor_info(cur: _Cursor, where: str, lim: Limits, alignment: int) -> TensorInfo:
    """One tensor info: a sane shape, a known type, an aligned offset."""
    name = _read_string(cur, 1 << 12, "tensor name")
    (n_dims,) = cur.unpack("I")
    if n_dims == 0 or n_dims > lim.max_dims:
        raise GGUFError(f"tensor {name!r} has {n_dims} dimensions", where=where)
    shape = cur.unpack(f"{n_dims}Q")
    type_id, offset = cur.unpack("IQ")
    total = 1
    for d in shape:
        if d == 0 or d > (1 << 40):
            raise GGUFError(f"tensor {name!r} has a bad dimension {d}", where=where)
        total *= d
        if total > (1 << 50):
            raise GGUFError(f"tensor {name!r} is absurdly large ({shape})", where=where)
    if type_id not in GGML_TYPES:
        raise GGUFError(f"tensor {name!r} has unknown ggml type {type_id}", where=where,
                        hint="the file may need a newer modelctl")
    try:
        nbytes = tensor_nbytes(type_id, shape)
    except ValueError as exc:
        raise GGUFError(f"tensor {name!r}: {exc}", where=where) from None
    if offset % alignment:
        raise GGUFError(f"tensor {name!r} offset {offset} is not aligned to {alignment}", where=where)
    return TensorInfo(name, tuple(shape), type_id, offset, nbytes)


def _check_layout(tensors: list[TensorInfo], data_offset: int, size: int | None, where: str) -> None:
    """Tensor names are unique, every tensor lies inside the file, and no two overlap."""
    seen: set[str] = set()
    for t in tensors:
        if t.name in seen:
            raise GGUFError(f"duplicate tensor name {t.name!r}", where=where)
        seen.add(t.name)
    if size is not None:
        data_len = size - data_offset
        for t in tensors:
            if t.offset + t.nbytes > data_len:
                raise GGUFError(f"tensor {t.name!r} runs past the end of the file "
                                f"({data_offset + t.offset + t.nbytes} > {size} bytes)", where=where,
                                hint="the file is truncated or corrupt: download it again")
    ordered = sorted(tensors, key=lambda t: t.offset)
    for a, b in zip(ordered, ordered[1:]):
        if a.offset + a.nbytes > b.offset:
            raise GGUFError(f"tensors {a.name!r} and {b.name!r} overlap", where=where)

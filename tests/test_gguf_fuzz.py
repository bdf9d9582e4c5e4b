"""Fuzzing the GGUF header reader: mutated real and synthetic headers.

Every mutated header must either parse or raise GGUFError: never another
exception, never a hang (a per-case alarm), never a large allocation
(tracemalloc's peak per case).  The corpus:

- the real SmolLM2 and Gemma 3 headers (all metadata keys, the real tensor
  tables with their shapes, types and offsets), with the tokenizer arrays cut to
  a few hundred entries so that one parse takes milliseconds;
- a synthetic header written with gguf's GGUFWriter using every value type,
  nested arrays, a custom alignment and quantized tensors.

Mutations are seeded (reproducible): byte flips, "interesting" integers written
over aligned 4/8-byte fields (the counts, lengths, types and offsets of the
format), truncations, insertions and deletions.  A hypothesis test does the same
with shrinking.
"""

from __future__ import annotations

import random
import signal
import struct
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelctl.core.errors import GGUFError
from modelctl.gguf.reader import (
    T_ARRAY, T_BOOL, T_FLOAT32, T_FLOAT64, T_INT32, T_INT64, T_STRING, T_UINT8, T_UINT32, T_UINT64,
    BytesSource, Limits, read_header,
)

# Small limits: a hostile count or length must be refused before it costs memory.
FUZZ_LIMITS = Limits(max_tensors=4096, max_kv=4096, max_key_len=1024, max_string_len=1 << 20,
                     max_array_len=1 << 16, max_header_bytes=8 << 20)
PEAK_BYTES = 48 << 20
INTERESTING = [0, 1, 2, 3, 7, 8, 12, 13, 255, 256, 0x7F, 0x80, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
               1 << 32, 1 << 40, (1 << 63) - 1, 1 << 63, (1 << 64) - 1]
VTYPE_NAMES = {"uint8": T_UINT8, "uint32": T_UINT32, "int32": T_INT32, "uint64": T_UINT64, "int64": T_INT64,
               "float32": T_FLOAT32, "float64": T_FLOAT64, "bool": T_BOOL, "string": T_STRING}


# ---------------------------------------------------------------------------
# corpus
# ---------------------------------------------------------------------------


def _s(text: str) -> bytes:
    b = text.encode("utf-8", errors="surrogateescape")
    return struct.pack("<Q", len(b)) + b


def _scalar(vtype: int, v) -> bytes:
    fmt = {T_UINT8: "B", T_UINT32: "I", T_INT32: "i", T_UINT64: "Q", T_INT64: "q", T_FLOAT32: "f",
           T_FLOAT64: "d", T_BOOL: "?"}[vtype]
    return struct.pack("<" + fmt, v)


def _value(vtype: int, v) -> bytes:
    if vtype == T_STRING:
        return _s(v)
    if vtype == T_ARRAY:
        if all(isinstance(x, str) for x in v):
            et = T_STRING
        elif all(isinstance(x, bool) for x in v):
            et = T_BOOL
        elif all(isinstance(x, int) for x in v):
            et = T_INT32
        else:
            et = T_FLOAT32
        return struct.pack("<IQ", et, len(v)) + b"".join(_value(et, x) for x in v)
    return _scalar(vtype, v)


def serialize_header(header, trim_arrays: int = 100) -> tuple[bytes, int]:
    """A parsed header written back as GGUF bytes (arrays cut to ``trim_arrays``); and the file size."""
    kv = []
    for key, value in header.metadata.items():
        name = header.value_types[key]
        if name == "array":
            value = value[:trim_arrays]
            vtype = T_ARRAY
        else:
            vtype = VTYPE_NAMES[name] if name in VTYPE_NAMES else T_UINT32
        kv.append(_s(key) + struct.pack("<I", vtype) + _value(vtype, value))
    ti = [_s(t.name) + struct.pack(f"<I{len(t.shape)}Q", len(t.shape), *t.shape) + struct.pack("<IQ", t.type_id, t.offset)
          for t in header.tensors]
    body = b"GGUF" + struct.pack("<IQQ", 3, len(ti), len(kv)) + b"".join(kv) + b"".join(ti)
    data_offset = -(-len(body) // header.alignment) * header.alignment
    body += bytes(data_offset - len(body))
    end = max((t.offset + t.nbytes for t in header.tensors), default=0)
    return body, data_offset + end


def synthetic_header(tmp_path) -> tuple[bytes, int]:
    import gguf

    p = tmp_path / "synthetic.gguf"
    w = gguf.GGUFWriter(str(p), "llama")
    w.add_custom_alignment(64)
    w.add_uint8("t.u8", 7)
    w.add_int8("t.i8", -7)
    w.add_uint16("t.u16", 65535)
    w.add_int16("t.i16", -3)
    w.add_uint32("t.u32", 1 << 31)
    w.add_int32("t.i32", -1)
    w.add_uint64("t.u64", 1 << 60)
    w.add_int64("t.i64", -(1 << 60))
    w.add_float32("t.f32", 0.5)
    w.add_float64("t.f64", 1e300)
    w.add_bool("t.bool", False)
    w.add_string("t.str", "héllo\n{{ messages }}")
    w.add_array("t.arr_i", [1, 2, 3, 4])
    w.add_array("t.arr_s", ["a", "", "ü", "<0x0A>"])
    w.add_array("t.arr_nested", [[1, 2], [3]])
    # 2 rows of 64 Q8_0 weights = 2 x 2 blocks of 34 bytes
    w.add_tensor("blk.0.q8", np.zeros((2, 68), dtype=np.uint8), raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("blk.0.f16", np.zeros((3, 32), dtype=np.float16))
    w.add_tensor("blk.0.f32x3", np.zeros((2, 2, 32), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    data = p.read_bytes()
    h = read_header(p)
    return data[:h.data_offset], len(data)


@pytest.fixture(scope="module")
def corpus(smollm2_path, gemma3_path, tmp_path_factory):
    seeds = []
    for path in (smollm2_path, gemma3_path):
        body, size = serialize_header(read_header(path))
        h = read_header(BytesSource(body, size=size))         # the trimmed real header still parses
        assert len(h.tensors) == len(read_header(path).tensors)
        seeds.append((body, size))
    seeds.append(synthetic_header(tmp_path_factory.mktemp("fuzz")))
    return seeds


# ---------------------------------------------------------------------------
# mutations and the per-case check
# ---------------------------------------------------------------------------


def mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 3, 5))):
        op = rng.random()
        if op < 0.35:                                   # an interesting integer over a field
            width = rng.choice((4, 8))
            pos = rng.randrange(0, max(1, len(b) - width)) & ~3
            v = rng.choice(INTERESTING) & ((1 << (8 * width)) - 1)
            b[pos:pos + width] = v.to_bytes(width, "little")
        elif op < 0.65:                                 # flip bytes
            for _ in range(rng.randint(1, 8)):
                pos = rng.randrange(len(b))
                b[pos] ^= 1 << rng.randrange(8)
        elif op < 0.8:                                  # truncate
            del b[rng.randrange(len(b)):]
            if not b:
                b = bytearray(b"G")
        elif op < 0.9:                                  # insert
            pos = rng.randrange(len(b))
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        else:                                           # delete
            pos = rng.randrange(len(b))
            del b[pos:pos + rng.randint(1, 16)]
    return bytes(b)


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


def check_case(data: bytes, size: int, label: str) -> str:
    """Parse one mutated header; returns "ok" or "error"; fails the test on anything else."""
    src = BytesSource(data, name=label, size=max(size, len(data)) if len(data) >= 24 else len(data))
    tracemalloc.reset_peak()
    signal.setitimer(signal.ITIMER_REAL, 5.0)
    try:
        read_header(src, FUZZ_LIMITS)
        outcome = "ok"
    except GGUFError as exc:
        assert exc.message and "\n" not in exc.one_line()
        outcome = "error"
    except _Hang:
        pytest.fail(f"{label}: parse still running after 5 s")
    except Exception as exc:  # noqa: BLE001 - exactly what the fuzz looks for
        pytest.fail(f"{label}: {type(exc).__name__}: {exc} (first bytes {data[:64].hex()})")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    peak = tracemalloc.get_traced_memory()[1]
    assert peak < PEAK_BYTES, f"{label}: {peak} bytes allocated"
    return outcome


@pytest.fixture
def guarded():
    old = signal.signal(signal.SIGALRM, _alarm)
    tracemalloc.start()
    yield
    tracemalloc.stop()
    signal.signal(signal.SIGALRM, old)


N_CASES = 2000


def test_random_mutations(corpus, guarded):
    rng = random.Random(20261123)
    outcomes = {"ok": 0, "error": 0}
    for i in range(N_CASES):
        seed_data, size = corpus[i % len(corpus)]
        data = mutate(rng, seed_data)
        outcomes[check_case(data, size, f"case {i}")] += 1
    # both outcomes happen: the mutations reach past the magic and the counts
    assert outcomes["error"] > N_CASES // 4 and outcomes["ok"] > 50, outcomes


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(which=st.integers(0, 2), edits=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)),
                                                min_size=1, max_size=6),
       cut=st.one_of(st.none(), st.integers(0, 1 << 20)))
def test_hypothesis_mutations(corpus, guarded, which, edits, cut):
    data, size = corpus[which]
    b = bytearray(data)
    for pos, val in edits:
        b[pos % len(b)] = val
    if cut is not None:
        b = b[:cut % (len(b) + 1)]
    check_case(bytes(b), size, "hypothesis case")


def test_hostile_counts_refused_without_allocating(guarded):
    """Crafted headers: each claim is refused by a check, not by running out of memory."""
    head = b"GGUF" + struct.pack("<I", 3)
    cases = {
        "tensor count": head + struct.pack("<QQ", 1 << 62, 0),
        "metadata count": head + struct.pack("<QQ", 0, 1 << 62),
        "key length": head + struct.pack("<QQ", 0, 1) + struct.pack("<Q", 1 << 62),
        "string length": head + struct.pack("<QQ", 0, 1) + _s("k") + struct.pack("<IQ", T_STRING, 1 << 40),
        "array length": head + struct.pack("<QQ", 0, 1) + _s("k") + struct.pack("<IIQ", T_ARRAY, T_UINT8, 1 << 62),
        "nested depth": head + struct.pack("<QQ", 0, 1) + _s("k") + struct.pack("<I", T_ARRAY)
        + struct.pack("<IQ", T_ARRAY, 1) * 64,
        "value type": head + struct.pack("<QQ", 0, 1) + _s("k") + struct.pack("<I", 99),
        "dimensions": head + struct.pack("<QQ", 1, 0) + _s("t") + struct.pack("<I", 1 << 30),
        "duplicate key": head + struct.pack("<QQ", 0, 2) + (_s("k") + struct.pack("<II", T_UINT32, 1)) * 2,
    }
    for label, data in cases.items():
        for limits in (Limits(), FUZZ_LIMITS):
            tracemalloc.reset_peak()
            with pytest.raises(GGUFError):
                read_header(BytesSource(data + bytes(4096), name=label, size=1 << 40), limits)
            assert tracemalloc.get_traced_memory()[1] < PEAK_BYTES, label

"""The header reader against gguf's own writer and reader."""

import numpy as np
import pytest

from modelctl.core.errors import GGUFError
from modelctl.gguf.reader import read_header


def _write(path, arch="llama"):
    import gguf

    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(2)
    w.add_context_length(4096)
    w.add_string("general.name", "tiny")
    w.add_array("tokenizer.ggml.tokens", ["a", "b", "ü", "<0x0A>"])
    w.add_array("tokenizer.ggml.scores", [0.5, -1.0, 2.0, 0.0])
    w.add_float32("test.f", 1.5)
    w.add_bool("test.b", True)
    w.add_tensor("w", np.arange(64, dtype=np.float32).reshape(2, 32))
    w.add_tensor("h", np.ones((3, 32), dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_matches_gguf_reader(tmp_path):
    import gguf

    p = tmp_path / "m.gguf"
    _write(p)
    h = read_header(p)
    r = gguf.GGUFReader(str(p))
    assert h.architecture == "llama"
    assert h.metadata["llama.block_count"] == 2
    assert h.metadata["tokenizer.ggml.tokens"] == ["a", "b", "ü", "<0x0A>"]
    assert h.metadata["test.b"] is True
    assert [t.name for t in h.tensors] == [t.name for t in r.tensors]
    for ours, theirs in zip(h.tensors, r.tensors):
        assert list(ours.shape) == [int(x) for x in theirs.shape]
        assert ours.type_id == int(theirs.tensor_type)
        assert h.data_offset + ours.offset == theirs.data_offset
        assert ours.nbytes == theirs.n_bytes


def test_bad_magic_and_truncation(tmp_path):
    p = tmp_path / "m.gguf"
    _write(p)
    data = p.read_bytes()
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"PK\x03\x04" + data[4:])
    with pytest.raises(GGUFError, match="not a GGUF"):
        read_header(bad)
    for cut in (3, 10, 30, 100, len(data) - 10):
        bad.write_bytes(data[:cut])
        with pytest.raises(GGUFError):
            read_header(bad)


def _assert_same_as_gguf_reader(h, r):
    """Every metadata field and tensor info of our header equals gguf's GGUFReader's."""
    ours = dict(h.metadata)
    for name, f in r.fields.items():
        if name.startswith("GGUF."):
            continue
        theirs = f.contents()
        assert name in ours, name
        mine = ours.pop(name)
        if isinstance(mine, list) and mine and isinstance(mine[0], list):
            mine = [x for sub in mine for x in sub]       # GGUFReader.contents() flattens nested arrays
        if isinstance(theirs, float) or (isinstance(theirs, list) and theirs and isinstance(theirs[0], float)):
            assert np.allclose(np.asarray(mine, dtype=np.float64), np.asarray(theirs, dtype=np.float64)), name
        else:
            assert mine == theirs, (name, mine, theirs)
    assert not ours, f"keys GGUFReader does not have: {sorted(ours)}"
    assert len(h.tensors) == len(r.tensors)
    for t, rt in zip(h.tensors, r.tensors):
        assert t.name == rt.name
        assert list(t.shape) == [int(x) for x in rt.shape]
        assert t.type_id == int(rt.tensor_type)
        assert h.data_offset + t.offset == rt.data_offset
        assert t.nbytes == rt.n_bytes


def test_every_value_type_quantized_tensors_and_alignment(tmp_path):
    import gguf

    Q = gguf.GGMLQuantizationType
    p = tmp_path / "all.gguf"
    w = gguf.GGUFWriter(str(p), "qwen2")
    w.add_custom_alignment(64)
    for fn, key, value in [
        (w.add_uint8, "v.u8", 200), (w.add_int8, "v.i8", -100), (w.add_uint16, "v.u16", 60000),
        (w.add_int16, "v.i16", -30000), (w.add_uint32, "v.u32", 4_000_000_000), (w.add_int32, "v.i32", -2_000_000_000),
        (w.add_uint64, "v.u64", 1 << 63), (w.add_int64, "v.i64", -(1 << 62)), (w.add_float32, "v.f32", 3.25),
        (w.add_float64, "v.f64", -1e-300), (w.add_bool, "v.t", True), (w.add_bool, "v.f", False),
        (w.add_string, "v.s", "{% for m in messages %}{{ m.content }}{% endfor %}\n\u00e9\U0001F600"),
        (w.add_string, "v.empty", ""),
    ]:
        fn(key, value)
    w.add_array("a.i", [-1, 0, 1 << 20])
    w.add_array("a.f", [0.25, -2.5])
    w.add_array("a.s", ["<s>", "", "\u0120the", "<0xFF>"])
    w.add_array("a.b", [True, False, True])
    w.add_array("a.nested", [[1, 2, 3], [4]])
    rng = np.random.default_rng(0)
    w.add_tensor("t.f32", rng.standard_normal((3, 5, 32)).astype(np.float32))
    w.add_tensor("t.f16", rng.standard_normal((4, 64)).astype(np.float16))
    w.add_tensor("t.q8_0", np.zeros((4, 2 * 34), dtype=np.uint8), raw_dtype=Q.Q8_0)       # 4 x 64 weights
    w.add_tensor("t.q4_0", np.zeros((2, 3 * 18), dtype=np.uint8), raw_dtype=Q.Q4_0)       # 2 x 96
    w.add_tensor("t.q4_k", np.zeros((2, 144), dtype=np.uint8), raw_dtype=Q.Q4_K)          # 2 x 256
    w.add_tensor("t.q6_k", np.zeros((1, 2 * 210), dtype=np.uint8), raw_dtype=Q.Q6_K)     # 1 x 512
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    h = read_header(p)
    assert h.alignment == 64 and h.data_offset % 64 == 0
    assert h.metadata["a.nested"] == [[1, 2, 3], [4]]
    assert [t.shape for t in h.tensors][:3] == [(32, 5, 3), (64, 4), (64, 4)]
    _assert_same_as_gguf_reader(h, gguf.GGUFReader(str(p)))


def test_real_model_matches_gguf_reader(smollm2_path):
    import gguf

    h = read_header(smollm2_path)
    _assert_same_as_gguf_reader(h, gguf.GGUFReader(str(smollm2_path)))
    assert h.tensor_data_bytes <= h.file_size - h.data_offset


def test_header_reads_only_the_header(smollm2_path):
    from modelctl.gguf.reader import FileSource

    with FileSource(smollm2_path) as src:
        h = read_header(src)
    # the reader fetches in growing chunks: a little past the header, never the tensor data
    assert h.data_offset <= src.bytes_read < 2 * h.data_offset + (1 << 20)
    assert src.bytes_read < h.file_size // 20

"""The header reader against gguf's own writer and reader."""

import numpy as np
import pytest

from modelctl.errors import GGUFError
from modelctl.gguf_reader import read_header


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

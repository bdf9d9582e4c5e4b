"""The runtime loader: zero-copy mmap views, split models, real files."""

from __future__ import annotations

import gc
from pathlib import Path

import gguf
import numpy as np
import pytest

from modelctl.core.errors import GGUFError, NotFoundError
from modelctl.gguf.reader import read_header
from modelctl.runtime import kernels as K
from modelctl.runtime.loader import GGUFFile
from modelctl.runtime.synth import random_data


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_smollm2_maps_without_copying(smollm2_path):
    size = smollm2_path.stat().st_size
    gc.collect()
    before = rss_bytes()
    f = GGUFFile.open(smollm2_path)
    after_open = rss_bytes()
    try:
        header = read_header(smollm2_path)
        assert len(f.tensors) == len(header.tensors) == 272
        assert f.metadata["general.architecture"] == "llama"
        E = f.tensors["token_embd.weight"]
        assert (E.type.name, E.shape, E.cols, E.rows) == ("Q8_0", (576, 49152), 576, 49152)
        assert E.nbytes == E.rows * E.row_bytes
        assert not E.data.flags.writeable and not E.data.flags.owndata
        # the views are the file's bytes, in place
        info = header.tensor("blk.0.ffn_down.weight")
        with open(smollm2_path, "rb") as fh:
            fh.seek(header.data_offset + info.offset)
            assert fh.read(4096) == f.tensors["blk.0.ffn_down.weight"].data[:4096].tobytes()
        assert after_open - before < size // 10, f"open grew RSS by {after_open - before} bytes"
        # touching every weight brings the file's pages in: proof that they were not before
        total = sum(int(t.data.sum(dtype=np.uint64)) for t in f.tensors.values())
        assert total > 0
        assert rss_bytes() - before > size // 2
    finally:
        f.close()
    assert f.tensors == {}


def write_split_model(tmp_path: Path, rng) -> tuple[Path, dict[str, tuple[int, np.ndarray]]]:
    tensors = {
        "a.weight": (gguf.GGMLQuantizationType.F32, rng.standard_normal((3, 8), dtype=np.float32)),
        "b.weight": (gguf.GGMLQuantizationType.Q4_0, random_data("Q4_0", 5, 64, rng).reshape(5, -1)),
        "c.weight": (gguf.GGMLQuantizationType.Q6_K, random_data("Q6_K", 2, 256, rng).reshape(2, -1)),
    }
    w = gguf.GGUFWriter(tmp_path / "tiny.gguf", arch="llama", split_max_tensors=2)
    w.add_block_count(1)
    for name, (qtype, arr) in tensors.items():
        w.add_tensor(name, arr, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return tmp_path / "tiny-00001-of-00002.gguf", tensors


def test_split_model_loads_as_one(tmp_path):
    rng = np.random.default_rng(0)
    first, tensors = write_split_model(tmp_path, rng)
    second = tmp_path / "tiny-00002-of-00002.gguf"
    assert first.is_file() and second.is_file()
    for start in (first, second):       # any part opens the whole model
        with GGUFFile.open(start) as f:
            assert f.paths == [first, second]
            assert f.metadata["llama.block_count"] == 1
            assert sorted(f.tensors) == sorted(tensors)
            assert len(f.header.tensors) == 3
            for name, (qtype, arr) in tensors.items():
                t = f.tensors[name]
                assert t.type_id == int(qtype)
                np.testing.assert_array_equal(t.data, arr.reshape(-1).view(np.uint8))
            c = f.tensors["c.weight"]
            np.testing.assert_array_equal(K.dequantize(c), gguf.quants.dequantize(
                tensors["c.weight"][1], gguf.GGMLQuantizationType.Q6_K))


def test_split_model_with_a_missing_part(tmp_path):
    first, _ = write_split_model(tmp_path, np.random.default_rng(1))
    (tmp_path / "tiny-00002-of-00002.gguf").unlink()
    with pytest.raises(NotFoundError, match="part 2 of 2"):
        GGUFFile.open(first)


def test_split_part_renamed(tmp_path):
    first, _ = write_split_model(tmp_path, np.random.default_rng(2))
    renamed = tmp_path / "whatever.gguf"
    first.rename(renamed)
    with pytest.raises(GGUFError, match="split.count"):
        GGUFFile.open(renamed)


def test_not_a_gguf_file(tmp_path):
    p = tmp_path / "x.gguf"
    p.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(GGUFError):
        GGUFFile.open(p)
    with pytest.raises(NotFoundError):
        GGUFFile.open(tmp_path / "missing.gguf")

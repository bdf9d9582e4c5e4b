"""The test cache survives downloads cut short: a partial archive is recognised and fetched again."""

import io
import tarfile
import zipfile

import fetch


def _wheel(path):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("pkg/data.bin", bytes(range(256)) * 4096)


def _sdist(path):
    data = bytes(range(256)) * 4096
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo("pkg-1.0/data.bin")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))


def test_whole_archives_are_complete(tmp_path):
    _wheel(tmp_path / "a-1.0-py3-none-any.whl")
    _sdist(tmp_path / "a-1.0.tar.gz")
    assert fetch._complete(tmp_path / "a-1.0-py3-none-any.whl")
    assert fetch._complete(tmp_path / "a-1.0.tar.gz")


def test_archives_cut_short_are_not(tmp_path):
    for name, make in (("a-1.0-py3-none-any.whl", _wheel), ("a-1.0.tar.gz", _sdist)):
        whole = tmp_path / ("whole-" + name)
        make(whole)
        cut = tmp_path / name
        cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
        assert not fetch._complete(cut), name

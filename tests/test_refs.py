"""One reading of a model reference for every command (modelctl.hub.resolve.parse_ref)."""

import pytest

from modelctl.core.errors import UsageError
from modelctl.hub.resolve import parse_ref


def test_an_existing_file_wins(tmp_path, monkeypatch):
    f = tmp_path / "owner" / "repo"
    f.parent.mkdir()
    f.write_bytes(b"GGUF")
    monkeypatch.chdir(tmp_path)
    r = parse_ref("owner/repo")            # a file of that name here: the file, not the Hub repo
    assert r.kind == "path" and r.path.is_file()


@pytest.mark.parametrize("text", ["./x.gguf", "../x.gguf", "/nowhere/x.gguf", "~/x.gguf", "x.gguf", "dir/x.gguf"])
def test_path_shapes(text):
    r = parse_ref(text)
    assert r.kind == "path" and str(r) == text


def test_urls():
    plain = parse_ref("https://example.org/models/x.Q4_0.gguf")
    assert plain.kind == "url" and plain.repo is None and plain.url.endswith("x.Q4_0.gguf")
    hub = parse_ref("https://huggingface.co/TheBloke/zephyr-7B-beta-GGUF/resolve/main/zephyr-7b-beta.Q4_K_M.gguf")
    assert (hub.kind, hub.repo, hub.revision, hub.file) == (
        "url", "TheBloke/zephyr-7B-beta-GGUF", "main", "zephyr-7b-beta.Q4_K_M.gguf")


def test_manifest_and_repo_forms():
    assert parse_ref("zephyr-7b-beta").kind == "manifest"
    r = parse_ref("TheBloke/zephyr-7B-beta-GGUF:q4_k_m")
    assert (r.kind, r.repo, r.quant, r.file) == ("repo", "TheBloke/zephyr-7B-beta-GGUF", "q4_k_m", None)
    r = parse_ref("bartowski/Some-GGUF/Some-Q8_0/Some-Q8_0-00001-of-00002.gguf")
    assert (r.repo, r.file) == ("bartowski/Some-GGUF", "Some-Q8_0/Some-Q8_0-00001-of-00002.gguf")


@pytest.mark.parametrize("text", ["owner/repo:", "owner/repo/../../etc/passwd", "-x/y"])
def test_bad_references_are_usage_errors(text):
    with pytest.raises(UsageError):
        parse_ref(text)

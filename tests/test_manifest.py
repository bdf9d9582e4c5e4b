"""Manifests: schema validation, YAML round trip, lookup by name and path."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from modelctl.core.errors import ManifestError, NotFoundError
from modelctl.cards.manifest import (
    list_manifests,
    load_manifest,
    manifest_from_dict,
    parse_yaml_text,
    save_manifest,
)

GOOD = {
    "schema": 1,
    "name": "tiny-test",
    "repo": "someone/tiny-GGUF",
    "revision": "main",
    "model_name": "Tiny",
    "prompt_template": {"text": "<|user|>\n{prompt}</s>\n<|assistant|>\n", "style": "placeholders"},
    "stop": ["</s>"],
    "sampling": {"temperature": 0.7, "top_k": 40, "top_p": 0.95, "min_p": 0.05, "repeat_penalty": 1.0},
    "architecture": {"arch": "llama", "layers": 2, "heads": 4, "kv_heads": 2, "head_dim": 16, "embedding": 64,
                     "ffn": 128, "vocab": 100, "context_length": 256},
    "files": [
        {"name": "tiny.Q4_K_M.gguf", "quant": "Q4_K_M", "bits": 4, "size_bytes": 1000, "max_ram_bytes": None,
         "use_case": None, "parts": [], "sha256": None},
        {"name": "tiny.Q8_0.gguf", "quant": "Q8_0", "bits": 8, "size_bytes": 2000, "max_ram_bytes": 3000,
         "use_case": "big", "parts": ["tiny.Q8_0.gguf-split-a", "tiny.Q8_0.gguf-split-b"], "sha256": "ab" * 32},
    ],
    "default_file": "tiny.Q4_K_M.gguf",
    "sources": [
        {"kind": "hub", "repo": "someone/tiny-GGUF", "revision": "main"},
        {"kind": "url", "url": "https://example.org/tiny.Q8_0.gguf", "file": "tiny.Q8_0.gguf"},
        {"kind": "local", "path": "/models/tiny.gguf", "file": "tiny.Q4_K_M.gguf"},
        {"kind": "pypi-wheel", "requirement": "tiny-model==1.0", "member": "tiny/tiny.gguf",
         "file": "tiny.Q4_K_M.gguf"},
    ],
}


def test_round_trip_through_yaml_is_exact():
    m = manifest_from_dict(copy.deepcopy(GOOD), where="good.yaml")
    text = m.to_yaml()
    again = manifest_from_dict(parse_yaml_text(text, "again.yaml"), where="again.yaml")
    assert again == m
    assert again.prompt_template.text == GOOD["prompt_template"]["text"]
    assert m.file("q8_0").parts == ("tiny.Q8_0.gguf-split-a", "tiny.Q8_0.gguf-split-b")
    assert m.file("tiny.Q4_K_M.gguf").size_bytes == 1000
    assert [s.kind for s in m.sources] == ["hub", "url", "local", "pypi-wheel"]
    # to_dict keeps every key, in schema order
    assert list(m.to_dict())[:4] == ["schema", "name", "repo", "revision"]


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d.pop("name"), "name"),
    (lambda d: d.update(schema=2), "schema"),
    (lambda d: d.update(name="Has Spaces"), "name"),
    (lambda d: d.update(repo="not a repo"), "repo"),
    (lambda d: d.update(architecture_typo={}), "architecture_typo"),
    (lambda d: d["files"][1].update(size_bytes="2 GB"), "files[1].size_bytes"),
    (lambda d: d["files"][0].update(name="../../etc/passwd"), "files[0].name"),
    (lambda d: d["files"][1].update(parts=["ok", "/abs"]), "files[1].parts[1]"),
    (lambda d: d["files"][1].update(sha256="xyz"), "files[1].sha256"),
    (lambda d: d["files"].append(dict(d["files"][0])), "files"),
    (lambda d: d["architecture"].pop("kv_heads"), "architecture.kv_heads"),
    (lambda d: d["architecture"].update(kv_heads=3), "architecture.kv_heads"),
    (lambda d: d["sampling"].update(top_p=1.5), "sampling.top_p"),
    (lambda d: d["sources"][0].update(kind="ftp"), "sources[0].kind"),
    (lambda d: d["sources"][1].pop("file"), "sources[1].file"),
    (lambda d: d["sources"][2].update(file="nope.gguf"), "sources[2].file"),
    (lambda d: d.update(default_file="nope.gguf"), "default_file"),
    (lambda d: d["prompt_template"].update(style="mustache"), "prompt_template.style"),
])
def test_schema_violation_names_field_and_file(mutate, field):
    data = copy.deepcopy(GOOD)
    mutate(data)
    with pytest.raises(ManifestError) as info:
        manifest_from_dict(data, where="/x/bad.yaml")
    line = info.value.one_line()
    assert line.startswith("/x/bad.yaml: ")
    assert f"'{field}'" in line
    assert "\n" not in line


def test_load_by_path_and_by_name_from_user_folder(tmp_path, monkeypatch):
    folder = tmp_path / "mine"
    folder.mkdir()
    path = folder / "tiny-test.yaml"
    save_manifest(manifest_from_dict(copy.deepcopy(GOOD)), path)
    assert not list(folder.glob(".*tmp"))  # the atomic write left no temp file
    monkeypatch.setenv("MODELCTL_MANIFESTS", str(folder))
    assert "tiny-test" in list_manifests()
    by_name = load_manifest("tiny-test")
    by_path = load_manifest(str(path))
    assert by_name == by_path
    assert by_name.path == path


def test_user_manifest_name_must_match_file(tmp_path, monkeypatch):
    data = copy.deepcopy(GOOD)
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.setenv("MODELCTL_MANIFESTS", str(tmp_path))
    with pytest.raises(ManifestError, match="'name'"):
        load_manifest("other")


def test_unknown_name_and_missing_path_are_not_found(tmp_path):
    with pytest.raises(NotFoundError, match="no manifest named 'no-such-model'"):
        load_manifest("no-such-model")
    with pytest.raises(NotFoundError):
        load_manifest(str(tmp_path / "missing.yaml"))


@pytest.mark.parametrize("content, expect", [
    (b"schema: 1\nname: [unclosed\n", "not valid YAML at line"),
    (b"- just\n- a list\n", "mapping at the top level"),
    (b"\xff\xfe\x00\x01binary", "not UTF-8"),
])
def test_bad_manifest_files(tmp_path, content, expect):
    p = tmp_path / "bad.yaml"
    p.write_bytes(content)
    with pytest.raises(ManifestError, match=expect) as info:
        load_manifest(str(p))
    assert str(p) in info.value.one_line()


def _seed_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scripts" / "make_seed_manifests.py"
    spec = importlib.util.spec_from_file_location("make_seed_manifests", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("name", ["zephyr-7b-beta", "causallm-7b-dpo-alpha"])
def test_seed_manifests_are_built_in_and_current(name, shared_cards):
    m = load_manifest(name)
    assert name in list_manifests()
    # Regenerating from the seed card gives exactly the shipped file (run scripts/make_seed_manifests.py).
    assert _seed_script().render(name, shared_cards) == m.path.read_text(encoding="utf-8")
    assert [s.to_dict() for s in m.sources] == [{"kind": "hub", "repo": m.repo, "revision": "main"}]


def test_seed_manifest_contents():
    z = load_manifest("zephyr-7b-beta")
    assert z.repo == "TheBloke/zephyr-7B-beta-GGUF" and z.stop == ["</s>"]
    assert z.architecture.to_dict() == {
        "arch": "llama", "layers": 32, "heads": 32, "kv_heads": 8, "head_dim": 128, "embedding": 4096,
        "ffn": 14336, "vocab": 32000, "context_length": 32768, "sliding_window": 4096, "rope_theta": 10000.0}
    assert z.prompt_template.text == "<|system|>\n</s>\n<|user|>\n{prompt}</s>\n<|assistant|>\n"
    assert z.file("Q4_K_M").size_bytes == 4_370_000_000 and z.file("Q4_K_M").max_ram_bytes == 6_870_000_000
    assert z.default_file == "zephyr-7b-beta.Q4_K_M.gguf" and len(z.files) == 12
    c = load_manifest("causallm-7b-dpo-alpha")
    assert c.architecture.to_dict() == {
        "arch": "llama", "layers": 32, "heads": 32, "kv_heads": 32, "head_dim": 128, "embedding": 4096,
        "ffn": 11008, "vocab": 151936, "context_length": 8192}
    assert [f.name for f in c.files] == ["causallm_7b-dpo-alpha.Q4_K_M.gguf", "causallm_7b-dpo-alpha.Q5_K_S.gguf",
                                         "causallm_7b-dpo-alpha.Q5_K_M.gguf"]
    assert c.stop == ["<|im_end|>"]


BUILTINS = sorted(p.stem for p in (Path(__file__).resolve().parent.parent / "manifests").glob("*.yaml"))


@pytest.mark.parametrize("name", BUILTINS)
def test_every_builtin_manifest_validates(name, monkeypatch, tmp_path):
    monkeypatch.delenv("MODELCTL_MANIFESTS", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))  # no user manifest shadows the built-in
    m = load_manifest(name)
    assert m.name == name and m.sources, "a built-in manifest says where its files come from"
    for s in m.sources:
        assert s.file is None or any(f.name == s.file for f in m.files)

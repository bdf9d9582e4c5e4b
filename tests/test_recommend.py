"""The choice: quality ranking, fitting rules, and the recommend command end to end."""

from __future__ import annotations

import json
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from modelctl.fit.estimate import MiB, arch_from_dict
from modelctl.fit.hardware import GPU, Machine
from modelctl.fit.quality import ppl_delta, ppl_from_bpw, quant_from_filename
from modelctl.fit.recommend import (
    group_split_files, is_projector_file, is_weights_file, recommend, spec_from_manifest_dict,
)

GiB = 1 << 30
GB = 10**9

ZEPHYR_ARCH = dict(arch="llama", layers=32, heads=32, kv_heads=8, head_dim=128, embedding=4096, ffn=14336,
                   vocab=32000, context_length=32768, sliding_window=4096)
CAUSALLM_ARCH = dict(arch="llama", layers=32, heads=32, kv_heads=32, head_dim=128, embedding=4096, ffn=11008,
                     vocab=151936, context_length=8192)
# The "Provided files" tables of the two seed cards (sizes as printed there, GB = 10^9 bytes).
ZEPHYR_FILES = [("Q2_K", 3.08), ("Q3_K_S", 3.16), ("Q3_K_M", 3.52), ("Q3_K_L", 3.82), ("Q4_0", 4.11),
                ("Q4_K_S", 4.14), ("Q4_K_M", 4.37), ("Q5_0", 5.00), ("Q5_K_S", 5.00), ("Q5_K_M", 5.13),
                ("Q6_K", 5.94), ("Q8_0", 7.70)]
CAUSALLM_FILES = [("Q4_K_M", 4.77), ("Q5_K_S", 5.40), ("Q5_K_M", 5.53)]


def _spec(name, arch, files, stem):
    d = {"name": name, "repo": f"x/{name}", "architecture": arch,
         "files": [{"name": f"{stem}.{q}.gguf", "quant": q, "size_bytes": int(gb * GB), "parts": []}
                   for q, gb in files],
         "prompt_template": {"text": "<|user|>\n{prompt}</s>\n<|assistant|>\n", "style": "placeholders"},
         "stop": ["</s>"]}
    return spec_from_manifest_dict(d, arch_from_dict(arch))


def zephyr():
    return _spec("zephyr-7b-beta", ZEPHYR_ARCH, ZEPHYR_FILES, "zephyr-7b-beta")


def causallm():
    return _spec("causallm-7b-dpo-alpha", CAUSALLM_ARCH, CAUSALLM_FILES, "causallm_7b-dpo-alpha")


CPU16 = Machine(16 * GiB, 16 * GiB, [])


def test_zephyr_16gib_cpu_only():
    rec = recommend(zephyr(), CPU16, 4096)
    assert rec.choice.file.quant == "Q8_0"
    c = rec.choice.to_dict()
    assert c["gpu_layers"] == 0 and c["vram_bytes"] == 0 and c["fits"]
    assert c["kv_cache_bytes"] == 512 * MiB
    assert c["estimate_source"] == "card"
    # weights 7.70 GB + KV 512 MiB + compute 308 MiB + runtime 256 MiB
    assert c["ram_bytes"] == pytest.approx(7.70 * GB + (512 + 308 + 256) * MiB, abs=1 * MiB)
    ranks = {x.file.quant: x.quality_rank for x in rec.candidates}
    assert ranks["Q8_0"] == 1 and ranks["Q6_K"] == 2 and ranks["Q5_K_M"] == 3 and ranks["Q2_K"] == 12
    assert ranks["Q5_K_S"] < ranks["Q5_0"] and ranks["Q4_K_S"] < ranks["Q4_0"]   # llama.cpp's ppl table
    assert list(rec.to_dict()) == ["machine", "ctx", "choice", "candidates"]
    assert set(c) == {"file", "quant", "size_bytes", "gpu_layers", "ram_bytes", "vram_bytes", "kv_cache_bytes",
                      "fits", "quality_rank", "estimate_source"}


def test_causallm_16gib_cpu_only():
    rec = recommend(causallm(), CPU16, 4096)
    assert rec.choice.file.quant == "Q5_K_M"
    assert rec.choice.estimate.kv_cache_bytes == 2 * GiB
    # at 8192 its KV cache alone is 4 GiB: with 9.5 GiB of RAM only the smallest file still fits
    rec = recommend(causallm(), Machine(int(9.5 * GiB), int(9.5 * GiB), []), 8192)
    assert [c.fits for c in rec.candidates] == [False, False, True]
    assert rec.choice.file.quant == "Q4_K_M"


def test_full_gpu_offload_wins():
    m = Machine(16 * GiB, 16 * GiB, [GPU("RTX", 8 * GiB, 8 * GiB, "nvidia")])
    rec = recommend(zephyr(), m, 4096)
    # Q8_0 only fits partly on 8 GiB; Q6_K fits whole (weights + KV + compute + CUDA context)
    assert rec.choice.file.quant == "Q6_K" and rec.choice.placement.ngl == 33
    assert rec.choice.placement.vram_bytes <= 8 * GiB
    q8 = next(c for c in rec.candidates if c.file.quant == "Q8_0")
    assert q8.fits and 0 < q8.placement.ngl < 33
    assert "Q8_0 is better but fits only with" in rec.reason


def test_partial_offload_when_nothing_fits_the_gpu():
    m = Machine(16 * GiB, 16 * GiB, [GPU("small", 3 * GiB, 3 * GiB, "nvidia")])
    rec = recommend(zephyr(), m, 4096)
    assert not any(c.full_offload and c.fits for c in rec.candidates)
    assert rec.choice.file.quant == "Q8_0"
    assert 0 < rec.choice.placement.ngl < 33
    assert "layers on the GPU" in rec.reason
    # as many layers as fit, and one more would not
    more = rec.choice.estimate.placement(rec.choice.placement.ngl + 1, ["nvidia"])
    assert more.vram_bytes > 3 * GiB


def test_nothing_fits():
    rec = recommend(zephyr(), Machine(2 * GiB, 2 * GiB, []), 4096)
    assert rec.choice is None and rec.to_dict()["choice"] is None
    assert "nothing fits" in rec.reason


def test_unified_memory_counts_once():
    budget = int(16 * GiB * 2 / 3)
    m = Machine(16 * GiB, 12 * GiB, [GPU("Apple", budget, budget, "apple")], unified_memory=True)
    rec = recommend(zephyr(), m, 4096)
    p = rec.choice.placement
    assert p.ram_bytes + p.vram_bytes <= 12 * GiB and p.vram_bytes <= budget


def test_files_that_are_not_weights():
    assert is_weights_file("zephyr-7b-beta.Q4_K_M.gguf")
    for n in ("imatrix.dat", "model.imatrix.gguf", "mmproj-model-f16.gguf", "README.md", "x.safetensors"):
        assert not is_weights_file(n)
    assert is_projector_file("mmproj-model-f16.gguf") and not is_projector_file("model.Q4_K_M.gguf")
    g = group_split_files(["b-00002-of-00002.gguf", "a.gguf", "b-00001-of-00002.gguf"])
    assert g == {"a.gguf": ["a.gguf"], "b-00001-of-00002.gguf": ["b-00001-of-00002.gguf", "b-00002-of-00002.gguf"]}


def test_quality_table():
    assert quant_from_filename("zephyr-7b-beta.Q4_K_M.gguf") == "Q4_K_M"
    assert quant_from_filename("Meta-Llama-3-8B.IQ2_XXS.gguf") == "IQ2_XXS"
    assert quant_from_filename("model-q5_k_s-00001-of-00002.gguf") == "Q5_K_S"
    assert quant_from_filename("model.gguf") is None
    assert ppl_delta("Q4_K_M") == (0.1754, "published")
    # i-quants: interpolated from bits per weight on the measured curve, monotone in bpw
    iq = [ppl_delta(q)[0] for q in ("IQ1_S", "IQ2_XXS", "IQ3_XXS", "IQ4_XS")]
    assert iq == sorted(iq, reverse=True) and ppl_delta("IQ4_XS")[1] == "bpw"
    assert ppl_delta("Q3_K_M")[0] > ppl_delta("IQ4_XS")[0] > ppl_delta("Q5_K_M")[0]
    assert ppl_from_bpw(16.0) == 0.0
    assert ppl_delta(None, bpw=4.9)[1] == "file-bpw"


# ---------------------------------------------------------------------------
# end to end: the real CLI in a subprocess
# ---------------------------------------------------------------------------


def test_cli_local_gguf_json(cli, smollm2_path):
    r = cli("recommend", str(smollm2_path), "--ram", "16GiB", "--gpus", "none", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["ctx"] == 4096 and "capped at 4096" in r.stderr
    assert d["machine"] == {"ram_total_bytes": 16 * GiB, "ram_available_bytes": 16 * GiB, "gpus": []}
    c = d["choice"]
    assert c["file"] == smollm2_path.name and c["estimate_source"] == "gguf-header"
    assert c["kv_cache_bytes"] == 90 * MiB            # llama.cpp: 90.00 MiB at 4096 (tests/data)
    assert d["candidates"] == [c]


def test_cli_nothing_fits_exit_code(cli, smollm2_path):
    r = cli("recommend", str(smollm2_path), "--ram", "100MB", "--gpus", "none", "--json", "--ctx", "2048")
    assert r.returncode == 3
    assert json.loads(r.stdout)["choice"] is None
    assert r.stderr.strip().splitlines()[-1].startswith("modelctl: error:")
    assert "nothing fits" in r.stderr and "Traceback" not in r.stderr


def test_cli_bad_options(cli, smollm2_path, tmp_path):
    assert cli("recommend", str(smollm2_path), "--ram", "lots").returncode == 2
    assert cli("recommend", str(smollm2_path), "--emit", "vllm").returncode == 2
    assert cli("recommend", str(smollm2_path), "--kv-type", "q9").returncode == 2
    r = cli("recommend", str(tmp_path / "missing.gguf"))
    assert r.returncode == 4 and "no such file" in r.stderr
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\xff" * 60)
    r = cli("recommend", str(bad))
    assert r.returncode == 6 and "Traceback" not in r.stderr


def _fake_nvidia_smi(tmp_path, free_mib: int) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    s = bindir / "nvidia-smi"
    s.write_text(f"#!/bin/sh\necho '0, GPU-1234, NVIDIA Test GPU, 8192, {free_mib}'\n")
    s.chmod(s.stat().st_mode | stat.S_IEXEC)
    return bindir


def test_cli_detects_fake_nvidia_gpu(cli, smollm2_path, tmp_path):
    import os

    bindir = _fake_nvidia_smi(tmp_path, 8000)
    env = {"PATH": f"{bindir}:{os.environ['PATH']}"}
    r = cli("recommend", str(smollm2_path), "--ram", "8GiB", "--json", env=env)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["machine"]["gpus"] == [{"name": "NVIDIA Test GPU", "vram_total_bytes": 8192 * MiB,
                                     "vram_free_bytes": 8000 * MiB}]
    assert d["choice"]["gpu_layers"] == 31             # 30 blocks + the output layer
    r = cli("recommend", str(smollm2_path), "--ram", "8GiB", "--emit", "llama.cpp", env=env)
    assert r.returncode == 0
    assert r.stdout.startswith(f"llama-cli -m {smollm2_path} -ngl 31 -c 4096")
    r = cli("recommend", str(smollm2_path), "--gpus", "none", "--ram", "8GiB", "--json",
            env={**env, "CUDA_VISIBLE_DEVICES": ""})
    assert json.loads(r.stdout)["machine"]["gpus"] == []


# ---------------------------------------------------------------------------
# HTTP: a range-capable server on 127.0.0.1 that counts what it sends
# ---------------------------------------------------------------------------


class RangeServer:
    """Serves files (url path -> local path) with Range support; counts bytes sent; optional JSON routes."""

    def __init__(self, files: dict[str, Path], json_routes: dict[str, object] | None = None):
        self.files = files
        self.json_routes = json_routes or {}
        self.bytes_sent = 0
        self.requests: list[str] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                path = self.path.split("?", 1)[0]
                with outer.lock:
                    outer.requests.append(self.path)
                if path in outer.json_routes:
                    body = json.dumps(outer.json_routes[path]).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                local = outer.files.get(path)
                if local is None:
                    self.send_error(404)
                    return
                size = local.stat().st_size
                start, end = 0, size - 1
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    a, _, b = rng[6:].partition("-")
                    start = int(a)
                    end = min(int(b), size - 1) if b else size - 1
                    if start >= size:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(end - start + 1))
                self.end_headers()
                with open(local, "rb") as fh:
                    fh.seek(start)
                    left = end - start + 1
                    try:
                        while left > 0:
                            chunk = fh.read(min(left, 1 << 16))
                            self.wfile.write(chunk)
                            with outer.lock:
                                outer.bytes_sent += len(chunk)
                            left -= len(chunk)
                    except (BrokenPipeError, ConnectionResetError):
                        pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_cli_url_reads_only_the_header(cli, qwen_path):
    size = qwen_path.stat().st_size
    with RangeServer({"/models/qwen-0.5b.gguf": qwen_path}) as srv:
        r = cli("recommend", f"{srv.url}/models/qwen-0.5b.gguf", "--ram", "4GiB", "--gpus", "none", "--json")
        sent = srv.bytes_sent
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["choice"]["file"] == "qwen-0.5b.gguf" and d["choice"]["estimate_source"] == "gguf-header"
    assert d["choice"]["size_bytes"] == size
    # the header of this 491 MB file (151,936-token vocabulary and merges) is a few MB
    assert 0 < sent < size // 20, (sent, size)


def test_cli_repo_id_through_fake_hub(cli, smollm2_path, tmp_path):
    """A repo id: the file list from the Hub API, the header of every GGUF through range requests
    (after the Hub's redirect to its file host), only header bytes transferred."""
    from hubserver import HubServer

    repo = "someone/SmolLM2-GGUF"
    model = smollm2_path.read_bytes()
    part1 = b"GGUF" + bytes(100)                 # an unreadable header: estimated from the listed size
    part2 = bytes(5000)
    hub = HubServer()
    try:
        card = b"---\nprompt_template: '<|im_start|>user\n\n  {prompt}<|im_end|>\n\n  <|im_start|>assistant\n\n  '\n---\n# card\n"
        hub.add(repo, {"README.md": card, "SmolLM2.Q4_1.gguf": model, "imatrix.dat": b"x" * 10,
                       "mmproj-f16.gguf": b"GGUF", "big-00001-of-00002.gguf": part1,
                       "big-00002-of-00002.gguf": part2})
        env = {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_TELEMETRY": "1",
               "HF_TOKEN": "hf_secret_test_token"}
        r = cli("recommend", repo, "--ram", "8GiB", "--gpus", "none", "--json", "--all", env=env)
        sent = hub.sent_total("SmolLM2.Q4_1.gguf")
        seen = list(hub.requests)
        emitted = cli("recommend", repo, "--ram", "8GiB", "--gpus", "none", "--emit", "llama.cpp", env=env)
        with_proj = cli("recommend", repo, "--ram", "8GiB", "--gpus", "none", "--json", "--mmproj", env=env)
        hub.faults["no_range"] = True            # a server that ignores Range: read from the start, hang up
        r2 = cli("recommend", repo, "--ram", "8GiB", "--gpus", "none", "--json", env=env)
    finally:
        hub.close()
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    by_file = {c["file"]: c for c in d["candidates"]}
    assert set(by_file) == {"SmolLM2.Q4_1.gguf", "big-00001-of-00002.gguf"}     # no imatrix, no mmproj
    assert by_file["SmolLM2.Q4_1.gguf"]["estimate_source"] == "gguf-header"
    assert by_file["SmolLM2.Q4_1.gguf"]["kv_cache_bytes"] == 90 * MiB
    assert by_file["big-00001-of-00002.gguf"]["estimate_source"] == "file-size"
    assert by_file["big-00001-of-00002.gguf"]["size_bytes"] == len(part1) + len(part2)   # all parts count
    assert "header not read" in r.stderr
    assert 0 < sent < len(model) // 4, sent
    # the token goes to the Hub, never along a redirect to the file host
    auth = {(path.split("/")[1], "Authorization" in hdrs or "authorization" in hdrs) for _, path, hdrs in seen}
    assert ("lfs", True) not in auth and ("lfs", False) in auth
    assert any(path.startswith(f"/{repo}/resolve/") and hdrs.get("Authorization") == "Bearer hf_secret_test_token"
               for _, path, hdrs in seen)
    # --mmproj: the projector is no candidate, its bytes come on top of each model file
    assert with_proj.returncode == 0, with_proj.stderr
    proj = json.loads(with_proj.stdout)["choice"]
    assert proj["file"] == "SmolLM2.Q4_1.gguf" and proj["ram_bytes"] == d["choice"]["ram_bytes"] + len(b"GGUF")
    # the card's ChatML template and stop string reach the launch line
    assert emitted.returncode == 0, emitted.stderr
    assert emitted.stdout.startswith("llama-cli -m SmolLM2.Q4_1.gguf -ngl 0 -c 4096 --chat-template chatml")
    assert r2.returncode == 0, r2.stderr
    assert json.loads(r2.stdout)["choice"]["file"] == "SmolLM2.Q4_1.gguf"


# ---------------------------------------------------------------------------
# the seed manifests, cards, emitted launch lines, split and pulled files
# ---------------------------------------------------------------------------


def test_cli_seed_manifest_zephyr(cli):
    r = cli("recommend", "zephyr-7b-beta", "--ram", "16GiB", "--gpus", "none", "--ctx", "4096", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["ctx"] == 4096 and d["machine"]["gpus"] == []
    assert len(d["candidates"]) == 12
    c = d["choice"]
    assert (c["file"], c["quant"], c["quality_rank"], c["gpu_layers"]) == ("zephyr-7b-beta.Q8_0.gguf", "Q8_0", 1, 0)
    # 7.70 GB of weights + 512 MiB KV (131,072 B/token) + 308 MiB compute + 256 MiB runtime
    assert c["kv_cache_bytes"] == 4096 * 131_072
    assert c["ram_bytes"] == pytest.approx(7_700_000_000 + (512 + 308 + 256) * MiB, abs=MiB)
    assert all(x["estimate_source"] == "card" and x["fits"] for x in d["candidates"])
    assert "Q8_0 is the best quality" in r.stderr


def test_cli_seed_manifest_causallm(cli):
    r = cli("recommend", "causallm-7b-dpo-alpha", "--ram", "16GiB", "--gpus", "none", "--ctx", "4096", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    c = d["choice"]
    assert (c["file"], c["quant"]) == ("causallm_7b-dpo-alpha.Q5_K_M.gguf", "Q5_K_M")
    assert c["kv_cache_bytes"] == 4096 * 524_288                     # 2 GiB: no GQA
    assert c["ram_bytes"] == pytest.approx(5_530_000_000 + (2048 + 320 + 256) * MiB, abs=MiB)
    # the card's own "Max RAM" (size + 2.5 GB) would not even cover the KV cache at 8192
    r = cli("recommend", "causallm-7b-dpo-alpha", "--ram", "8GiB", "--gpus", "none", "--ctx", "8192", "--json")
    assert r.returncode == 3 and json.loads(r.stdout)["choice"] is None


def test_cli_card_path_and_emit(cli, shared_cards):
    card = shared_cards / "TheBloke--zephyr-7B-beta-GGUF.README.md"
    r = cli("recommend", str(card), "--vram", "8GiB", "--ram", "32GiB", "--ctx", "2048", "--emit", "llama.cpp")
    assert r.returncode == 0, r.stderr
    # at 2048 tokens Q8_0 fits 8 GiB whole (7.04 GiB of blocks + output, 256 MiB KV, 176 MiB compute,
    # 512 MiB CUDA context; the embedding stays in RAM); sampling from the card's example command
    assert r.stdout == ("llama-cli -m zephyr-7b-beta.Q8_0.gguf -ngl 33 -c 2048 --chat-template zephyr "
                        "--temp 0.7 --repeat-penalty 1.1 -cnv\n")
    r = cli("recommend", "zephyr-7b-beta", "--vram", "8GiB", "--ram", "32GiB", "--emit", "ollama")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "FROM hf.co/TheBloke/zephyr-7B-beta-GGUF:Q6_K"
    assert 'TEMPLATE """<|system|>\n</s>\n<|user|>\n{{ .Prompt }}</s>\n<|assistant|>\n"""' in r.stdout
    for line in ("PARAMETER num_ctx 4096", "PARAMETER num_gpu 33", 'PARAMETER stop "</s>"',
                 "PARAMETER temperature 0.7"):
        assert line in r.stdout.splitlines()
    r = cli("recommend", "causallm-7b-dpo-alpha", "--ram", "16GiB", "--gpus", "none", "--emit", "llama.cpp")
    assert "--chat-template chatml" in r.stdout and "-ngl 0 -c 4096" in r.stdout
    r = cli("recommend", "zephyr-7b-beta", "--emit", "llama.cpp", "--json")
    assert r.returncode == 2


def _write_split_model(tmp_path):
    import gguf
    import numpy as np

    def part(i, tensors, meta):
        w = gguf.GGUFWriter(str(tmp_path / f"m-{i:05d}-of-00002.gguf"), "llama")
        for k, v in meta.items():
            w.add_uint32(k, v)
        w.add_uint16("split.no", i - 1)
        w.add_uint16("split.count", 2)
        for name, arr in tensors.items():
            w.add_tensor(name, arr)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()

    meta = {"llama.block_count": 2, "llama.embedding_length": 64, "llama.attention.head_count": 4,
            "llama.context_length": 1024, "llama.feed_forward_length": 128}
    z = lambda *s: np.zeros(s, dtype=np.float32)   # noqa: E731
    part(1, {"token_embd.weight": z(100, 64), "blk.0.attn_q.weight": z(64, 64)}, meta)
    part(2, {"blk.1.attn_q.weight": z(64, 64), "output.weight": z(100, 64)}, {})


def test_cli_split_local_gguf(cli, tmp_path):
    _write_split_model(tmp_path)
    r = cli("recommend", str(tmp_path / "m-00001-of-00002.gguf"), "--ram", "4GiB", "--gpus", "none", "--json")
    assert r.returncode == 0, r.stderr
    c = json.loads(r.stdout)["choice"]
    assert c["size_bytes"] == sum(p.stat().st_size for p in tmp_path.glob("m-*.gguf"))
    assert c["kv_cache_bytes"] == 1024 * 2 * 2 * 64 * 2        # 2 layers x 4 heads x 16 dims, f16 K and V
    (tmp_path / "m-00002-of-00002.gguf").unlink()
    r = cli("recommend", str(tmp_path / "m-00001-of-00002.gguf"))
    assert r.returncode == 4 and "missing part" in r.stderr


def test_cli_manifest_file_pulled_locally(cli, smollm2_path, tmp_path):
    """A manifest whose file is in the local store: its own header replaces the card's size."""
    repo, commit = "someone/tiny-GGUF", "c0ffee" * 6 + "abcd"
    snap = tmp_path / "hf" / "hub" / "models--someone--tiny-GGUF" / "snapshots" / commit
    snap.mkdir(parents=True)
    (snap / "tiny.Q4_1.gguf").symlink_to(smollm2_path)
    (snap.parent.parent / "refs").mkdir()
    (snap.parent.parent / "refs" / "main").write_text(commit)
    mdir = tmp_path / "manifests"
    mdir.mkdir()
    (mdir / "tiny.yaml").write_text(
        "schema: 1\nname: tiny\nrepo: someone/tiny-GGUF\nrevision: main\n"
        "architecture: {arch: llama, layers: 30, heads: 9, kv_heads: 3, head_dim: 64, embedding: 576,"
        " ffn: 1536, vocab: 49152, context_length: 8192}\n"
        "files:\n- {name: tiny.Q4_1.gguf, quant: Q4_1, size_bytes: 100000000}\n"
        "- {name: tiny.Q8_0.gguf, quant: Q8_0, size_bytes: 145000000}\n"
        "sources:\n- {kind: hub, repo: someone/tiny-GGUF, revision: main}\n")
    env = {"HF_HOME": str(tmp_path / "hf"), "MODELCTL_MANIFESTS": str(mdir)}
    r = cli("recommend", "tiny", "--ram", "4GiB", "--gpus", "none", "--json", env=env)
    assert r.returncode == 0, r.stderr
    by = {c["file"]: c for c in json.loads(r.stdout)["candidates"]}
    assert by["tiny.Q4_1.gguf"]["estimate_source"] == "gguf-header"
    assert by["tiny.Q4_1.gguf"]["size_bytes"] == smollm2_path.stat().st_size
    assert by["tiny.Q8_0.gguf"]["estimate_source"] == "card"
    r = cli("recommend", "tiny", "--ram", "4GiB", "--gpus", "none", "--ctx", "1024", "--emit", "llama.cpp", env=env)
    assert r.returncode == 0, r.stderr
    # Q8_0 (not pulled) is better and fits: the line names it for pulling
    assert r.stdout.startswith("llama-cli -m tiny.Q8_0.gguf -ngl 0 -c 1024")


def test_emit_edge_cases():
    from modelctl.fit.emit import llama_cpp_line, ollama_modelfile
    from modelctl.core.errors import UsageError

    spec = zephyr()
    spec.prompt_template = {"text": "### Q: {prompt}\n### A:", "style": "placeholders"}
    rec = recommend(spec, CPU16, 2048, "q8_0")
    line = llama_cpp_line(spec, rec.choice)
    assert "-ctk q8_0 -ctv q8_0 -fa on" in line
    assert line.endswith("-p '### Q: {prompt}\n### A:' -cnv")            # unknown template: the card's way
    spec.prompt_template = {"text": 'say """{prompt}"""', "style": "placeholders"}
    with pytest.raises(UsageError, match="Modelfile"):
        ollama_modelfile(spec, rec.choice)
    spec.prompt_template = None
    spec.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    assert "--jinja --chat-template '{% for m in messages %}{{ m['\"'\"'content'\"'\"'] }}{% endfor %}'" \
        in llama_cpp_line(spec, rec.choice)


def test_cli_split_url_reads_every_part_header(cli, tmp_path):
    _write_split_model(tmp_path)
    parts = sorted(tmp_path.glob("m-*.gguf"))
    with RangeServer({f"/d/{p.name}": p for p in parts}) as srv:
        r = cli("recommend", f"{srv.url}/d/m-00001-of-00002.gguf", "--ram", "4GiB", "--gpus", "none", "--json")
        asked = list(srv.requests)
    assert r.returncode == 0, r.stderr
    c = json.loads(r.stdout)["choice"]
    assert c["size_bytes"] == sum(p.stat().st_size for p in parts)
    local = cli("recommend", str(parts[0]), "--ram", "4GiB", "--gpus", "none", "--json")
    assert json.loads(local.stdout)["choice"]["ram_bytes"] == c["ram_bytes"]     # tensors of both parts
    assert {a.split("?")[0] for a in asked} == {"/d/m-00001-of-00002.gguf", "/d/m-00002-of-00002.gguf"}
    r = cli("recommend", f"{srv.url}/d/m-00001-of-99999.gguf")
    assert r.returncode == 2 and "parts" in r.stderr

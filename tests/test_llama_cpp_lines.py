"""The launch lines of ``recommend --emit llama-server`` / ``--emit llama-rpc``, checked against the
argument parsers of the real programs.

Building llama.cpp's llama-server here costs too much (two shared cores), so the option lists are read
from llama.cpp's own source in the test cache (tests/fetch.py extracts them from the llama-cpp-python
0.3.36 sdist that the other tests use):

- ``common/arg.cpp``: every ``add_opt(common_arg({names}, [VALUE_HINT,] help, handler))``; an option is
  llama-server's when its ``set_examples`` (default ``{LLAMA_EXAMPLE_COMMON}``, read from ``arg.h``)
  holds LLAMA_EXAMPLE_SERVER or COMMON and its ``set_excludes`` does not hold SERVER — the filter of
  ``common_params_parser_init``.  The handler's parameters say whether it takes a value and of which
  kind (``int value`` or ``std::stoi(value)``: an integer, ``std::stof``: a number); the value hint says the rest of its shape (``{a,b}`` / ``[a|b]``
  choices, ``N0,N1,...`` a list of numbers, ``SERVERS`` host:port list).
- ``tools/rpc/rpc-server.cpp``: its own parser's ``arg == "-x" || arg == "--xx"`` branches (``++i``: takes
  a value, ``stoi``: an integer); the host must be a dotted IPv4 address (ggml-rpc binds with inet_addr).
- the programs' names: the ``add_executable`` targets of ``tools/server`` and ``tools/rpc``'s CMakeLists.

Every option of every emitted line must be one the program accepts, with a value of the right shape.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

import fetch


@dataclass
class Opt:
    names: tuple[str, ...]
    value: str | None          # None: a flag; "int"; "str"
    hint: str = ""


@pytest.fixture(scope="module")
def tree() -> Path:
    return fetch.llama_cpp_source() / "vendor" / "llama.cpp"


def _call_end(text: str, start: int) -> int:
    """Index after the parenthesis closing the one at ``start`` (strings, chars and // comments skipped)."""
    depth, i = 0, start
    while i < len(text):
        c = text[i]
        if c in "\"'":
            i += 1
            while text[i] != c:
                i += 2 if text[i] == "\\" else 1
        elif text.startswith("//", i):
            i = text.index("\n", i)
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise AssertionError("unbalanced parentheses in arg.cpp")


def _set(block: str, method: str) -> set[str] | None:
    m = re.search(rf"\.{method}\(\s*\{{([^}}]*)\}}\s*\)", block)
    return None if m is None else {s.strip() for s in m.group(1).split(",") if s.strip()}


def server_options(tree: Path) -> dict[str, Opt]:
    assert "std::set<enum llama_example> examples = {LLAMA_EXAMPLE_COMMON};" in (tree / "common/arg.h").read_text()
    text = (tree / "common/arg.cpp").read_text()
    opts: dict[str, Opt] = {}
    for m in re.finditer(r"add_opt\(common_arg\(", text):
        block = text[m.start():_call_end(text, m.start() + len("add_opt"))]
        examples = _set(block, "set_examples") or {"LLAMA_EXAMPLE_COMMON"}
        excludes = _set(block, "set_excludes") or set()
        if not examples & {"LLAMA_EXAMPLE_SERVER", "LLAMA_EXAMPLE_COMMON"} or "LLAMA_EXAMPLE_SERVER" in excludes:
            continue
        code = re.sub(r"^\s*//.*$", "", re.sub(r"/\*.*?\*/", "", block, flags=re.S), flags=re.M)
        # common_arg({names}, [{negated names},] [VALUE_HINT,] help, handler)
        lists = re.match(r'add_opt\(common_arg\(\s*\{([^}]*)\}\s*(?:,\s*\{([^}]*)\})?', code)
        names = tuple(re.findall(r'"(-[^"]*)"', lists.group(1) + (lists.group(2) or "")))
        handler = re.search(r"\[\]\s*\(\s*common_params\s*&\s*\w*\s*(,[^)]*)?\)", code)
        assert handler, block[:200]
        params = handler.group(1) or ""
        value = None if not params or re.match(r",\s*bool\b", params) else \
            "int" if re.match(r",\s*int\b", params) or "std::stoi(value)" in code else \
            "float" if re.search(r"std::sto[fd]\(value\)", code) else "str"
        literals = re.findall(r'"((?:[^"\\]|\\.)*)"', code[lists.end():])
        hint = literals[0] if value and literals else ""
        for n in names:
            opts[n] = Opt(names, value, hint)
    return opts


def rpc_server_options(tree: Path) -> dict[str, Opt]:
    text = (tree / "tools/rpc/rpc-server.cpp").read_text()
    body = text[text.index("static bool rpc_server_params_parse"):text.index("static std::vector<ggml_backend_dev_t>")]
    opts: dict[str, Opt] = {}
    for branch in re.split(r"\}\s*else\s+", body)[0:]:
        names = tuple(re.findall(r'arg == "([^"]+)"', branch))
        if not names:
            continue
        value = None if "++i" not in branch else "int" if "stoi(argv[i])" in branch else "str"
        for n in names:
            opts[n] = Opt(names, value, "HOST" if "--host" in names else "")
    return opts


def executables(cmake: Path) -> set[str]:
    text = cmake.read_text()
    found, target = set(), None
    for line in text.splitlines():
        m = re.match(r"\s*set\(TARGET\s+([\w-]+)\)", line)
        target = m.group(1) if m else target
        if re.match(r"\s*add_executable\(\$\{TARGET\}", line):
            found.add(target)
    return found


IPV4 = r"\d{1,3}(\.\d{1,3}){3}"


def value_ok(opt: Opt, v: str) -> bool:
    hint = opt.hint
    if opt.value == "int":
        return re.fullmatch(r"-?\d+", v) is not None
    if opt.value == "float":
        return re.fullmatch(r"-?\d+(\.\d+)?", v) is not None
    if re.fullmatch(r"\{[\w,|-]+\}|\[[\w|,-]+\]", hint):
        return v in re.split(r"[,|]", hint[1:-1])
    if hint.startswith("N0,N1"):
        return all(re.fullmatch(r"\d+(\.\d+)?", x) for x in v.split(","))
    if hint == "SERVERS":
        return all(re.fullmatch(rf"{IPV4}:\d{{1,5}}", x) for x in v.split(","))
    if hint == "HOST" and opt.names[0] == "-H":   # rpc-server: ggml-rpc binds with inet_addr
        return re.fullmatch(IPV4, v) is not None
    return v != ""


def check_line(line: str, program_names: set[str], opts: dict[str, Opt]) -> list[str]:
    """The options the line uses (each checked); fails on anything the program would refuse."""
    argv = shlex.split(line)
    assert argv[0] in program_names, f"{argv[0]} is not one of {program_names}"
    used, i = [], 1
    while i < len(argv):
        opt = opts.get(argv[i])
        assert opt is not None, f"{argv[i]!r} is not an option of {argv[0]}: {line}"
        used.append(argv[i])
        if opt.value is not None:
            assert i + 1 < len(argv), f"{argv[i]} needs a value: {line}"
            assert value_ok(opt, argv[i + 1]), f"{argv[i]} {argv[i + 1]!r} is not a {opt.value} of shape {opt.hint!r}"
            i += 1
        i += 1
    return used


# ---------------------------------------------------------------------------
# the parsers are read right (or every check below would pass for nothing)
# ---------------------------------------------------------------------------


def test_the_option_lists_read_from_the_source_are_the_programs(tree):
    server = server_options(tree)
    assert server["-np"].value == "int" and server["--parallel"].names == ("-np", "--parallel")
    assert server["--rpc"].hint == "SERVERS" and server["-ts"].hint == "N0,N1,N2,..."
    assert server["--jinja"].value is None and server["-c"].value == "int" and server["--temp"].value == "float"
    assert server["-ngl"].value == "int" and server["--no-jinja"].value is None
    assert "--api-key" in server and "--host" in server            # server-only options are in
    assert "-cnv" not in server and "--conversation" not in server  # llama-cli's own are not
    rpc = rpc_server_options(tree)
    assert set(rpc) == {"-H", "--host", "-t", "--threads", "-d", "--device", "-p", "--port", "-c", "--cache",
                        "-h", "--help"}
    assert rpc["-p"].value == "int" and rpc["-c"].value is None and rpc["-H"].value == "str"
    assert executables(tree / "tools/server/CMakeLists.txt") == {"llama-server"}
    with pytest.raises(AssertionError):
        check_line("llama-server -m m.gguf -cnv", {"llama-server"}, server)
    with pytest.raises(AssertionError):
        check_line("llama-server -m m.gguf -np four", {"llama-server"}, server)


# ---------------------------------------------------------------------------
# the lines
# ---------------------------------------------------------------------------


def test_emit_llama_server_is_accepted_by_llama_server(cli, tree, smollm2_path):
    server = server_options(tree)
    names = executables(tree / "tools/server/CMakeLists.txt")
    r = cli("recommend", str(smollm2_path), "--emit", "llama-server", "--parallel", "4", "--ctx", "1024",
            "--gpus", "none")
    assert r.returncode == 0, r.stderr
    used = check_line(r.stdout.strip(), names, server)
    argv = shlex.split(r.stdout)
    assert argv[argv.index("-c") + 1] == "4096" and argv[argv.index("-np") + 1] == "4"   # 4 slots of 1024
    assert {"-m", "-ngl", "-c", "-np", "--host", "--port"} <= set(used)
    # a manifest: the card's template and sampling, a quantized KV cache (flash attention), GPU layers
    r = cli("recommend", "zephyr-7b-beta", "--vram", "8GiB", "--ram", "32GiB", "--kv-type", "q8_0",
            "--emit", "llama-server")
    assert r.returncode == 0, r.stderr
    used = check_line(r.stdout.strip(), names, server)
    assert {"-ctk", "-ctv", "-fa", "--chat-template", "--temp", "--repeat-penalty"} <= set(used)


def test_emit_llama_server_with_a_jinja_template(tree):
    from modelctl.fit.emit import llama_server_line
    from test_recommend import CPU16, zephyr

    from modelctl.fit.recommend import recommend

    spec = zephyr()
    spec.prompt_template = None
    spec.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    line = llama_server_line(spec, recommend(spec, CPU16, 2048).choice, parallel=2)
    used = check_line(line, executables(tree / "tools/server/CMakeLists.txt"), server_options(tree))
    assert used.count("--jinja") == 1 and "--chat-template" in used


def test_emit_llama_rpc_lines_are_accepted_by_rpc_server_and_llama_server(cli, tree, qwen_path):
    r = cli("recommend", str(qwen_path), "--ctx", "2048", "--parallel", "2", "--emit", "llama-rpc",
            "--rpc-host", "192.0.2.10:50052=600MiB", "--rpc-host", "192.0.2.11:50052=1GiB",
            "--rpc-host", "192.0.2.12:50060=700MB")
    assert r.returncode == 0, r.stderr
    *servers, head = r.stdout.strip().splitlines()
    rpc_names = executables(tree / "tools/rpc/CMakeLists.txt")
    for line, (host, port) in zip(servers, [("192.0.2.10", "50052"), ("192.0.2.11", "50052"), ("192.0.2.12", "50060")]):
        check_line(line, rpc_names, rpc_server_options(tree))
        argv = shlex.split(line)
        assert argv[argv.index("-H") + 1] == host and argv[argv.index("-p") + 1] == port
    assert len(servers) == 3
    used = check_line(head, executables(tree / "tools/server/CMakeLists.txt"), server_options(tree))
    assert {"--rpc", "--tensor-split", "-ngl", "-np", "-c"} <= set(used)
    argv = shlex.split(head)
    assert argv[argv.index("--rpc") + 1] == "192.0.2.10:50052,192.0.2.11:50052,192.0.2.12:50060"
    split = [int(x) for x in argv[argv.index("--tensor-split") + 1].split(",")]
    n_layers = 24   # Qwen2-0.5B's blocks
    assert sum(split) == n_layers + 1 == int(argv[argv.index("-ngl") + 1])    # every block + the output layer
    assert argv[argv.index("-c") + 1] == "4096"
    assert "the head keeps the embeddings" in r.stderr


def _llama_cpp_layer_devices(split: list[int], n_layer: int) -> list[int]:
    """llama-model.cpp's assignment with -ngl all: layer il goes to the first device whose normalised
    running sum of the split (float32) exceeds il / (n_layer + 1)."""
    import numpy as np

    sums = np.cumsum(np.array(split, dtype=np.float32), dtype=np.float32)
    sums = sums / sums[-1]
    return [int(np.searchsorted(sums, np.float32(il) / np.float32(n_layer + 1), side="right"))
            for il in range(n_layer + 1)]


@pytest.mark.parametrize("mems", [[6, 4], [2, 2, 2, 2], [1, 9], [3, 5, 4]])
def test_the_split_fits_every_host_and_llama_cpp_places_layers_as_planned(mems):
    from test_recommend import CPU16, zephyr

    from modelctl.fit.recommend import RpcHost, layer_costs, recommend, split_layers

    rec = recommend(zephyr(), CPU16, 4096)
    est = rec.candidates[-1].estimate          # the smallest file: fits every split asked here
    hosts = [RpcHost(f"192.0.2.{i}", 50052, m << 30) for i, m in enumerate(mems)]
    shares = split_layers(est, hosts)
    assert shares is not None
    counts = [s.layers for s in shares]
    assert sum(counts) == est.arch.layers + 1
    costs = layer_costs(est)
    devices = _llama_cpp_layer_devices(counts, est.arch.layers)
    for j, s in enumerate(shares):
        mine = [il for il, d in enumerate(devices) if d == j]
        assert len(mine) == s.layers
        assert sum(costs[il] for il in mine) + est.compute_bytes == s.bytes <= s.host.mem_bytes


def test_llama_rpc_refusals(cli, qwen_path):
    r = cli("recommend", str(qwen_path), "--emit", "llama-rpc", "--rpc-host", "192.0.2.10:50052=100MiB")
    assert r.returncode == 3 and "nothing fits across 1 RPC host" in r.stderr
    for bad in ("[::1]:50052=8GiB", "box:50052=8GiB", "192.0.2.10:50052", "192.0.2.10:99999=8GiB",
                "192.0.2.10:50052=lots"):
        r = cli("recommend", str(qwen_path), "--emit", "llama-rpc", "--rpc-host", bad)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, (bad, r.stderr)
    r = cli("recommend", str(qwen_path), "--emit", "llama-rpc")
    assert r.returncode == 2 and "--rpc-host" in r.stderr
    r = cli("recommend", str(qwen_path), "--rpc-host", "192.0.2.10:50052=8GiB")
    assert r.returncode == 2

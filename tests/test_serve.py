"""``modelctl serve`` as users meet it: a real server process on 127.0.0.1, the official ``openai``
client and raw sockets against it, on SmolLM2.

Greedy answers are checked against ``modelctl run --parse-special`` on the prompt that
``modelctl chat --print-prompt`` renders (same tokens, same model, so the same text).
Every wait is bounded; nothing here asserts a timing.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest
from conftest import run_cli

KEY = "sk-test-3f9c1e7a"
WRONG_KEY = "sk-wrong-77d2b0"
QUESTIONS = ["What is the capital of France?", "Name a colour.", "What is 2 plus 2?", "Say hello."]


class Server:
    """``python -m modelctl serve ...`` started on a free port; ready when it prints its URL."""

    def __init__(self, *args: str, env: dict | None = None):
        full_env = {**os.environ, "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}
        full_env.pop("MODELCTL_API_KEY", None)
        full_env.update(env or {})
        self.proc = subprocess.Popen([sys.executable, "-m", "modelctl", "serve", *args, "--port", "0"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env)
        self.url = self._read_url()
        host_port = self.url.split("//", 1)[1].split("/", 1)[0]
        self.host, self.port = host_port.rsplit(":", 1)[0], int(host_port.rsplit(":", 1)[1])
        self.stderr = ""

    def _read_url(self) -> str:
        timer = threading.Timer(120, self.proc.kill)
        timer.start()
        try:
            line = self.proc.stdout.readline().strip()
        finally:
            timer.cancel()
        if not line.startswith("http://"):
            self.proc.kill()
            raise AssertionError(f"server did not start: {line!r} {self.proc.stderr.read()}")
        return line

    def client(self, key: str | None = KEY, **kw) -> "openai.OpenAI":
        return openai.OpenAI(base_url=self.url, api_key=key or "none", max_retries=0, timeout=300, **kw)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                key: str | None = KEY) -> tuple[int, dict]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=300)
        h = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {}),
             **(headers or {})}
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, json.loads(data) if data else {}

    def health(self) -> dict:
        return self.request("GET", "/health", key=None)[1]

    def wait_idle(self, bound_s: float = 300) -> dict:
        end = time.monotonic() + bound_s
        while time.monotonic() < end:
            h = self.health()
            if h["slots_processing"] == 0 and h["queued"] == 0:
                return h
            time.sleep(0.2)
        raise AssertionError(f"the server stayed busy: {h}")

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def stop(self, sig=signal.SIGTERM, bound_s: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            _, self.stderr = self.proc.communicate(timeout=bound_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, self.stderr = self.proc.communicate()
            raise AssertionError("the server did not stop")
        return self.proc.returncode


@pytest.fixture(scope="module")
def server(smollm2_path):
    s = Server(str(smollm2_path), "--parallel", "2", "--ctx", "512", "--threads", "2",
               env={"MODELCTL_API_KEY": KEY})
    yield s
    code = s.stop(signal.SIGTERM)
    assert code == 0, s.stderr
    assert KEY not in s.stderr and WRONG_KEY not in s.stderr    # never logged


def rendered_prompt(model: Path, question: str) -> str:
    r = run_cli("chat", str(model), "-p", question, "--print-prompt", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["prompt"]


def run_greedy(model: Path, prompt: str, n: int) -> dict:
    r = run_cli("run", str(model), "-p", prompt, "--parse-special", "--temp", "0", "-n", str(n), "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def chat(client, question: str, max_tokens: int, **kw):
    kw.setdefault("temperature", 0)
    return client.chat.completions.create(model="SmolLM2-135M-Instruct.Q4_1.gguf", max_tokens=max_tokens,
                                          messages=[{"role": "user", "content": question}], **kw)


def stream_text(stream) -> tuple[str, list]:
    chunks = list(stream)
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices), chunks


# ---------------------------------------------------------------------------
# the API through the official client
# ---------------------------------------------------------------------------


def test_models_list_names_the_served_model(server):
    models = server.client().models.list()
    assert [m.id for m in models.data] == ["SmolLM2-135M-Instruct.Q4_1.gguf"]


def test_chat_greedy_answer_is_modelctl_run_on_the_rendered_prompt(server, smollm2_path):
    expected = run_greedy(smollm2_path, rendered_prompt(smollm2_path, QUESTIONS[0]), 12)
    r = chat(server.client(), QUESTIONS[0], 12)
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == expected["text"]
    assert r.choices[0].finish_reason == ("length" if expected["finish_reason"] == "length" else "stop")
    assert r.usage.prompt_tokens == expected["prompt_tokens"]
    assert r.usage.completion_tokens == len(expected["tokens"])
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_chat_stream_chunks_concatenate_to_the_whole_answer(server):
    client = server.client()
    whole = chat(client, QUESTIONS[1], 10)
    text, chunks = stream_text(chat(client, QUESTIONS[1], 10, stream=True, stream_options={"include_usage": True}))
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1 and all(c.object == "chat.completion.chunk" for c in chunks)
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_completions_whole_and_streamed_are_modelctl_run(server, smollm2_path):
    prompt = "The three primary colours are"
    expected = run_greedy(smollm2_path, prompt, 10)
    client = server.client()
    r = client.completions.create(model="SmolLM2-135M-Instruct.Q4_1.gguf", prompt=prompt, max_tokens=10,
                                  temperature=0)
    assert r.choices[0].text == expected["text"]
    assert r.usage.prompt_tokens == expected["prompt_tokens"]
    assert r.usage.completion_tokens == len(expected["tokens"])
    chunks = list(client.completions.create(model="SmolLM2-135M-Instruct.Q4_1.gguf", prompt=prompt,
                                            max_tokens=10, temperature=0, stream=True))
    assert "".join(c.choices[0].text for c in chunks) == expected["text"]
    assert chunks[-1].choices[0].finish_reason == "length"


def test_seeded_sampling_is_reproducible_and_stop_strings_end_the_answer(server):
    client = server.client()
    kw = dict(temperature=0.9, top_p=0.9, seed=7, extra_body={"top_k": 20})
    a = chat(client, QUESTIONS[3], 12, **kw).choices[0].message.content
    b = chat(client, QUESTIONS[3], 12, **kw).choices[0].message.content
    assert a == b
    whole = chat(client, QUESTIONS[0], 12).choices[0].message.content
    cut = whole[len(whole) // 2:len(whole) // 2 + 2]
    stopped = chat(client, QUESTIONS[0], 12, stop=[cut]).choices[0]
    assert stopped.message.content == whole[:whole.index(cut)] and stopped.finish_reason == "stop"


# ---------------------------------------------------------------------------
# load
# ---------------------------------------------------------------------------


def test_sixteen_streaming_clients_on_two_slots_all_get_their_answer(server):
    client = server.client()
    expected = {q: chat(client, q, 8).choices[0].message.content for q in QUESTIONS}
    before = server.health()["requests_answered"]
    jobs = [QUESTIONS[i % len(QUESTIONS)] for i in range(16)]
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda q: stream_text(chat(server.client(), q, 8, stream=True))[0], jobs,
                                timeout=600))
    assert results == [expected[q] for q in jobs]
    h = server.wait_idle()
    assert h["requests_answered"] - before == 16 and h["slots_idle"] == 2


def test_requests_beyond_the_slots_are_answered_in_the_order_they_came(smollm2_path):
    s = Server(str(smollm2_path), "--ctx", "256", "--parallel", "1")
    try:
        blocker = http.client.HTTPConnection(s.host, s.port, timeout=300)
        blocker.request("POST", "/v1/completions", headers={"Content-Type": "application/json"},
                        body=json.dumps({"prompt": "Once upon a time", "max_tokens": 32, "stream": True}))
        resp = blocker.getresponse()
        assert resp.readline().startswith(b"data: ")        # the one slot is busy
        done, lock, threads = [], threading.Lock(), []

        def ask(i: int) -> None:
            status, body = s.request("POST", "/v1/completions", json.dumps(
                {"prompt": f"Question {i}:", "max_tokens": 2, "temperature": 0}).encode(), key=None)
            with lock:
                done.append((i, status))

        for i in range(4):
            threads.append(threading.Thread(target=ask, args=(i,)))
            threads[-1].start()
            end = time.monotonic() + 120
            while s.health()["queued"] < i + 1 and time.monotonic() < end:   # it waits in the queue
                time.sleep(0.05)
            assert s.health()["queued"] == i + 1
        resp.read()
        for t in threads:
            t.join(300)
        assert done == [(0, 200), (1, 200), (2, 200), (3, 200)]
    finally:
        assert s.stop() == 0, s.stderr


def test_memory_stays_flat_over_200_requests(server):
    client = server.client()

    def ask(i: int) -> None:
        r = client.completions.create(model="SmolLM2-135M-Instruct.Q4_1.gguf", prompt="Count: one, two,",
                                      max_tokens=1, temperature=0, stream=bool(i % 2))
        list(r) if i % 2 else r.choices[0].text

    for i in range(20):     # warm up: allocator pools, caches, the client's connection
        ask(i)
    start = server.rss_kib()
    for i in range(200):
        ask(i)
    grown = server.rss_kib() - start
    assert grown < 8 * 1024, f"RSS grew by {grown} KiB over 200 requests"


# ---------------------------------------------------------------------------
# faults: the server answers them and keeps answering
# ---------------------------------------------------------------------------


def test_a_client_that_disconnects_mid_stream_frees_its_slot(server):
    server.wait_idle()
    before = server.health()["tokens_generated"]
    body = json.dumps({"messages": [{"role": "user", "content": "Write a long story about a dragon."}],
                       "max_tokens": 400, "temperature": 0, "stream": True}).encode()
    for _ in range(2):
        conn = http.client.HTTPConnection(server.host, server.port, timeout=300)
        conn.request("POST", "/v1/chat/completions", body=body,
                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"})
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.readline().startswith(b"data: ")     # the stream has begun
        conn.sock.shutdown(socket.SHUT_RDWR)
        conn.close()
    h = server.wait_idle()
    assert h["tokens_generated"] - before < 2 * 400      # both stopped long before max_tokens
    assert chat(server.client(), QUESTIONS[2], 4).choices[0].message.content


def _error(status_body, status: int, code: str) -> dict:
    got_status, body = status_body
    assert got_status == status, body
    assert set(body) == {"error"} and {"message", "type", "code"} <= set(body["error"]), body
    assert body["error"]["code"] == code, body
    return body["error"]


@pytest.mark.parametrize("body, status, code", [
    (b"{not json", 400, "invalid_json"),
    (b"[" * 100_000, 400, "invalid_json"),
    (b"\xff\xfe", 400, "invalid_json"),
    (b"[1, 2]", 400, "invalid_type"),
    (json.dumps({"messages": "hi"}).encode(), 400, "invalid_type"),
    (json.dumps({"messages": []}).encode(), 400, "invalid_value"),
    (json.dumps({"messages": [{"role": "wizard", "content": "x"}]}).encode(), 400, "invalid_value"),
    (json.dumps({"messages": [{"role": "user", "content": 5}]}).encode(), 400, "invalid_type"),
    (json.dumps({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}).encode(), 400, "invalid_type"),
    (json.dumps({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}).encode(), 400, "invalid_value"),
    (json.dumps({"messages": [{"role": "user", "content": "x"}], "max_tokens": 10**12}).encode(), 400, "invalid_value"),
    (json.dumps({"messages": [{"role": "user", "content": "x"}], "max_tokens": 2.5}).encode(), 400, "invalid_type"),
    (json.dumps({"messages": [{"role": "user", "content": "x"}], "stream": "yes"}).encode(), 400, "invalid_type"),
    (json.dumps({"messages": [{"role": "user", "content": "x"}], "n": 3}).encode(), 400, "invalid_value"),
    (json.dumps({"messages": [{"role": "user", "content": "x"}], "model": "gpt-4o"}).encode(), 404, "model_not_found"),
    (json.dumps({"messages": [{"role": "user", "content": "word " * 2000}]}).encode(), 400, "context_length_exceeded"),
])
def test_bad_requests_get_openai_errors(server, body, status, code):
    _error(server.request("POST", "/v1/chat/completions", body), status, code)
    assert server.health()["status"] == "ok"


def test_bad_requests_through_the_client_raise_its_typed_errors(server):
    client = server.client()
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError) as exc:
        client.completions.create(model="SmolLM2-135M-Instruct.Q4_1.gguf", prompt="x " * 2000, max_tokens=4)
    assert exc.value.code == "context_length_exceeded"
    with pytest.raises(openai.AuthenticationError):
        server.client(WRONG_KEY).models.list()


def test_unknown_paths_and_methods_are_openai_errors(server):
    _error(server.request("GET", "/v1/embeddings"), 404, "not_found")
    _error(server.request("GET", "/v1/chat/completions"), 405, "method_not_allowed")


@pytest.mark.parametrize("key", [None, WRONG_KEY, KEY + "x", ""])
def test_missing_or_wrong_key_is_401_and_health_needs_none(server, key):
    err = _error(server.request("GET", "/v1/models", key=key), 401, "invalid_api_key")
    assert KEY not in json.dumps(err) and (not key or key not in json.dumps(err))
    assert server.request("GET", "/health", key=None)[0] == 200


def _raw_exchange(server, head: bytes, body_part: bytes) -> bytes:
    """Send a request head and part of a body, then read what the server answers (it must answer
    without waiting for the rest)."""
    with socket.create_connection((server.host, server.port), timeout=60) as s:
        s.sendall(head + body_part)
        data = b""
        while b"\r\n\r\n" not in data or len(data) < 64:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def test_oversized_bodies_are_refused_before_they_are_read_whole(server):
    auth = f"Authorization: Bearer {KEY}\r\n".encode()
    declared = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + auth
                + b"Content-Length: " + str(64 << 20).encode() + b"\r\n\r\n")
    assert _raw_exchange(server, declared, b'{"messages": [').startswith(b"HTTP/1.1 413")
    chunked = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + auth
               + b"Transfer-Encoding: chunked\r\n\r\n")
    piece = b"x" * (256 << 10)
    body = b"".join(b"%x\r\n" % len(piece) + piece + b"\r\n" for _ in range(5))   # 1.25 MiB, never terminated
    assert _raw_exchange(server, chunked, body).startswith(b"HTTP/1.1 413")
    assert server.client().models.list().data


# ---------------------------------------------------------------------------
# the command's edges
# ---------------------------------------------------------------------------


def test_ctrl_c_finishes_the_running_answer_stops_accepting_and_exits_0(smollm2_path):
    s = Server(str(smollm2_path), "--ctx", "256")
    body = json.dumps({"prompt": "Once upon a time", "max_tokens": 24, "temperature": 0, "stream": True}).encode()
    conn = http.client.HTTPConnection(s.host, s.port, timeout=120)
    conn.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.readline().startswith(b"data: ")
    s.proc.send_signal(signal.SIGINT)
    rest = resp.read().decode()
    assert rest.rstrip().endswith("data: [DONE]") and '"finish_reason":"length"' in rest
    assert s.stop(bound_s=60) == 0, s.stderr
    assert "stopped" in s.stderr and "Traceback" not in s.stderr
    with pytest.raises(OSError):
        socket.create_connection((s.host, s.port), timeout=5).close()


def test_a_second_ctrl_c_cancels_running_answers_and_exits_0(smollm2_path):
    s = Server(str(smollm2_path), "--ctx", "512")
    body = json.dumps({"prompt": "Once upon a time", "max_tokens": 400, "stream": True}).encode()
    conn = http.client.HTTPConnection(s.host, s.port, timeout=120)
    conn.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.readline().startswith(b"data: ")
    s.proc.send_signal(signal.SIGINT)
    end = time.monotonic() + 60
    while "stopping" not in s.proc.stderr.readline() and time.monotonic() < end:
        pass
    s.proc.send_signal(signal.SIGINT)
    assert s.stop(bound_s=60) == 0, s.stderr
    assert "Traceback" not in s.stderr and "ERROR" not in s.stderr
    rest = resp.read().decode()
    assert "[DONE]" not in rest                    # cut, and said so in an error event
    last = json.loads(rest.strip().splitlines()[-1][len("data: "):])
    assert last["error"]["code"] == "server_shutdown"


def test_a_taken_port_is_one_line_and_exit_2(smollm2_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        r = run_cli("serve", str(smollm2_path), "--port", str(taken.getsockname()[1]), timeout=120)
    assert r.returncode == 2
    assert "cannot listen on 127.0.0.1" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_without_the_serve_extra_it_says_how_to_install_it(smollm2_path, tmp_path):
    shadow = tmp_path / "starlette"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise ImportError(\"No module named 'starlette'\", name='starlette')\n")
    r = run_cli("serve", str(smollm2_path), env={"PYTHONPATH": str(tmp_path)}, timeout=120)
    assert r.returncode == 1
    assert "pip install 'modelctl[serve]'" in r.stderr and len(r.stderr.strip().splitlines()) == 1

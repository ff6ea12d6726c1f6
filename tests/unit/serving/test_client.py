"""The openai inference engine's client against small stand-in servers: retries on 429, the answer cache
(no request on a rerun, resuming after a failure), fast failure on a dead URL, config errors."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from ragft.config import ConfigError
from ragft.model.answer_cache import AnswerCache
from ragft.serving import client


class Scripted(BaseHTTPRequestHandler):
    """An OpenAI-compatible stand-in: answers "answer to <user turn>", after the scripted failures
    (``fail``: HTTP codes to answer first, in order; ``fail_after``: answer 500 from that request on)."""

    fail: list[int] = []
    fail_after: int | None = None
    posts: list[dict] = []
    usage: bool = True  # report usage.completion_tokens (one per word of the answer), as vLLM and others do

    def log_message(self, *args):
        pass

    def _reply(self, code: int, obj: dict, headers: dict | None = None) -> None:
        body = json.dumps(obj).encode()
        self.send_response(code)
        for k, v in {"Content-Type": "application/json", "Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._reply(200, {"object": "list", "data": [{"id": "m", "object": "model", "created": 0, "owned_by": "t"}]})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        cls = type(self)
        cls.posts.append(body)
        if cls.fail:
            code = cls.fail.pop(0)
            return self._reply(code, {"error": {"message": "slow down", "type": "rate_limit"}}, {"retry-after-ms": "50"})
        if cls.fail_after is not None and len(cls.posts) > cls.fail_after:
            return self._reply(500, {"error": {"message": "boom", "type": "server_error"}}, {"x-should-retry": "false"})
        text = "answer to " + (body["messages"][-1]["content"] if "messages" in body else body["prompt"])
        choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                  if "messages" in body else {"index": 0, "text": text, "finish_reason": "stop"})
        reply = {"id": "x", "object": "chat.completion" if "messages" in body else "text_completion",
                 "created": 0, "model": body["model"], "choices": [choice]}
        if cls.usage:
            words = len(text.split())
            reply["usage"] = {"prompt_tokens": 1, "completion_tokens": words, "total_tokens": words + 1}
        self._reply(200, reply)


@pytest.fixture
def server():
    Scripted.fail, Scripted.fail_after, Scripted.posts, Scripted.usage = [], None, [], True
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def ocfg(url: str, **kw):
    return SimpleNamespace(**{"base_url": url, "models": {"base": "m"}, "api": "auto", "api_key_env": "RAGFT_TEST_KEY",
                              "concurrency": 2, "timeout": 10.0, "max_retries": 3, **kw})


ICFG = SimpleNamespace(max_new_tokens=8, seed=0, do_sample=False, temperature=1.0, top_p=1.0)
REQUESTS = [client.Request(messages=[{"role": "user", "content": f"q{i}"}]) for i in range(5)]


def url_of(srv) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}/v1"


def test_answers_come_back_in_order_with_greedy_decoding(server, tmp_path):
    answers, counts, timings = client.answer_requests(REQUESTS, ocfg(url_of(server)), ICFG, "m", {"id": 1}, None)
    assert answers == [f"answer to q{i}" for i in range(5)]
    assert counts == [3] * 5  # the server's usage.completion_tokens, as it reported them
    assert timings["requests"] == 5 and timings["cached_requests"] == 0
    body = Scripted.posts[0]
    assert body["model"] == "m" and body["temperature"] == 0.0 and body["seed"] == 0 and body["max_tokens"] == 8


def test_a_server_that_answers_429_twice_is_retried_then_succeeds(server):
    Scripted.fail = [429, 429]
    one = [client.Request(messages=[{"role": "user", "content": "q"}])]
    answers, _, timings = client.answer_requests(one, ocfg(url_of(server)), ICFG, "m", {"id": 1}, None)
    assert answers == ["answer to q"] and len(Scripted.posts) == 3 and timings["requests"] == 1


def test_a_rerun_sends_no_request_and_a_failed_arm_resumes_from_the_cache(server, tmp_path):
    cache = AnswerCache(tmp_path / "cache")
    Scripted.fail_after = 2  # the server dies after two answers
    with pytest.raises(client.ServingError, match=r"127\.0\.0\.1:\d+/v1 failed .*2 of 5 answers are in the answer cache"):
        client.answer_requests(REQUESTS, ocfg(url_of(server), concurrency=1), ICFG, "m", {"id": 1}, cache)
    Scripted.fail_after, Scripted.posts = None, []
    answers, counts, timings = client.answer_requests(REQUESTS, ocfg(url_of(server)), ICFG, "m", {"id": 1}, cache)
    assert answers == [f"answer to q{i}" for i in range(5)] and counts == [3] * 5
    assert len(Scripted.posts) == 3 and (timings["requests"], timings["cached_requests"]) == (3, 2)
    Scripted.posts = []
    again, counts, timings = client.answer_requests(REQUESTS, ocfg(url_of(server)), ICFG, "m", {"id": 1}, cache)
    assert again == answers and counts == [3] * 5 and Scripted.posts == [] and timings["requests"] == 0
    # another model identity or other decoding is another key: asked again
    client.answer_requests(REQUESTS[:1], ocfg(url_of(server)), SimpleNamespace(**{**vars(ICFG), "max_new_tokens": 9}),
                           "m", {"id": 1}, cache)
    client.answer_requests(REQUESTS[:1], ocfg(url_of(server)), ICFG, "m", {"id": 2}, cache)
    assert len(Scripted.posts) == 2


def test_completions_api_for_a_prompt_text(server):
    answers, _, _ = client.answer_requests([client.Request(prompt="Q: x A:")], ocfg(url_of(server)), ICFG, "m", {}, None)
    assert answers == ["answer to Q: x A:"] and "prompt" in Scripted.posts[0]


def test_a_server_without_usage_leaves_the_count_to_the_caller(server, tmp_path):
    Scripted.usage = False
    cache = AnswerCache(tmp_path / "cache")
    one = [client.Request(messages=[{"role": "user", "content": "q"}])]
    answers, counts, _ = client.answer_requests(one, ocfg(url_of(server)), ICFG, "m", {"id": 1}, cache)
    assert answers == ["answer to q"] and counts == [None]
    again, counts, timings = client.answer_requests(one, ocfg(url_of(server)), ICFG, "m", {"id": 1}, cache)
    assert again == answers and counts == [None] and timings["requests"] == 0  # cached all the same


def test_a_dead_url_fails_in_seconds_naming_it(monkeypatch):
    """One GET with the probe's own timeout, no retry: what bounds the failure to seconds (not the client's
    retries with backoff), checked by what the probe asked for rather than by a stopwatch."""
    import httpx

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    calls = []
    real_get = httpx.get
    monkeypatch.setattr(httpx, "get", lambda url, **kw: calls.append((url, kw["timeout"])) or real_get(url, **kw))
    with pytest.raises(ConfigError, match=rf"http://127\.0\.0\.1:{port}/v1/models is unreachable"):
        client.probe(ocfg(f"http://127.0.0.1:{port}/v1"), "m")
    assert calls == [(f"http://127.0.0.1:{port}/v1/models", client.PROBE_TIMEOUT)] and client.PROBE_TIMEOUT == 5.0


def test_probe_returns_the_servers_entry_and_urls_lose_credentials(server):
    assert client.probe(ocfg(url_of(server)), "m") == {"id": "m", "owned_by": "t"}
    assert client.public_url("https://user:pw@host:8443/v1?api_key=s") == "https://host:8443/v1"


def test_unset_served_names_are_config_errors_naming_the_field():
    with pytest.raises(ConfigError, match="inference.openai.models.raft"):
        client.served_model(ocfg("http://127.0.0.1:1/v1"), "raft")
    with pytest.raises(ConfigError, match="inference.openai.base_url"):
        client.served_model(ocfg(None), "base")


def test_a_served_candidate_with_a_dead_endpoint_fails_before_any_work(monkeypatch, tmp_path):
    """A candidate declared `served:` is answered through the same client: the infer stage's engine probes the
    endpoint first (one GET with the probe's timeout), before loading anything or reading a context."""
    import httpx

    from ragft.config import compose_conf, validate
    from ragft.pipeline.infer import Served

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    cfg = validate(compose_conf(overrides=["+candidates.api={served: hosted-model}",
                                           f"inference.openai.base_url={url}"]))
    assert cfg.dag.infer.api == {"base": "base", "model": "model", "weights": "models/base"}
    calls = []
    real_get = httpx.get
    monkeypatch.setattr(httpx, "get", lambda u, **kw: calls.append((u, kw["timeout"])) or real_get(u, **kw))
    with pytest.raises(ConfigError, match=rf"{url}/models is unreachable"):
        Served(cfg, "api", tmp_path / "models/base", None)   # no base folder needed: it fails before loading
    assert calls == [(f"{url}/models", client.PROBE_TIMEOUT)]


class Timed(Scripted):
    """Scripted, recording when each request arrived and when its answer left (each takes 0.2 s)."""

    spans: list[tuple[float, float]] = []

    def do_POST(self):
        import time

        start = time.monotonic()
        time.sleep(0.2)
        super().do_POST()
        type(self).spans.append((start, time.monotonic()))


def test_requests_sharing_a_long_prefix_send_one_first_so_the_servers_prefix_cache_is_warm(tmp_path):
    """long_context: one request alone, then the rest concurrently (vLLM's prefix caching, llama.cpp's
    cache_prompt: the prefix is computed once, by the first); without it, they all start together."""
    Timed.posts, Timed.fail, Timed.fail_after, Timed.usage = [], [], None, True
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Timed)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        for warm in (True, False):
            Timed.spans = []
            answers, _, _ = client.answer_requests(REQUESTS, ocfg(url_of(srv), concurrency=4), ICFG, "m", {"id": 1},
                                                   None, warm_first=warm)
            assert answers == [f"answer to q{i}" for i in range(5)]
            first_done = min(end for _, end in Timed.spans)
            started_before = sum(start < first_done for start, _ in Timed.spans)
            if warm:      # nothing else is sent before the first answer is back
                assert started_before == 1
            else:         # concurrency 4: several start at once (how many depends on the machine's load)
                assert started_before > 1
    finally:
        srv.shutdown()
        srv.server_close()

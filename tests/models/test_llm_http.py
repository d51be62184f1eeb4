"""The OpenAI-compatible HTTP backend against a test double of the remote protocol.

The fake server below (127.0.0.1, an ephemeral port) implements the part of the OpenAI *completions*
endpoint that vLLM and llama.cpp serve and that the backend uses: ``n``, ``max_tokens``,
``temperature``, ``top_p``, ``seed``, ``stop``, ``logprobs`` (processed, i.e. of the distribution
sampled from), ``echo`` with prompt log-probabilities and ``text_offset``, and a list of prompts. Its
"model" is a toy next-token distribution over a few words keyed on the previous token, so every
log-probability is known exactly (every word starts with a space, so re-tokenizing a concatenated
reply gives back the sampled tokens, as BPE almost always does). The real local backend is tested for real in test_llm_local.py.
"""

from __future__ import annotations

import json
import re
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jinja2
import numpy as np
import pytest

from adspace.models.llm import CHATML_TEMPLATE, OpenAICompatibleLLM, Reply, messages

VOCAB = [" Bake", " cookies", " with", " butter", " KitchenFix", " sugar", " oven", " now", "<|im_end|>"]
END = "<|im_end|>"
TOKEN_RE = re.compile(r"<\|[a-z_]+\|>|\n|[ ]?[^\s<]+|\s")


def tokenize(text: str) -> list[tuple[str, int]]:
    return [(m.group(0), m.start()) for m in TOKEN_RE.finditer(text)]


def model_logprobs(prev: str) -> np.ndarray:
    """The toy model: log-probabilities over VOCAB given the previous token (deterministic)."""
    rng = np.random.default_rng(zlib.crc32(prev.encode()))
    logits = rng.normal(0.0, 1.5, len(VOCAB))
    return logits - np.logaddexp.reduce(logits)


def token_logprob(prev: str, tok: str) -> float:
    lp = model_logprobs(prev)
    return float(lp[VOCAB.index(tok)]) if tok in VOCAB else -20.0


def processed(prev: str, temperature: float, top_p: float) -> np.ndarray:
    """Temperature, then the top-p nucleus (smallest set of mass >= top_p), renormalized."""
    z = model_logprobs(prev) / temperature
    z -= np.logaddexp.reduce(z)
    order = np.argsort(-z)
    cum = np.cumsum(np.exp(z[order]))
    keep = order[: int(np.searchsorted(cum, top_p) + 1)]
    out = np.full_like(z, -np.inf)
    out[keep] = z[keep] - np.logaddexp.reduce(z[keep])
    return out


class FakeCompletions(BaseHTTPRequestHandler):
    requests_seen: list[dict] = []
    fail_with: int | None = None
    drop_logprobs = False

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(self, code: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):  # noqa: N802 - http.server's naming
        if self.path != "/v1/completions":
            return self._send(404, {"error": "not found"})
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests_seen.append(req)
        if type(self).fail_with:
            return self._send(type(self).fail_with, {"error": "boom"})
        prompts = req["prompt"] if isinstance(req["prompt"], list) else [req["prompt"]]
        rng = np.random.default_rng(req.get("seed"))
        temp, top_p = float(req.get("temperature", 1.0)), float(req.get("top_p", 1.0))
        stops = req.get("stop") or []
        choices = []
        for prompt in prompts:
            for _ in range(int(req.get("n", 1))):
                toks = tokenize(prompt)
                out_toks, out_lp, offsets, text, finish = [], [], [], "", "length"
                if req.get("echo"):
                    out_toks = [t for t, _ in toks]
                    offsets = [o for _, o in toks]
                    out_lp = [None] + [token_logprob(toks[k - 1][0], toks[k][0]) for k in range(1, len(toks))]
                    text = prompt
                prev = toks[-1][0] if toks else ""
                for _ in range(int(req.get("max_tokens", 16))):
                    dist = processed(prev, temp, top_p)
                    k = int(rng.choice(len(VOCAB), p=np.exp(dist)))
                    tok = VOCAB[k]
                    out_toks.append(tok)
                    out_lp.append(float(dist[k]))
                    offsets.append(len(text))
                    if tok in stops:
                        finish = "stop"  # like vLLM: the stop token's logprob is reported, its text is not
                        break
                    text += tok
                    prev = tok
                lp = {"tokens": out_toks, "token_logprobs": out_lp, "text_offset": offsets}
                choice = {"index": len(choices), "text": text, "finish_reason": finish, "logprobs": lp}
                if type(self).drop_logprobs:
                    choice["logprobs"] = None
                choices.append(choice)
        return self._send(200, {"object": "text_completion", "model": req.get("model"), "choices": choices})


@pytest.fixture()
def server():
    FakeCompletions.requests_seen = []
    FakeCompletions.fail_with = None
    FakeCompletions.drop_logprobs = False
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeCompletions)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


PROMPT = messages("How do I bake cookies?")


def test_render_uses_the_shared_chat_template(server):
    llm = OpenAICompatibleLLM(server, "toy")
    assert llm.render(PROMPT) == jinja2.Environment().from_string(CHATML_TEMPLATE).render(
        messages=PROMPT, add_generation_prompt=True
    )
    assert llm.render(PROMPT).endswith("<|im_start|>assistant\n")


def test_sample_then_score_agree_at_temperature_1(server):
    llm = OpenAICompatibleLLM(server, "toy")
    out = llm.sample([PROMPT], 5, max_new_tokens=6, temperature=1.0, top_p=1.0, seed=3)[0]
    assert len(out) == 5
    assert FakeCompletions.requests_seen[0]["prompt"] == llm.render(PROMPT)
    assert FakeCompletions.requests_seen[0]["stop"] == [END]
    scored = llm.score([PROMPT] * 5, out)
    assert np.allclose(scored, [r.logprob for r in out], atol=1e-12)
    assert len(FakeCompletions.requests_seen) == 2  # one request for all five pairs
    assert any(r.finished for r in out) or all(len(r) == 6 for r in out)


def test_sample_reports_the_processed_distribution(server):
    """With temperature/top-p the backend returns the server's processed log-probs (π_gen), not π's."""
    llm = OpenAICompatibleLLM(server, "toy")
    out = llm.sample([PROMPT], 6, max_new_tokens=5, temperature=0.6, top_p=0.8, seed=1)[0]
    head = llm.render(PROMPT)
    for r in out:
        toks = [t for t, _ in tokenize(head + r.text + (END if r.finished else ""))][len(tokenize(head)) :]
        prevs = [tokenize(head)[-1][0], *toks[:-1]]
        want = [processed(p, 0.6, 0.8)[VOCAB.index(t)] for p, t in zip(prevs, toks, strict=True)]
        assert np.allclose(r.token_logprobs, want, atol=1e-12)
    own = llm.score([PROMPT] * 6, out)
    assert not np.allclose(own, [r.logprob for r in out])


def test_raw_logprob_servers_refuse_tempered_sampling(server):
    llm = OpenAICompatibleLLM(server, "toy", processed_logprobs=False)
    with pytest.raises(ValueError, match="temperature/top_p: this server reports raw log-probabilities"):
        llm.sample([PROMPT], 2, temperature=0.8)
    assert len(llm.sample([PROMPT], 2, max_new_tokens=3)[0]) == 2


def test_score_strings_and_batches(server):
    llm = OpenAICompatibleLLM(server, "toy", batch_size=2)
    replies = [" Bake cookies", " cookies with butter", Reply(" Bake", np.zeros(1), False)]
    got = llm.score([PROMPT] * 3, replies)
    head = llm.render(PROMPT)
    prev = tokenize(head)[-1][0]
    want0 = token_logprob(prev, " Bake") + token_logprob(" Bake", " cookies") + token_logprob(" cookies", END)
    assert np.isclose(got[0], want0)
    assert np.isclose(got[2], token_logprob(prev, " Bake"))  # not finished: no end token
    assert len(FakeCompletions.requests_seen) == 2  # batch_size=2 -> two requests
    assert FakeCompletions.requests_seen[0]["echo"] is True


def test_errors_are_specific(server):
    llm = OpenAICompatibleLLM(server, "toy")
    FakeCompletions.fail_with = 500
    with pytest.raises(RuntimeError, match="HTTP 500"):
        llm.sample([PROMPT], 1)
    FakeCompletions.fail_with = None
    FakeCompletions.drop_logprobs = True
    with pytest.raises(RuntimeError, match="no logprobs"):
        llm.score([PROMPT], ["Bake"])
    with pytest.raises(ValueError, match="base_url: must be an http"):
        OpenAICompatibleLLM("ftp://x", "toy")
    with pytest.raises(ValueError, match="temperature/top_p: the HTTP backend scores only"):
        llm.score([PROMPT], ["Bake"], temperature=0.5)


def test_unreachable_server():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    llm = OpenAICompatibleLLM(f"http://127.0.0.1:{port}/v1", "toy", timeout=2)
    with pytest.raises(RuntimeError, match="unreachable"):
        llm.sample([PROMPT], 1)

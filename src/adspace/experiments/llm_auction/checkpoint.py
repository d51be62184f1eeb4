"""Load the IRPO-trained LLM-Auction model from a checkpoint folder.

IRPO (:func:`adspace.experiments.llm_auction.training.run_irpo`) writes, per epoch ``k``, a folder
``epoch_k`` holding either ``adapter/`` (a LoRA adapter trained on top of the model as it was at the
start of that epoch; it is merged into the weights before the next epoch) or ``model/`` (the full
fine-tuned weights). The trained model is therefore the base model with every epoch's adapter merged
in epoch order, or the last epoch's full model.

:func:`resolve` accepts the run folder (with ``epoch_*``), an experiment folder holding one run
(``irpo_pctr/`` is preferred over ``irpo_oracle/``), or a folder that is itself a transformers model.

The ad-writer warm start (:mod:`adspace.experiments.llm_auction.warmstart`) runs before IRPO and merges its
LoRA adapter into the weights; the experiment saves it as ``epoch_0/adapter`` of each run
(:func:`save_delta_adapter`), so that merging in epoch order rebuilds the model IRPO started from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Checkpoint", "apply_checkpoint", "load_policy", "resolve", "run_split", "save_delta_adapter"]

_EPOCH = re.compile(r"^epoch_(\d+)$")


@dataclass(frozen=True)
class Checkpoint:
    """What a folder holds: a full model folder, or the epochs' adapters to merge in order."""

    root: Path
    full_model: Path | None
    adapters: tuple[Path, ...]

    def describe(self) -> str:
        if self.full_model is not None:
            return f"full model {self.full_model}"
        return f"{len(self.adapters)} LoRA adapter(s) merged in order under {self.root}"


def _epochs(root: Path) -> list[Path]:
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _EPOCH.match(p.name))]
    return [p for _, p in sorted(found)]


def _is_model(folder: Path) -> bool:
    """A transformers model folder: its ``config.json`` names a ``model_type`` (an IRPO run's
    ``config.json`` is its :class:`~adspace.experiments.llm_auction.training.IRPOConfig`, not a model's)."""
    import json

    f = folder / "config.json"
    if not f.is_file():
        return False
    try:
        return "model_type" in json.loads(f.read_text())
    except (ValueError, UnicodeDecodeError):
        return False


def resolve(path: str | Path, *, option: str = "--llm-auction-checkpoint") -> Checkpoint:
    """The checkpoint under ``path``; ``ValueError`` naming ``option`` and the path when there is none."""
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"{option}: no such folder: {root}")
    if not _epochs(root) and _is_model(root):
        return Checkpoint(root, root, ())
    if not _epochs(root):
        for sub in ("irpo_pctr", "irpo_oracle"):
            if (root / sub).is_dir() and _epochs(root / sub):
                root = root / sub
                break
    epochs = _epochs(root)
    if not epochs:
        raise ValueError(f"{option}: {root} holds no epoch_*/adapter, epoch_*/model or transformers model")
    fulls = [e / "model" for e in epochs if _is_model(e / "model")]
    if fulls:
        return Checkpoint(root, fulls[-1], ())
    adapters = tuple(e / "adapter" for e in epochs if (e / "adapter" / "adapter_config.json").is_file())
    if not adapters:
        raise ValueError(
            f"{option}: the epoch folders under {root} hold no adapter/ or model/ "
            "(IRPO saves one only for an epoch that formed preference pairs; see each epoch's metrics.json)"
        )
    return Checkpoint(root, None, adapters)


def run_split(ckpt: Checkpoint) -> dict | None:
    """How the checkpoint's run split the queries, from its experiment's ``results.json`` (``None`` when
    absent): ``{"trained_on", "n_test", "seed", "n_candidates", "data"}``, where the first ``trained_on``
    queries of :func:`adspace.experiments.llm_auction.data.load_queries` were its warm-start and training
    queries (the held-out ones follow them)."""
    import json

    for folder in (ckpt.root, ckpt.root.parent):
        f = folder / "results.json"
        if f.is_file():
            cfg = json.loads(f.read_text()).get("config", {})
            if "n_train" not in cfg:
                return None
            warm = cfg.get("n_warm", 0) if cfg.get("warm") is not None else 0
            return {
                "trained_on": int(warm) + int(cfg["n_train"]),
                "n_test": cfg.get("n_test"),
                "seed": cfg.get("seed", 0),
                "n_candidates": cfg.get("n_candidates", 3),
                "data": cfg.get("data"),
            }
    return None


def apply_checkpoint(model, ckpt: Checkpoint):
    """``model`` (the base causal LM) with ``ckpt``'s adapters merged in epoch order (returns the merged
    model; ``model`` itself may be modified). For a full-model checkpoint, loads that model instead."""
    if ckpt.full_model is not None:
        import torch
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(ckpt.full_model, dtype=torch.float32)
    from peft import PeftModel

    for adapter in ckpt.adapters:
        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    return model


def load_policy(path: str | Path, *, base: str | Path | None = None, device: str = "cpu", threads: int | None = None):
    """A :class:`adspace.models.llm.LocalLLM` serving the trained model: the base model (default
    SmolLM2-135M-Instruct; its tokenizer and chat template in every case) with the checkpoint applied."""
    from adspace.models.llm import LocalLLM

    ckpt = resolve(path)
    llm = LocalLLM(base, device=device, threads=threads)
    llm.model = apply_checkpoint(llm.model, ckpt).to(device).eval()
    llm.name = f"{llm.name}+irpo({ckpt.root.name})"
    llm.checkpoint = ckpt  # type: ignore[attr-defined]
    return llm


def save_delta_adapter(before, after, path: str | Path, *, rank: int, targets) -> float:
    """Save ``after − before`` as a PEFT LoRA adapter on ``before`` (``lora_alpha = rank``, scaling 1).

    For a model into which a rank-``rank`` LoRA adapter on the ``targets`` linear layers was merged (the
    ad-writer warm start merges its adapter and keeps no copy): each changed weight's difference has rank
    at most ``rank`` and is factored exactly (up to float32 rounding) by its SVD, ``B = U·S``, ``A = Vᵀ``.
    ``ValueError`` when a weight outside ``targets`` changed. Returns the largest absolute error of the
    factorisation over all weights (float64).
    """
    import copy

    import torch
    from peft import LoraConfig, get_peft_model

    targets = tuple(targets)
    b_w = dict(before.named_parameters())
    a_w = dict(after.named_parameters())
    if set(a_w) != set(b_w):
        raise ValueError("after: not the same architecture as before")
    changed = [k for k in b_w if not torch.equal(b_w[k], a_w[k])]
    outside = [k for k in changed if not (k.endswith(".weight") and k.split(".")[-2] in targets)]
    if outside:
        raise ValueError(f"after: weights outside the targets {list(targets)} changed: {outside[:3]}")
    cfg = LoraConfig(r=rank, lora_alpha=rank, lora_dropout=0.0, target_modules=list(targets), task_type="CAUSAL_LM")
    pm = get_peft_model(copy.deepcopy(before), cfg)
    err = 0.0
    with torch.no_grad():
        for name, mod in pm.named_modules():
            if not (hasattr(mod, "lora_A") and "default" in mod.lora_A):
                continue
            key = name.removeprefix("base_model.model.") + ".weight"
            d = (a_w[key].detach().double() - b_w[key].detach().double()).cpu()
            u, s, vh = torch.linalg.svd(d, full_matrices=False)
            lora_b, lora_a = u[:, :rank] * s[:rank], vh[:rank]
            mod.lora_A["default"].weight.copy_(lora_a.float())
            mod.lora_B["default"].weight.copy_(lora_b.float())
            err = max(err, float((lora_b @ lora_a - d).abs().max()))
    pm.save_pretrained(str(path))
    return err

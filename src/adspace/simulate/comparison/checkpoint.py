"""Load the IRPO-trained LLM-Auction model from a checkpoint folder.

IRPO (:func:`adspace.simulate.llm_auction.training.run_irpo`) writes, per epoch ``k``, a folder
``epoch_k`` holding either ``adapter/`` (a LoRA adapter trained on top of the model as it was at the
start of that epoch; it is merged into the weights before the next epoch) or ``model/`` (the full
fine-tuned weights). The trained model is therefore the base model with every epoch's adapter merged
in epoch order, or the last epoch's full model.

:func:`resolve` accepts the run folder (with ``epoch_*``), an experiment folder holding one run
(``irpo_pctr/`` is preferred over ``irpo_oracle/``), or a folder that is itself a transformers model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Checkpoint", "apply_checkpoint", "load_policy", "resolve"]

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


def resolve(path: str | Path, *, option: str = "--llm-auction-checkpoint") -> Checkpoint:
    """The checkpoint under ``path``; ``ValueError`` naming ``option`` and the path when there is none."""
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"{option}: no such folder: {root}")
    if (root / "config.json").is_file():
        return Checkpoint(root, root, ())
    if not _epochs(root):
        for sub in ("irpo_pctr", "irpo_oracle"):
            if (root / sub).is_dir() and _epochs(root / sub):
                root = root / sub
                break
    epochs = _epochs(root)
    if not epochs:
        raise ValueError(f"{option}: {root} holds no epoch_*/adapter, epoch_*/model or config.json")
    fulls = [e / "model" for e in epochs if (e / "model" / "config.json").is_file()]
    if fulls:
        return Checkpoint(root, fulls[-1], ())
    adapters = tuple(e / "adapter" for e in epochs if (e / "adapter" / "adapter_config.json").is_file())
    if not adapters:
        raise ValueError(
            f"{option}: the epoch folders under {root} hold no adapter/ or model/ "
            "(IRPO saves one only for an epoch that formed preference pairs; see each epoch's metrics.json)"
        )
    return Checkpoint(root, None, adapters)


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

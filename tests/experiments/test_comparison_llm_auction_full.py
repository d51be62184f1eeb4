"""``adspace experiment llm-auction --full``: the one-GPU config (sizes, device, precision)."""

from __future__ import annotations

from dataclasses import asdict

import pytest
import torch
from typer.testing import CliRunner

from adspace.experiments.comparison.llm_auction_experiment import ExperimentConfig


def test_full_is_the_default_recipe_at_a_larger_scale_on_the_device_asked_for():
    small, full = ExperimentConfig(), ExperimentConfig.full(device="cpu")
    assert full.n_train >= max(256, small.n_train) and full.n_test >= max(100, small.n_test)
    assert full.eval_samples >= 4 and full.irpo.epochs >= max(3, small.irpo.epochs)
    assert full.n_test * full.eval_samples >= 400
    assert full.irpo.device == "cpu" and full.irpo.bf16 is False  # bf16 only on a GPU that has it
    scale = {"device", "bf16", "epochs", "samples", "max_new_tokens", "max_pairs", "batch_size", "dpo_epochs"}
    recipe = {k: v for k, v in asdict(small.irpo).items() if k not in scale}
    assert recipe == {k: v for k, v in asdict(full.irpo).items() if k not in scale}
    assert full.warm == small.warm
    assert ExperimentConfig.full(device="cpu", n_test=7).n_test == 7


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_full_on_a_machine_without_cuda_fails_at_once_naming_the_device():
    with pytest.raises(ValueError, match="device: 'cuda' was asked for but CUDA is not available"):
        ExperimentConfig.full()
    from adspace.cli import app

    res = CliRunner().invoke(app, ["experiment", "llm-auction", "--full", "--out", "unused"])
    assert res.exit_code == 2
    flat = " ".join(res.output.replace("│", " ").split())  # rich wraps the message in a box
    assert "--device" in flat and "CUDA is not available" in flat

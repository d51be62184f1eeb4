"""One device for sampling, scoring, pCTR and DPO: TRL must not move the model behind the sampler's back."""

from __future__ import annotations

import pytest
import torch

from adspace.experiments.llm_auction.training import IRPOConfig, check_device, dpo_args, off_device


def test_dpo_stays_on_the_configured_cpu_even_when_cuda_is_available(tmp_path, monkeypatch):
    """TRL's default (``use_cpu = not torch.cuda.is_available()``) would pick CUDA here; ours keeps the CPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    args = dpo_args(IRPOConfig(device="cpu"), tmp_path, n_pairs=4)
    assert args.use_cpu and args.device.type == "cpu"
    assert args.precompute_ref_log_probs


def test_device_is_validated_by_name():
    assert check_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="device"):
        IRPOConfig(device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device: 'cuda' was asked for but CUDA is not available"):
            IRPOConfig(device="cuda")


def test_off_device_reports_stray_tensors():
    m = torch.nn.Linear(2, 2)
    assert off_device(m, "cpu") == []
    m.register_buffer("stray", torch.zeros(1, device="meta"))
    assert off_device(m, "cpu") == ["meta"]

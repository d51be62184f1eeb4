"""Loading the IRPO-trained LLM-Auction model: every epoch's LoRA adapter merged in order (tiny model)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from adspace.cli import app
from adspace.experiments.llm_auction.checkpoint import (
    Checkpoint,
    apply_checkpoint,
    resolve,
    run_split,
    save_delta_adapter,
)


def tiny():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    return LlamaForCausalLM(cfg).eval()


def adapter(model, seed: int):
    """A LoRA adapter on q_proj/v_proj with non-zero B (a trained one; fresh adapters are the identity)."""
    import torch
    from peft import LoraConfig, get_peft_model

    pm = get_peft_model(
        model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    )
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return pm


def test_adapters_are_merged_in_epoch_order(tmp_path):
    import torch

    run = tmp_path / "out" / "irpo_pctr"
    # what IRPO does: train an adapter, save it, merge it, train the next one on the merged model
    m = tiny()
    for epoch, seed in ((1, 11), (2, 12)):
        pm = adapter(m, seed)
        pm.save_pretrained(run / f"epoch_{epoch}" / "adapter")
        m = pm.merge_and_unload()
    (run / "epoch_3").mkdir()  # an epoch without pairs saves no adapter
    (run / "config.json").write_text('{"epochs": 3, "reward": "pctr"}')  # IRPO writes its config there
    want = m.state_dict()
    ckpt = resolve(tmp_path / "out")  # the experiment folder: its irpo_pctr run is found
    assert ckpt.root == run and [p.parent.name for p in ckpt.adapters] == ["epoch_1", "epoch_2"]
    assert resolve(run) == ckpt  # the run folder itself, its IRPO config.json notwithstanding
    got = apply_checkpoint(tiny(), ckpt).state_dict()
    assert set(got) == set(want)
    for k in want:
        torch.testing.assert_close(got[k], want[k])
    base = tiny().state_dict()
    assert any(not torch.equal(base[k], want[k]) for k in want)  # the checkpoint changed the weights


def test_a_merged_warm_start_is_saved_as_epoch_0_and_merged_first(tmp_path):
    import torch

    run = tmp_path / "irpo_pctr"
    before = tiny()
    warm = adapter(tiny(), 5).merge_and_unload()  # the warm start merges its adapter and keeps no copy
    err = save_delta_adapter(before, warm, run / "epoch_0" / "adapter", rank=2, targets=("q_proj", "v_proj"))
    assert err < 1e-5
    m = warm
    for epoch, seed in ((1, 11), (2, 12)):  # IRPO trains on top of the warm-started model
        pm = adapter(m, seed)
        pm.save_pretrained(run / f"epoch_{epoch}" / "adapter")
        m = pm.merge_and_unload()
    ckpt = resolve(run)
    assert [p.parent.name for p in ckpt.adapters] == ["epoch_0", "epoch_1", "epoch_2"]
    got, want = apply_checkpoint(tiny(), ckpt).state_dict(), m.state_dict()
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=1e-5)
    skipped = apply_checkpoint(tiny(), Checkpoint(run, None, ckpt.adapters[1:])).state_dict()
    assert any((skipped[k] - want[k]).abs().max() > 1e-3 for k in want)  # without epoch_0 it is another model
    with pytest.raises(ValueError, match="outside the targets"):
        changed = tiny()
        with torch.no_grad():
            changed.lm_head.weight.add_(1.0)
        save_delta_adapter(before, changed, tmp_path / "x", rank=2, targets=("q_proj", "v_proj"))


def test_a_full_model_checkpoint_is_loaded(tmp_path):
    import torch

    m = tiny()
    with torch.no_grad():
        m.lm_head.weight.add_(1.0)
    m.save_pretrained(tmp_path / "epoch_1" / "model")
    ckpt = resolve(tmp_path)
    assert ckpt.full_model == tmp_path / "epoch_1" / "model"
    torch.testing.assert_close(apply_checkpoint(tiny(), ckpt).lm_head.weight, m.lm_head.weight)


def test_bad_checkpoint_folders_name_the_option(tmp_path):
    with pytest.raises(ValueError, match="--llm-auction-checkpoint: no such folder"):
        resolve(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="--llm-auction-checkpoint: .* holds no epoch_"):
        resolve(tmp_path / "empty")
    (tmp_path / "e" / "epoch_1").mkdir(parents=True)
    with pytest.raises(ValueError, match="hold no adapter/ or model/"):
        resolve(tmp_path / "e")
    res = CliRunner().invoke(app, ["experiment", "compare", "--llm-auction-checkpoint", str(tmp_path / "nope")])
    assert res.exit_code == 1 and "error: --llm-auction-checkpoint: no such folder" in res.output
    res = CliRunner().invoke(app, ["experiment", "compare", "--mechanisms", "vcg"])
    assert res.exit_code == 1 and "error: --mechanisms: choose from embedding-vcg" in res.output
    res = CliRunner().invoke(app, ["experiment", "compare", "--queries", "0"])
    assert res.exit_code == 1 and "error: --queries: must be a positive integer" in res.output


def test_compare_needs_the_webis_judgments(tmp_path):
    res = CliRunner().invoke(app, ["experiment", "compare", "--data", str(tmp_path)])
    assert res.exit_code == 1 and "error: --data: the Webis ads data set" in res.output
    res = CliRunner().invoke(app, ["experiment", "compare", "--data", str(tmp_path / "nope")])
    assert res.exit_code == 1 and "error: --data: no such folder" in res.output


def test_the_held_out_queries_follow_the_runs_warm_start_and_training_queries(tmp_path):
    import json

    run = tmp_path / "irpo_pctr"
    adapter(tiny(), 1).save_pretrained(run / "epoch_1" / "adapter")
    assert run_split(resolve(run)) is None  # no results.json: nothing to check against
    cfg = {"n_train": 6, "n_warm": 48, "warm": {"steps": 16}, "n_test": 50, "seed": 0, "n_candidates": 3}
    (tmp_path / "results.json").write_text(json.dumps({"config": cfg}))
    assert run_split(resolve(run))["trained_on"] == 54  # warm-start and IRPO queries come first
    (tmp_path / "results.json").write_text(json.dumps({"config": {**cfg, "warm": None}}))
    assert run_split(resolve(tmp_path))["trained_on"] == 6  # no warm start: only the IRPO queries
    (tmp_path / "results.json").write_text(json.dumps({"config": cfg}))
    base = ["experiment", "compare", "--llm-auction-checkpoint", str(tmp_path)]
    res = CliRunner().invoke(app, [*base, "--n-train", "6"])
    assert res.exit_code == 1 and "error: --n-train: the checkpoint's run trained on the first 54" in res.output
    res = CliRunner().invoke(app, [*base, "--seed", "3"])
    assert res.exit_code == 1 and "error: --seed: the checkpoint's run drew its queries with --seed=0" in res.output


def test_the_compare_commands_default_split_is_the_llm_auction_experiments():
    """Without a checkpoint, ``compare`` holds out the queries after the LLM-Auction default's training queries."""
    from adspace.experiments.comparison.llm_auction_experiment import ExperimentConfig
    from adspace.experiments.comparison.runner import CompareConfig

    default = ExperimentConfig()
    assert default.warm is None  # no warm-start queries before the training ones
    assert CompareConfig().n_train == default.n_train

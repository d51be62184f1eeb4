"""Which decode loop and scoring path a device gets, and the ``ADSPACE_DECODE`` / ``ADSPACE_SCORING`` overrides."""

from __future__ import annotations

import pytest

from adspace.models.local_decode import decode_loop_for
from adspace.models.local_scoring import scoring_path_for

CHOOSERS = [
    # (override, chooser, its paths in order, the CUDA default, the default elsewhere)
    ("ADSPACE_DECODE", decode_loop_for, ("synced", "sync-free"), "sync-free", "synced"),
    ("ADSPACE_SCORING", scoring_path_for, ("cached", "padded"), "padded", "cached"),
]


@pytest.mark.parametrize(("env", "choose", "paths", "on_cuda", "elsewhere"), CHOOSERS, ids=[c[0] for c in CHOOSERS])
def test_the_override_picks_the_path_for_every_device(monkeypatch, env, choose, paths, on_cuda, elsewhere):
    monkeypatch.setenv(env, paths[0])
    assert choose("cuda:0") == paths[0] and choose("cpu") == paths[0]
    monkeypatch.setenv(env, paths[1])
    assert choose("cpu") == paths[1]
    monkeypatch.setenv(env, "fast")
    with pytest.raises(ValueError, match=f"{env}: must be one of {paths[0]}, {paths[1]}, got 'fast'"):
        choose("cpu")
    monkeypatch.delenv(env)
    assert choose("cpu") == elsewhere and choose("cuda") == on_cuda

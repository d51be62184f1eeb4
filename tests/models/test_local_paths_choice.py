"""Which decode loop and scoring path a device gets, and the ``ADSPACE_DECODE`` / ``ADSPACE_SCORING`` overrides."""

from __future__ import annotations

import pytest

from adspace.models.local_decode import decode_loop_for
from adspace.models.local_scoring import scoring_path_for


def test_adspace_decode_picks_the_loop_for_every_device(monkeypatch):
    monkeypatch.setenv("ADSPACE_DECODE", "synced")
    assert decode_loop_for("cuda:0") == "synced" and decode_loop_for("cpu") == "synced"
    monkeypatch.setenv("ADSPACE_DECODE", "sync-free")
    assert decode_loop_for("cpu") == "sync-free"
    monkeypatch.setenv("ADSPACE_DECODE", "fast")
    with pytest.raises(ValueError, match="ADSPACE_DECODE: must be one of synced, sync-free, got 'fast'"):
        decode_loop_for("cpu")
    monkeypatch.delenv("ADSPACE_DECODE")
    assert decode_loop_for("cpu") == "synced" and decode_loop_for("cuda") == "sync-free"


def test_adspace_scoring_picks_the_path_for_every_device(monkeypatch):
    monkeypatch.setenv("ADSPACE_SCORING", "cached")
    assert scoring_path_for("cuda:0") == "cached"
    monkeypatch.setenv("ADSPACE_SCORING", "padded")
    assert scoring_path_for("cpu") == "padded"
    monkeypatch.setenv("ADSPACE_SCORING", "fast")
    with pytest.raises(ValueError, match="ADSPACE_SCORING: must be one of cached, padded, got 'fast'"):
        scoring_path_for("cpu")
    monkeypatch.delenv("ADSPACE_SCORING")
    assert scoring_path_for("cpu") == "cached" and scoring_path_for("cuda") == "padded"

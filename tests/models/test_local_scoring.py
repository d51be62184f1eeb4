"""The planning half of the local backend's scoring and decoding: length buckets, and the path chosen per device.

The numbers themselves (both scoring paths equal, both decode loops drawing the same replies) are
checked on the real model in ``tests/models/test_llm_local.py``.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adspace.models.local_decode import decode_loop_for
from adspace.models.local_scoring import length_buckets, scoring_path_for


@given(st.lists(st.integers(1, 300), max_size=200), st.integers(1, 4000))
def test_length_buckets_partition_within_budget(lengths, budget):
    """Every index exactly once; each bucket's padded size (rows x longest) is within the budget unless
    it is a single over-long sequence; buckets are in ascending length, so padding stays small."""
    groups = length_buckets(lengths, budget)
    flat = [k for g in groups for k in g]
    assert sorted(flat) == list(range(len(lengths)))
    for g in groups:
        assert g
        assert len(g) * max(lengths[k] for k in g) <= budget or len(g) == 1
    seq = [lengths[k] for k in flat]
    assert seq == sorted(seq)


def test_length_buckets_fill_greedily():
    assert length_buckets([10, 10, 10, 10], 40) == [[0, 1, 2, 3]]
    assert length_buckets([10, 30, 10, 20], 40) == [[0, 2], [3], [1]]
    assert length_buckets([10, 30, 10, 20], 60) == [[0, 2, 3], [1]]
    assert length_buckets([50, 5], 40) == [[1], [0]]
    with pytest.raises(ValueError, match="token_budget: must be >= 1"):
        length_buckets([1], 0)


def test_paths_by_device():
    assert scoring_path_for("cpu") == "cached" and decode_loop_for("cpu") == "synced"
    assert scoring_path_for("cuda") == "padded" and decode_loop_for("cuda:0") == "sync-free"

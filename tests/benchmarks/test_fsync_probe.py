"""benchmarks/fsync_probe.py: the flush timings are ordered, the file is removed, bad input is refused."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fsync_probe.py"


@pytest.fixture(scope="module")
def fp():
    spec = importlib.util.spec_from_file_location("fsync_probe", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_probe_reports_an_ordered_distribution_and_leaves_nothing_behind(fp, tmp_path):
    out = fp.probe(tmp_path, count=20, size=512)
    assert out["flushes"] == 20 and out["bytes_per_flush"] == 512
    assert 0 < out["p50_ms"] <= out["p90_ms"] <= out["p99_ms"] <= out["p999_ms"] <= out["max_ms"]
    assert out["mean_ms"] <= out["max_ms"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("kwargs", "field"), [({"count": 0}, "count"), ({"size": 0}, "size")])
def test_probe_refuses_empty_work_naming_the_field(fp, tmp_path, kwargs, field):
    with pytest.raises(ValueError, match=field):
        fp.probe(tmp_path, **kwargs)

"""Settings for the whole test suite.

The experiments find the Webis ads data set through ``--data DIR`` or ``ADSPACE_WEBIS_DATA``
(:mod:`adspace.experiments.datasets`). This project's CI and development machines keep it beside the
repository, at ``../shared/data/webis-ads``; when it is there and the variable is not set, the tests use
it. Tests that need it take the ``webis_root`` fixture: without the data set they are skipped on a
developer's machine and *fail* in CI (``CI=true``), which must provide it; tests of the demo fallback
unset the variable themselves.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from adspace.experiments.datasets import WEBIS_ENV, WHERE_TO_GET_IT, webis_data

_BESIDE_THE_REPOSITORY = Path(__file__).resolve().parents[2] / "shared" / "data" / "webis-ads"
if _BESIDE_THE_REPOSITORY.is_dir():
    os.environ.setdefault(WEBIS_ENV, str(_BESIDE_THE_REPOSITORY))


@pytest.fixture
def webis_root() -> Path:
    """The Webis ads data set's folder; skipped without it locally, a failure without it in CI."""
    root = webis_data()
    if root is None:
        msg = f"needs the Webis ads data set: {WHERE_TO_GET_IT}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + " (CI must provide it beside the repository)")
        pytest.skip(msg)
    return root

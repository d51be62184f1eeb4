"""Settings for the whole test suite.

The experiments find the Webis ads data set through ``--data DIR`` or ``ADSPACE_WEBIS_DATA``
(:mod:`adspace.experiments.datasets`). This project's CI and development machines keep it beside the
repository, at ``../shared/data/webis-ads``; when it is there and the variable is not set, the tests use
it. Tests that need it skip without it; tests of the demo fallback unset the variable themselves.
"""

from __future__ import annotations

import os
from pathlib import Path

from adspace.experiments.datasets import WEBIS_ENV

_BESIDE_THE_REPOSITORY = Path(__file__).resolve().parents[2] / "shared" / "data" / "webis-ads"
if _BESIDE_THE_REPOSITORY.is_dir():
    os.environ.setdefault(WEBIS_ENV, str(_BESIDE_THE_REPOSITORY))

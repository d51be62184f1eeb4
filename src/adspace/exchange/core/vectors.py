"""The one validator of vectors sent to the exchange: REST queries and campaign centers, the OpenRTB
Agentic Audiences vector and the dashboard's queries all pass through :func:`check_vector`.

A vector must have the exchange model's dimension, every element finite with ``|x_i| <= MAX_COORD``,
and its Euclidean norm at most ``MAX_NORM``. The bounds keep every score ``log b - ||x - c||^2/σ^2``
far from float64 overflow (``||x - c||^2 <= (2 · MAX_NORM)^2 = 4e12``); the model's own embeddings
have norm 1. The check runs on every auction (384 floats), so it is vectorised: one conversion to a
float64 array, then whole-array tests; only a failing vector is searched for the element to name.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from adspace.models.embedder import DIM

__all__ = ["DIM", "MAX_COORD", "MAX_NORM", "VectorError", "check_vector"]

MAX_COORD = 1e6
MAX_NORM = 1e6


class VectorError(ValueError):
    """A vector out of bounds; the message names the field (and the element)."""


def check_vector(v: Sequence[float] | np.ndarray, field: str, *, dim: int = DIM) -> np.ndarray:
    """``v`` as a float64 array, or :class:`VectorError` naming ``field`` (``field[i]`` for an element)."""
    try:
        x = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise VectorError(f"{field}: must be an array of {dim} numbers") from None
    if x.ndim != 1 or x.shape[0] != dim:
        got = x.shape[0] if x.ndim == 1 else f"shape {x.shape}"
        raise VectorError(f"{field}: must have the exchange model's dimension {dim}, got {got} numbers")
    ok = np.abs(x) <= MAX_COORD  # False for NaN and ±inf too
    if not ok.all():
        i = int(np.argmin(ok))
        raise VectorError(f"{field}[{i}]: must be finite with |value| <= {MAX_COORD:g}, got {float(x[i])!r}")
    norm = float(np.sqrt(x @ x))
    if not norm <= MAX_NORM:
        raise VectorError(f"{field}: its norm must be <= {MAX_NORM:g}, got {norm:g}")
    return x

"""Input validation shared by the mechanisms: done once at the boundary, with messages naming the field.

Every public mechanism function calls these before any array code, so the inner code can assume
finite float64 arrays of the right shapes (the scikit-learn ``check_array`` style).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "as_float_array",
    "as_reserve",
    "check_positive",
    "check_finite",
]


def as_float_array(value: Any, name: str, *, ndim: int | tuple[int, ...] | None = None) -> NDArray[np.float64]:
    """Convert ``value`` to a float64 array, checking its dimensionality and finiteness.

    Raises ``ValueError`` naming ``name`` when the value is not numeric, has the wrong number of
    dimensions, or holds NaN or infinity.
    """
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: must be numeric, got {type(value).__name__} ({exc})") from None
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if arr.ndim not in allowed:
            want = " or ".join(f"{k}-D" for k in allowed)
            raise ValueError(f"{name}: must be {want}, got shape {arr.shape}")
    check_finite(arr, name)
    return arr


def check_finite(arr: NDArray[np.float64], name: str) -> None:
    """Raise ``ValueError`` naming ``name`` and the first offending index if ``arr`` is not finite."""
    if arr.size and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        where = tuple(int(i) for i in bad) if arr.ndim > 1 else int(bad[0]) if arr.ndim == 1 else ()
        raise ValueError(f"{name}: must be finite, got {arr[tuple(bad)]!r} at index {where}")


def check_positive(arr: NDArray[np.float64], name: str) -> None:
    """Raise ``ValueError`` naming ``name`` if any entry of ``arr`` is <= 0."""
    if arr.size and not (arr > 0).all():
        bad = np.argwhere(~(arr > 0))[0]
        where = tuple(int(i) for i in bad) if arr.ndim > 1 else int(bad[0]) if arr.ndim == 1 else ()
        raise ValueError(f"{name}: must be > 0, got {arr[tuple(bad)]!r} at index {where}")


def as_reserve(value: Any, name: str = "reserve") -> float:
    """A reserve in bid units: a finite number >= 0, else ``ValueError`` naming ``name``."""
    try:
        reserve = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be a number, got {value!r}") from None
    if not np.isfinite(reserve) or reserve < 0:
        raise ValueError(f"{name}: must be finite and >= 0, got {value!r}")
    return reserve

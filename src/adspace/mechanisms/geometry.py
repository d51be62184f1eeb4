"""The geometry of the embedding-space auction (Kim 2026, §5).

Three views of the same allocation:

* **Equal reach** (§5.1). Advertisers sharing one σ compete by *power distance*
  ``‖x − c‖² − w`` with site ``c`` and weight ``w = σ² log b`` (``score_le_iff_powerDist_le``):
  the cells are a classical power diagram with straight bisectors.
* **Heterogeneous reach** (§5.2). Aurenhammer's paraboloid lift: lift the query to
  ``(x, ‖x‖²)`` and give advertiser ``i`` the site ``(σ⁻² c, −σ⁻²/2)`` and the weight
  ``‖σ⁻² c‖² + σ⁻⁴/4 − σ⁻² ‖c‖² + log b``. Then
  ``liftedPowerDist((x, ‖x‖²)) = ‖x‖² + ‖x‖⁴ − score(x)`` exactly
  (``liftedPowerDist_paraboloid``), so the winner minimizes lifted power distance.
* **Inner-product lift** (used by :func:`adspace.mechanisms.vcg.clear`). With the query
  ``[x, ‖x‖², 1]`` and the advertiser ``[2c/σ², −1/σ², log b − ‖c‖²/σ²]`` the inner product *is*
  the score, so clearing is a maximum-inner-product search in ``d + 2`` dimensions.

All functions are pure NumPy, float64, and broadcast over leading axes (``x`` of shape ``(..., d)``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "power_distance",
    "equal_sigma_weight",
    "lift_query_paraboloid",
    "lifted_site",
    "lifted_weight",
    "lifted_power_distance",
    "lift_query_inner_product",
    "lift_advertisers_inner_product",
]


def _f64(a: ArrayLike) -> NDArray[np.float64]:
    return np.asarray(a, dtype=np.float64)


def power_distance(x: ArrayLike, site: ArrayLike, weight: ArrayLike) -> NDArray[np.float64]:
    """Power distance ``‖x − site‖² − weight`` (Aurenhammer 1987).

    ``x`` and ``site`` have shape ``(..., d)`` and broadcast; ``weight`` broadcasts against the result.

    >>> float(power_distance([1.0, 0.0], [0.0, 0.0], 0.5))
    0.5
    """
    x, site = _f64(x), _f64(site)
    diff = x - site
    return np.einsum("...k,...k->...", diff, diff) - _f64(weight)


def equal_sigma_weight(sigma: ArrayLike, bid: ArrayLike) -> NDArray[np.float64]:
    """Weight ``σ² log b`` of an advertiser in the equal-reach power diagram (Kim 2026, §5.1)."""
    sigma = _f64(sigma)
    return sigma * sigma * np.log(_f64(bid))


def lift_query_paraboloid(x: ArrayLike) -> NDArray[np.float64]:
    """Lift a query onto the paraboloid: ``x ↦ (x, ‖x‖²)``, shape ``(..., d + 1)``."""
    x = _f64(x)
    sq = np.einsum("...k,...k->...", x, x)
    return np.concatenate([x, sq[..., None]], axis=-1)


def lifted_site(center: ArrayLike, sigma: ArrayLike) -> NDArray[np.float64]:
    """Lifted site ``(σ⁻² c, −σ⁻²/2)`` of Kim 2026 §5.2, shape ``(..., d + 1)``."""
    c = _f64(center)
    inv = 1.0 / np.square(_f64(sigma))
    inv = np.broadcast_to(inv, c.shape[:-1])
    return np.concatenate([inv[..., None] * c, (-0.5 * inv)[..., None]], axis=-1)


def lifted_weight(center: ArrayLike, sigma: ArrayLike, bid: ArrayLike) -> NDArray[np.float64]:
    """Lifted weight ``‖σ⁻² c‖² + σ⁻⁴/4 − σ⁻² ‖c‖² + log b`` of Kim 2026 §5.2."""
    c = _f64(center)
    inv = 1.0 / np.square(_f64(sigma))
    c2 = np.einsum("...k,...k->...", c, c)
    return inv * inv * c2 + inv * inv / 4.0 - inv * c2 + np.log(_f64(bid))


def lifted_power_distance(x: ArrayLike, center: ArrayLike, sigma: ArrayLike, bid: ArrayLike) -> NDArray[np.float64]:
    """Power distance of the lifted query ``(x, ‖x‖²)`` to the advertiser's lifted site and weight.

    Equals ``‖x‖² + ‖x‖⁴ − score(x)`` (``liftedPowerDist_paraboloid``); the leading terms do not
    depend on the advertiser, so the auction winner minimizes it.
    """
    return power_distance(lift_query_paraboloid(x), lifted_site(center, sigma), lifted_weight(center, sigma, bid))


def lift_query_inner_product(x: ArrayLike) -> NDArray[np.float64]:
    """Inner-product lift of queries: ``x ↦ [x, ‖x‖², 1]``, shape ``(..., d + 2)``."""
    x = _f64(x)
    sq = np.einsum("...k,...k->...", x, x)
    return np.concatenate([x, sq[..., None], np.ones_like(sq)[..., None]], axis=-1)


def lift_advertisers_inner_product(center: ArrayLike, sigma: ArrayLike, bid: ArrayLike) -> NDArray[np.float64]:
    """Inner-product lift of advertisers: ``[2c/σ², −1/σ², log b − ‖c‖²/σ²]``, shape ``(..., d + 2)``.

    ``lift_query_inner_product(x) @ lift_advertisers_inner_product(c, σ, b)`` equals
    ``log b − ‖x − c‖²/σ²`` in exact arithmetic. In floating point the expansion cancels badly when
    ``‖x‖`` and ``‖c‖`` are large relative to ``‖x − c‖``; :func:`adspace.mechanisms.vcg.clear`
    therefore uses it only as a certified filter followed by exact re-scoring.
    """
    c = _f64(center)
    inv = 1.0 / np.square(_f64(sigma))
    inv = np.broadcast_to(inv, c.shape[:-1])
    c2 = np.einsum("...k,...k->...", c, c)
    const = np.log(_f64(bid)) - inv * c2
    return np.concatenate([2.0 * inv[..., None] * c, (-inv)[..., None], const[..., None]], axis=-1)

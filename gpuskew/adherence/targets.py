"""Target models: the target net delta of a group, in coins of its underlying.

All functions are vectorised over groups (NumPy arrays, one element per group row); every row
passed to one call shares the same :class:`~gpuskew.limits.TargetSpec`.

* ``neutral``  : q* = 0.
* ``fixed``    : q* = coins, or q* = usd / S.
* ``base_pct`` : q* = p * V / S, with p the target share of value held in the underlying and V the
  group's USD value (``value_scope = "group"``: the sum of ``value_usd`` over every row of the
  exposures table with the same level and tag values, i.e. across all the group's underlyings,
  cash held as spot positions of USD or stablecoin underlyings included; ``"pair"``: this
  underlying's value plus the group's cash, Hummingbot's base + quote). Hummingbot's
  ``inventory_target_base_pct``, generalised to a book.
* ``carry``    : q* = -f / (gamma * sigma^2 * S), clipped to +/- max_coins (or max_usd / S):
  the mean-variance optimum of holding q coins that earn -f*q*S USD/year of funding (f annualised,
  paid by longs when positive) against the variance (sigma*S*q)^2 per year, with absolute risk
  aversion gamma in 1/USD. Positive funding -> short target.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gpuskew.errors import InvalidInput
from gpuskew.policy.limits import TargetSpec


def _missing(column: str, spec_key: str, model: str, underlying: Sequence[str] | None,
             bad: np.ndarray, rule: str) -> InvalidInput:
    names = [] if underlying is None else sorted({str(underlying[i]) for i in np.flatnonzero(bad)})
    who = f" for {', '.join(names)}" if names else ""
    return InvalidInput("underlyings", column,
                        f"{rule}{who}: needed by the {model} model set at {spec_key}")


def require_positive(values: np.ndarray | None, n: int, column: str, spec_key: str, model: str,
                     underlying: Sequence[str] | None) -> np.ndarray:
    """``values`` as float64, raising InvalidInput if any is missing (NaN) or not > 0."""
    v = np.full(n, np.nan) if values is None else np.asarray(values, dtype=np.float64)
    bad = ~(v > 0)
    if bad.any():
        raise _missing(column, spec_key, model, underlying, bad, "must be given and > 0")
    return v


def group_value_usd(keys: np.ndarray, underlying: Sequence[str], value_usd: np.ndarray,
                    scope: str = "group",
                    cash_underlyings: Sequence[str] = ("USD", "USDC", "USDT")) -> np.ndarray:
    """V per row for the ``base_pct`` target, USD.

    ``keys``: group codes (``GroupIndex.portfolio_codes``) over ALL rows of the exposures table;
    ``value_usd``: each row's value. ``scope="group"``: V = sum of value_usd over the rows with the
    same key (all underlyings, cash included). ``scope="pair"``: V = the row's own value_usd + the
    value of the cash underlyings' rows with the same key (a cash row: the cash total only).
    """
    keys = np.asarray(keys, dtype=np.int64)
    v = np.nan_to_num(np.asarray(value_usd, dtype=np.float64))
    n_keys = int(keys.max()) + 1 if keys.size else 0
    if scope == "group":
        return np.bincount(keys, weights=v, minlength=n_keys)[keys]
    if scope != "pair":
        raise ValueError(f"unknown value_scope {scope!r}")
    cash = np.isin(np.asarray(underlying, dtype=object), list(cash_underlyings))
    cash_total = np.bincount(keys, weights=np.where(cash, v, 0.0), minlength=n_keys)[keys]
    return np.where(cash, cash_total, v + cash_total)


def target_coins(spec: TargetSpec, *, spot: np.ndarray, vol: np.ndarray | None = None,
                 funding_rate: np.ndarray | None = None,
                 group_value_usd: np.ndarray | None = None,
                 underlying: Sequence[str] | None = None) -> np.ndarray:
    """Target net delta per group row, coins.

    spot: S (USD); vol: sigma (annualised); funding_rate: f (annualised, paid by longs when > 0);
    group_value_usd: V for ``base_pct`` (see :func:`group_value_usd`); underlying: names, only for
    error messages. Missing or non-positive vol (carry), missing funding (carry) raise
    :class:`~gpuskew.errors.InvalidInput`.
    """
    s = np.asarray(spot, dtype=np.float64)
    n = s.shape[0]
    m = spec.model
    if m == "neutral":
        return np.zeros(n)
    if m == "fixed":
        if spec.coins is not None:
            return np.full(n, spec.coins)
        return spec.usd / s
    if m == "base_pct":
        if group_value_usd is None:
            raise ValueError("base_pct target needs group_value_usd")
        return spec.share * np.asarray(group_value_usd, dtype=np.float64) / s
    if m == "carry":
        sigma = require_positive(vol, n, "vol", spec.key, m, underlying)
        f = np.full(n, np.nan) if funding_rate is None else np.asarray(funding_rate, np.float64)
        if np.isnan(f).any():
            raise _missing("funding_rate", spec.key, m, underlying, np.isnan(f), "must be given")
        q = -f / (spec.risk_aversion * sigma**2 * s)
        cap = np.full(n, spec.max_coins) if spec.max_coins is not None else spec.max_usd / s
        return np.clip(q, -cap, cap)
    raise ValueError(f"unknown target model {m!r}")


__all__ = ["target_coins", "group_value_usd", "require_positive"]

"""The scenario matrix parameters: Deribit's portfolio-margin risk matrix, per underlying.

A scenarios file is TOML (every key optional; ``docs/scenarios.md`` documents each)::

    [defaults]                          # every underlying
    price_range = 0.16                  # spot moves: 9 evenly spaced over +-price_range (0 included)
    volatility_range_up = 0.5           # vol up:   max(sigma (1 + 0.5 s), min_volatility_for_shock_up)
    volatility_range_down = 0.25        # vol down: sigma (1 - 0.25 s)
    min_volatility_for_shock_up = 0.5   # floor of the vol-up case (annualised decimal)
    short_term_vega_power = 0.30        # s = (30 / DTE)^p, p = short if DTE < 30 days
    long_term_vega_power = 0.13         #                       long otherwise; DTE >= 1 day
    extended_table_factor = 1.0         # extended move weight: factor * price_range / |move|
    extended_moves = [-0.66, -0.33, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0]   # on vol up only
    mm_factor = 0.8                     # estimated maintenance margin = mm_factor * worst loss

    [underlying.ETH]                    # overrides for one underlying
    price_range = 0.18
    volatility_range_up = 0.4

The defaults are the values Deribit publishes for BTC (``model_params`` of ``private/pme/simulate``
in Deribit's API reference; support.deribit.com "Portfolio Margin", article 25944756247837).
Unknown keys, wrong types and values out of range raise :class:`gpuskew.errors.InvalidConfig`
naming the file, the dotted key and the rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from gpuskew.errors import InvalidConfig
from gpuskew.policy.limits import ConfigChecker, read_toml

#: spot buckets on each side of 0: 9 standard spot moves (Deribit's ``buckets_count`` = 4)
BUCKETS: int = 4
#: vol cases of the standard table, in the order of a Deribit risk vector's triple per spot move
VOL_CASES: tuple[str, ...] = ("down", "same", "up")
#: vol case codes (kernels.scenarios VOL_DOWN / VOL_SAME / VOL_UP), in VOL_CASES order
VOL_CASE_CODES: tuple[int, ...] = (-1, 0, 1)
#: standard scenarios: (2 BUCKETS + 1) spot moves x 3 vol cases
N_STANDARD: int = (2 * BUCKETS + 1) * len(VOL_CASES)
#: Deribit's extended moves (fractions of the index price)
DEFAULT_EXTENDED_MOVES: tuple[float, ...] = (-0.66, -0.33, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0)

_TOP_KEYS = ("defaults", "underlying")


@dataclass(frozen=True)
class MatrixParams:
    """One underlying's risk-matrix parameters (Deribit's names; decimals, not percent)."""

    price_range: float = 0.16
    volatility_range_up: float = 0.5
    volatility_range_down: float = 0.25
    min_volatility_for_shock_up: float = 0.5
    short_term_vega_power: float = 0.30
    long_term_vega_power: float = 0.13
    extended_table_factor: float = 1.0
    extended_moves: tuple[float, ...] = DEFAULT_EXTENDED_MOVES
    mm_factor: float = 0.8

    def spot_moves(self) -> np.ndarray:
        """The 9 standard moves, price_range * k / 4 for k = -4..4 (0 exact), ascending."""
        return np.array([self.price_range * (k / BUCKETS) for k in range(-BUCKETS, BUCKETS + 1)])

    def max_vol_scale(self) -> float:
        """The largest (30 / DTE)^p over DTE >= 1 day: max(30^short, 1) (30^long at DTE >= 30 is <= 1)."""
        return max(30.0 ** self.short_term_vega_power, 1.0)


PARAM_NAMES: tuple[str, ...] = tuple(f.name for f in fields(MatrixParams))


@dataclass(frozen=True)
class ScenarioConfig:
    """The parameters of every underlying: ``defaults`` plus per-underlying overrides."""

    defaults: MatrixParams = MatrixParams()
    underlyings: Mapping[str, MatrixParams] = None  # type: ignore[assignment]
    source: str = "<built-in defaults>"

    def __post_init__(self) -> None:
        if self.underlyings is None:
            object.__setattr__(self, "underlyings", {})

    def for_underlying(self, name: str) -> MatrixParams:
        return self.underlyings.get(name, self.defaults)

    def n_extended(self) -> int:
        return len(self.defaults.extended_moves)

    def as_dict(self, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The parameters used for each of ``names`` (for summary.json)."""
        out = {}
        for n in names:
            p = self.for_underlying(n)
            out[n] = {k: (list(getattr(p, k)) if k == "extended_moves" else getattr(p, k)) for k in PARAM_NAMES}
        return out


def _number(source: str, key: str, value: Any) -> float:
    """A finite number of sane magnitude (the limits files' checks: huge integers, inf, nan refused)."""
    return ConfigChecker(source).number(key, value)


def _check(source: str, prefix: str, p: MatrixParams) -> None:
    """Range rules of one underlying's parameters (``prefix``: its table, for messages)."""
    def fail(key: str, rule: str) -> InvalidConfig:
        return InvalidConfig(source, f"{prefix}.{key}", getattr(p, key), rule)

    if not 0.0 < p.price_range < 1.0:
        raise fail("price_range", "must be > 0 and < 1 (a fraction of the index price: 0.16 = 16%)")
    for key in ("volatility_range_up", "min_volatility_for_shock_up", "short_term_vega_power",
                "long_term_vega_power", "extended_table_factor"):
        if getattr(p, key) < 0.0:
            raise fail(key, "must be >= 0")
    if p.volatility_range_down < 0.0:
        raise fail("volatility_range_down", "must be >= 0")
    if p.volatility_range_down * p.max_vol_scale() >= 1.0:
        raise fail("volatility_range_down",
                   f"volatility_range_down * 30^short_term_vega_power = "
                   f"{p.volatility_range_down * p.max_vol_scale():.4g} must be < 1 (the vol-down case of an "
                   "option expiring within a day would reach zero vol)")
    if not 0.0 < p.mm_factor <= 1.0:
        raise fail("mm_factor", "must be > 0 and <= 1")
    if not p.extended_moves:
        raise fail("extended_moves", "must list at least one move")
    for k, m in enumerate(p.extended_moves):
        if m <= -1.0 or m == 0.0:
            raise InvalidConfig(source, f"{prefix}.extended_moves[{k}]", m,
                                "must be > -1 (a fall of less than 100%) and not 0")


def _params(source: str, prefix: str, table: Any, base: MatrixParams) -> MatrixParams:
    if not isinstance(table, Mapping):
        raise InvalidConfig(source, prefix, table, "must be a table")
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in PARAM_NAMES:
            raise InvalidConfig(source, f"{prefix}.{key}", value,
                                f"unknown key; known: {', '.join(PARAM_NAMES)}")
        if key == "extended_moves":
            if not isinstance(value, list):
                raise InvalidConfig(source, f"{prefix}.{key}", value, "must be a list of numbers")
            values[key] = tuple(_number(source, f"{prefix}.{key}[{k}]", v) for k, v in enumerate(value))
        else:
            values[key] = _number(source, f"{prefix}.{key}", value)
    params = replace(base, **values)
    _check(source, prefix, params)
    return params


def parse_scenario_config(data: Mapping[str, Any], source: str = "<scenarios>") -> ScenarioConfig:
    """Validate a parsed scenarios file (a mapping as from TOML) into a :class:`ScenarioConfig`."""
    for key in data:
        if key not in _TOP_KEYS:
            raise InvalidConfig(source, key, data[key], f"unknown table; known: {', '.join(_TOP_KEYS)}")
    defaults = _params(source, "defaults", data.get("defaults", {}), MatrixParams())
    under = data.get("underlying", {})
    if not isinstance(under, Mapping):
        raise InvalidConfig(source, "underlying", under, "must be a table of [underlying.<NAME>] tables")
    per = {name: _params(source, f"underlying.{name}", table, defaults) for name, table in under.items()}
    n_ext = len(defaults.extended_moves)
    for name, p in per.items():
        if len(p.extended_moves) != n_ext:
            raise InvalidConfig(source, f"underlying.{name}.extended_moves", list(p.extended_moves),
                                f"must list as many moves as defaults.extended_moves ({n_ext}): every "
                                "underlying has the same scenario layout")
    return ScenarioConfig(defaults, per, source)


def load_scenario_config(path: str | Path | None) -> ScenarioConfig:
    """Read a scenarios file (TOML); None gives Deribit's defaults for every underlying."""
    if path is None:
        return ScenarioConfig()
    path = Path(path)
    # read_toml: unreadable, non-UTF-8, invalid or hostilely nested files -> InvalidConfig "(file)"
    return parse_scenario_config(read_toml(path), str(path))

"""Policies files: a limits file in which any value may be a list; each list is a grid axis.

    grid = load_policies("policies.toml")
    grid.axes            # [Axis("underlying.BTC.band.usd", (100000, 250000, 500000)), ...]
    grid.policies        # the cartesian product: [PolicyPoint(policy_id, values, mapping, limits)]

Every key of a limits file (``docs/adherence.md``) may hold a list instead of its value:

* a scalar key (``usd = [1e5, 2.5e5]``, ``mode = ["to_band", "to_target"]``) is an axis of scalars;
* ``band`` or ``target`` may be a list of tables (``band = [{model = "fixed", usd = 1e5},
  {model = "whalley_wilmott", risk_aversion = 1e-6}]``): an axis of models;
* keys whose value is a list already (``levels``, ``hedge.instruments``,
  ``target.cash_underlyings``) are axes only when given a list of lists; ``match`` tables and the ``[[group]]`` /
  ``[[hedge_instrument]]`` arrays are never axes.

The policies are the cartesian product of the axes, in file order (the last axis varies fastest).
Each policy is the limits file with every list replaced by one of its values, parsed and validated
by :func:`gpuskew.policy.limits.parse_limits`: it is a valid file for ``gpuskew run --limits``
(:func:`to_toml` writes it). ``policy_id`` is a hash of the policy's resolved mapping (not of its
position in the grid): the same policy has the same id in any file and any axis order.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpuskew.errors import InvalidConfig
from gpuskew.policy.limits import Limits, parse_limits, read_toml
from gpuskew.schema import SECONDS_PER_YEAR

#: Most policies one file may describe (the product of the axis lengths).
MAX_POLICIES: int = 1_000_000
#: Characters of the sha256 hex digest kept as the policy id.
POLICY_ID_LENGTH: int = 12
#: Keys whose value is a list in a limits file: a list of lists makes them an axis.
LIST_VALUED_KEYS: frozenset[str] = frozenset({"instruments", "cash_underlyings", "levels"})
#: Top-level arrays of tables (their elements are walked, the arrays are never axes).
TABLE_ARRAYS: frozenset[str] = frozenset({"group", "hedge_instrument"})
#: Hours and days in the ACT/365 year (a limits file's hours and days in the kernels' years; the
#: adherence's bands and hedges use the same, gpuskew.adherence.bands re-exports them).
HOURS_PER_YEAR: float = SECONDS_PER_YEAR / 3600.0
DAYS_PER_YEAR: float = SECONDS_PER_YEAR / 86400.0


def z_score(confidence: float) -> float:
    """One-sided standard normal quantile z = N^-1(confidence) (0.99 -> 2.3263)."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(confidence)


def hedge_allowed(policy: Any, h: Any, underlying: str) -> bool:
    """Whether a group with ``policy`` on ``underlying`` may trade hedge instrument ``h`` (its
    underlying, and the policy's ``hedge.instruments`` when given): the backtests' and the
    adherence's rule."""
    if h.underlying != underlying:
        return False
    names = policy.hedge.instruments
    return names is None or h.name in names


def band_cost(limits: Limits, policy: Any, underlying: str, hedges: Sequence[Any]) -> float:
    """lambda of a Whalley-Wilmott or Zakamouline band: the band's ``cost``, else the cheapest
    allowed hedge's fee + half_spread + impact on the underlying (InvalidConfig naming
    ``<band>.cost`` when there is none)."""
    band = policy.band
    if band.cost is not None:
        return band.cost
    costs = [h.spec.cost_fraction for h in hedges if hedge_allowed(policy, h, underlying)]
    if not costs:
        raise InvalidConfig(limits.source, f"{band.key}.cost", None,
                            f"required for underlying {underlying}: no [[hedge_instrument]] on "
                            f"{underlying} is allowed for this group to derive lambda from")
    return min(costs)


@dataclass(frozen=True)
class Axis:
    """One grid axis: the dotted key (``underlying.BTC.band.usd``, ``group[0].band``), its path in
    the mapping and its values."""

    name: str
    path: tuple
    values: tuple


@dataclass
class PolicyPoint:
    """One policy of a grid: its id, its axis values, the limits mapping and the parsed limits."""

    policy_id: str
    values: dict[str, Any]
    mapping: dict
    limits: Limits
    is_current: bool = False

    @property
    def label(self) -> str:
        """``axis=value, ...`` (``current`` for the current limits outside the grid)."""
        if not self.values:
            return "current" if self.is_current else "(no axes)"
        return ", ".join(f"{k}={_short(v)}" for k, v in self.values.items())


@dataclass
class PolicyGrid:
    """A parsed policies file: its axes and policies (see the module docstring)."""

    source: str
    axes: list[Axis]
    policies: list[PolicyPoint]
    base: dict = field(repr=False, default_factory=dict)

    def __len__(self) -> int:
        return len(self.policies)

    def by_id(self, policy_id: str) -> PolicyPoint:
        for p in self.policies:
            if p.policy_id == policy_id:
                return p
        raise KeyError(policy_id)

    @property
    def current(self) -> PolicyPoint | None:
        for p in self.policies:
            if p.is_current:
                return p
        return None

    def with_current(self, mapping: Mapping[str, Any], source: str = "<current limits>") -> PolicyGrid:
        """The grid with the current limits marked: the grid's policy with the same id, or an extra
        policy (with no axis values) appended."""
        limits = parse_limits(mapping, source=source)
        pid = policy_id(mapping)
        policies = [PolicyPoint(p.policy_id, p.values, p.mapping, p.limits, p.policy_id == pid)
                    for p in self.policies]
        if not any(p.is_current for p in policies):
            policies.append(PolicyPoint(pid, {}, _plain(mapping), limits, True))
        return PolicyGrid(self.source, self.axes, policies, self.base)


# ---------------------------------------------------------------------------------------------


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True, separators=(",", ":"), default=str)
    return str(v)


def _plain(obj: Any) -> Any:
    """A deep copy made of dicts, lists and scalars."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _canonical(obj: Any) -> str:
    def default(o: Any) -> Any:
        if isinstance(o, (_dt.datetime, _dt.date, _dt.time)):
            return o.isoformat()
        raise TypeError(f"not serialisable: {type(o).__name__}")

    return json.dumps(_plain(obj), sort_keys=True, separators=(",", ":"), default=default, allow_nan=True)


def policy_id(mapping: Mapping[str, Any]) -> str:
    """The stable id of a policy: the first 12 hex digits of the sha256 of its canonical JSON."""
    return hashlib.sha256(_canonical(mapping).encode()).hexdigest()[:POLICY_ID_LENGTH]


def _key_name(path: tuple) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _find_axes(node: Any, path: tuple, axes: list[Axis], source: str) -> None:
    """Walk a limits mapping and collect its axes (see the module docstring)."""
    if isinstance(node, Mapping):
        for k, v in node.items():
            if k == "match":
                continue  # [[group]] match values may be lists of accepted values
            _find_axes(v, path + (k,), axes, source)
        return
    if not isinstance(node, list):
        return
    key = path[-1] if path else ""
    if len(path) == 1 and key in TABLE_ARRAYS:
        for i, element in enumerate(node):
            _find_axes(element, path + (i,), axes, source)
        return
    name = _key_name(path)
    if key in LIST_VALUED_KEYS and not (node and all(isinstance(v, list) for v in node)):
        return  # a plain value of a list-valued key
    if not node:
        raise InvalidConfig(source, name, [], "a grid axis needs at least one value")
    for v in node:
        if isinstance(v, Mapping):
            inner: list[Axis] = []
            _find_axes(v, path, inner, source)
            if inner:
                raise InvalidConfig(source, inner[0].name, inner[0].values,
                                    f"a list inside a table that is itself a value of the axis {name} "
                                    "(nested grid axes are not supported)")
        elif isinstance(v, list) and key not in LIST_VALUED_KEYS:
            raise InvalidConfig(source, name, v, "a grid axis holds values, not lists")
    seen: list[str] = []
    for v in node:
        c = _canonical(v)
        if c in seen:
            raise InvalidConfig(source, name, v, "duplicate value in a grid axis")
        seen.append(c)
    axes.append(Axis(name, path, tuple(_plain(v) for v in node)))


def _set(mapping: dict, path: tuple, value: Any) -> None:
    node: Any = mapping
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = _plain(value)


def expand_policies(mapping: Mapping[str, Any], source: str = "<policies>") -> PolicyGrid:
    """The grid of a policies mapping (as read from TOML): its axes and every policy, each parsed
    by :func:`parse_limits`. Raises :class:`InvalidConfig` naming the source, the key and rule."""
    if not isinstance(mapping, Mapping):
        raise InvalidConfig(source, "(file)", None, "a policies file is a TOML table")
    base = _plain(mapping)
    axes: list[Axis] = []
    _find_axes(base, (), axes, source)
    total = math.prod(len(a.values) for a in axes)
    if total > MAX_POLICIES:
        raise InvalidConfig(source, ", ".join(a.name for a in axes), total,
                            f"the grid holds more than {MAX_POLICIES:,} policies")
    policies: list[PolicyPoint] = []
    for combo in itertools.product(*(a.values for a in axes)):
        m = _plain(base)
        values: dict[str, Any] = {}
        for axis, v in zip(axes, combo):
            _set(m, axis.path, v)
            values[axis.name] = v
        where = ", ".join(f"{k}={_short(v)}" for k, v in values.items())
        limits = parse_limits(m, source=f"{source} (policy {where})" if where else source)
        policies.append(PolicyPoint(policy_id(m), values, m, limits))
    return PolicyGrid(source, axes, policies, base)


def load_policies(path: str | Path) -> PolicyGrid:
    """Read a policies file (TOML) and expand its grid."""
    return expand_policies(read_toml(path), source=str(path))


# ---------------------------------------------------------------------------------------------
# policies as parameter arrays for the sweep kernel (gpuskew.kernels.policy)


@dataclass
class KernelParams:
    """The sweep kernel's inputs for a list of policies over a list of groups.

    ``params`` (policies, groups, N_PARAMS) float64 (layout: ``gpuskew.kernels.policy.P_*``);
    ``monitored`` (policies, groups): the policy monitors the group (``enabled``); ``targets``: the
    distinct non-neutral target specs (``params[..., P_TARGET]`` indexes them, -1 = neutral);
    ``hedge`` (policies, groups): the hedge instrument each pair trades (None: it never trades);
    ``warnings``: one line per reason a monitored pair cannot trade.
    """

    params: Any
    monitored: Any
    targets: list
    hedge: list[list[str | None]]
    warnings: list[str]


def _choose_hedge(policy: Any, underlying: str, hedges: Sequence[Any]) -> Any | None:
    """The cheapest allowed hedge instrument (fee + half_spread + impact) on the underlying; ties to
    the first in the file (the rule of the adherence's Whalley-Wilmott cost)."""
    best = None
    for h in hedges:
        if not hedge_allowed(policy, h, underlying):
            continue
        if best is None or h.spec.cost_fraction < best.spec.cost_fraction:
            best = h
    return best


def kernel_params(policies: Sequence[PolicyPoint], groups: Sequence[Mapping[str, Any]],
                  resolve_hedges: Any, step_seconds: float, rates: Sequence[float]) -> KernelParams:
    """Parameter arrays of every (policy, group) for the sweep kernel.

    ``groups``: group rows (level, underlying, tags: what limits match on); ``resolve_hedges(limits)``
    -> the limits' hedge instruments resolved against the book (objects with ``name``,
    ``underlying``, ``kind``, ``settlement``, ``contract_size`` and ``spec``, as
    ``gpuskew.adherence.hedging.HedgeInstrument``); ``step_seconds``: the market's step;
    ``rates``: each group's underlying rate r.
    """
    import numpy as np

    from gpuskew.kernels import policy as kp

    n_pol, n_g = len(policies), len(groups)
    params = np.zeros((n_pol, n_g, kp.N_PARAMS))
    monitored = np.zeros((n_pol, n_g), dtype=bool)
    targets: list = []
    hedge_names: list[list[str | None]] = [[None] * n_g for _ in range(n_pol)]
    warnings: list[str] = []
    codes = {"fixed": kp.BAND_FIXED, "var": kp.BAND_VAR, "whalley_wilmott": kp.BAND_WHALLEY_WILMOTT,
             "zakamouline": kp.BAND_ZAKAMOULINE}
    resolved: dict[int, Sequence[Any]] = {}
    for i, point in enumerate(policies):
        limits = point.limits
        if id(limits) not in resolved:
            resolved[id(limits)] = resolve_hedges(limits)
        hedges = resolved[id(limits)]
        for g, row in enumerate(groups):
            x = params[i, g]
            x[kp.P_TARGET] = -1.0
            x[kp.P_CAP_COINS] = math.inf
            x[kp.P_CAP_USD] = math.inf
            x[kp.P_INTERVAL] = 1.0
            x[kp.P_FRACTION] = 1.0
            x[kp.P_LOT] = 1.0
            pol = limits.policy_for(row)
            if not pol.enabled:
                continue
            monitored[i, g] = True
            band = pol.band
            u = row["underlying"]
            x[kp.P_MEASURE] = 0.0 if pol.measure == "delta" else 1.0
            if pol.target.model != "neutral":
                if pol.target not in targets:
                    targets.append(pol.target)
                x[kp.P_TARGET] = float(targets.index(pol.target))
            x[kp.P_BAND] = float(codes[band.model])
            chosen = _choose_hedge(pol, u, hedges)
            if band.model == "fixed":
                for side in ("lo", "up"):
                    full = "lower" if side == "lo" else "upper"
                    coins, usd = getattr(band, f"{full}_coins"), getattr(band, f"{full}_usd")
                    x[kp.P_LO_COINS if side == "lo" else kp.P_UP_COINS] = 0.0 if coins is None else coins
                    x[kp.P_LO_USD if side == "lo" else kp.P_UP_USD] = 0.0 if usd is None else usd
            elif band.model == "var":
                x[kp.P_LO_BUDGET] = band.lower_budget_usd
                x[kp.P_UP_BUDGET] = band.upper_budget_usd
                x[kp.P_Z] = z_score(band.confidence)
                x[kp.P_SQRT_H] = math.sqrt(band.horizon_hours / HOURS_PER_YEAR)
            else:
                x[kp.P_RISK_AVERSION] = band.risk_aversion
                x[kp.P_COST] = band_cost(limits, pol, u, hedges)
                x[kp.P_TAU] = band.tau_days / DAYS_PER_YEAR
            x[kp.P_FLOOR_COINS] = band.floor_coins or 0.0
            x[kp.P_FLOOR_USD] = band.floor_usd or 0.0
            x[kp.P_CAP_COINS] = band.cap_coins if band.cap_coins is not None else math.inf
            x[kp.P_CAP_USD] = band.cap_usd if band.cap_usd is not None else math.inf
            x[kp.P_RATE] = float(rates[g])
            hedge = pol.hedge
            if hedge.interval_hours is not None:
                x[kp.P_INTERVAL] = float(max(1, round(hedge.interval_hours * 3600.0 / step_seconds)))
            x[kp.P_MODE] = float(kp.MODE_TO_BAND if hedge.mode == "to_band" else kp.MODE_TO_TARGET)
            x[kp.P_FRACTION] = hedge.fraction
            if chosen is None:
                if hedge.enabled:
                    warnings.append(f"no allowed [[hedge_instrument]] on {u} for group "
                                    f"{', '.join(f'{k}={v}' for k, v in row.items() if v is not None)}: "
                                    f"policy {point.policy_id} never trades it")
                continue
            spec = chosen.spec
            x[kp.P_ENABLED] = 1.0 if hedge.enabled else 0.0
            x[kp.P_FEE] = spec.fee
            x[kp.P_HALF_SPREAD] = spec.half_spread
            x[kp.P_IMPACT] = spec.impact
            x[kp.P_IMPACT_SLOPE] = spec.impact_per_million_usd / 1e6
            x[kp.P_LOT] = spec.lot_size * chosen.contract_size
            x[kp.P_MIN_SIZE] = spec.min_size * chosen.contract_size
            x[kp.P_INVERSE] = 1.0 if chosen.settlement == "inverse" and chosen.kind != "spot" else 0.0
            x[kp.P_FUNDING] = 1.0 if chosen.kind == "perpetual" else 0.0
            hedge_names[i][g] = chosen.name
    return KernelParams(params, monitored, targets, hedge_names, sorted(set(warnings)))


# ---------------------------------------------------------------------------------------------
# writing a limits mapping back as TOML (a proposed limits file)

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(k: str) -> str:
    return k if _BARE_KEY.match(k) else json.dumps(k, ensure_ascii=False)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        text = repr(v)
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, _dt.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(_dt.timezone.utc).replace(tzinfo=None)
            return v.isoformat() + "Z"
        return v.isoformat()
    if isinstance(v, (_dt.date, _dt.time)):
        return v.isoformat()
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{_toml_key(str(k))} = {_toml_value(x)}" for k, x in v.items()) + " }" \
            if v else "{}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _section(lines: list[str], header: str, table: Mapping[str, Any]) -> None:
    lines.append(header)
    for k, v in table.items():
        lines.append(f"{_toml_key(str(k))} = {_toml_value(v)}")
    lines.append("")


def to_toml(mapping: Mapping[str, Any], header: str = "") -> str:
    """A limits mapping as TOML text (``[defaults]``, ``[underlying.NAME]``, ``[[group]]``,
    ``[[hedge_instrument]]``; nested tables inline). ``header``: comment lines put first."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    if lines:
        lines.append("")
    scalars = [k for k, v in mapping.items() if not isinstance(v, (Mapping, list)) or
               (isinstance(v, list) and not (v and all(isinstance(x, Mapping) for x in v)))]
    for k in scalars:
        lines.append(f"{_toml_key(k)} = {_toml_value(mapping[k])}")
    if scalars:
        lines.append("")
    for k, v in mapping.items():
        if k in scalars:
            continue
        if k == "underlying" and isinstance(v, Mapping):
            for name, sec in v.items():
                _section(lines, f"[underlying.{_toml_key(str(name))}]", sec)
        elif isinstance(v, list) and v and all(isinstance(x, Mapping) for x in v):
            for element in v:
                _section(lines, f"[[{_toml_key(k)}]]", element)
        else:
            _section(lines, f"[{_toml_key(k)}]", v)
    return "\n".join(lines).rstrip("\n") + "\n"


__all__ = ["Axis", "PolicyPoint", "PolicyGrid", "KernelParams", "expand_policies", "load_policies", "policy_id",
           "read_toml", "to_toml", "kernel_params", "MAX_POLICIES", "HOURS_PER_YEAR", "DAYS_PER_YEAR", "z_score",
           "hedge_allowed", "band_cost"]

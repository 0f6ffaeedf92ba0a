"""The limits file: target models, band models, thresholds and hedge instruments per group.

A limits file is TOML (``docs/adherence.md`` documents every key)::

    [defaults]                      # applies to every group
    measure = "delta"               # or "delta_pa"
    target = { model = "neutral" }
    band = { model = "fixed", usd = 250000 }

    [underlying.BTC]                # overrides for every group of one underlying
    band = { model = "var", budget_usd = 500000, confidence = 0.99, horizon_hours = 24 }

    [[group]]                       # overrides for the groups its ``match`` selects
    match = { level = "desk", desk = "options-mm" }
    band = { model = "whalley_wilmott", risk_aversion = 2e-6, floor_usd = 50000 }

    [[hedge_instrument]]            # what corrective hedges may trade, with their costs
    instrument = "BTC-PERPETUAL"
    fee = 0.0005
    half_spread = 0.0001

Resolution order of a group's policy: ``[defaults]``, then ``[underlying.<NAME>]`` for the group's
underlying, then every matching ``[[group]]`` entry, least specific first (fewest ``match`` keys),
ties in file order: later and more specific entries win. ``target`` and ``band`` tables replace the
inherited table whole (each must name its ``model``); ``thresholds``, ``hedge`` and ``quote``
tables merge key by key; scalars (``enabled``, ``measure``, ``hysteresis``) replace.

Every invalid key or value raises :class:`~gpuskew.errors.InvalidConfig` naming the source, the
full dotted key path (``underlying.BTC.band.budget_usd``), the value and the rule. Unknown keys are
errors: a typo must not pass silently.
"""

from __future__ import annotations

import datetime as _dt
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from gpuskew.errors import InvalidConfig, InvalidInput

if sys.version_info >= (3, 11):  # pragma: no cover - version dependent
    import tomllib as _toml
else:  # pragma: no cover
    import tomli as _toml

#: Delta measures a policy can manage (columns of the exposures table), in coins.
MEASURES: tuple[str, ...] = ("delta", "delta_pa")
#: Target models (``gpuskew.targets``).
TARGET_MODELS: tuple[str, ...] = ("neutral", "fixed", "base_pct", "carry")
#: Band models (``gpuskew.bands``).
BAND_MODELS: tuple[str, ...] = ("fixed", "var", "whalley_wilmott", "zakamouline")
#: Default time to maturity tau of a Zakamouline band, days.
DEFAULT_ZAKAMOULINE_TAU_DAYS: float = 30.0
#: Hedge modes: trade to the target, or to the nearest band edge.
HEDGE_MODES: tuple[str, ...] = ("to_target", "to_band")
#: Instrument kinds usable as hedges (no options: their delta is not constant).
HEDGE_KINDS: tuple[str, ...] = ("spot", "perpetual", "future")
#: Default cash underlyings of the ``base_pct`` target's ``pair`` scope.
DEFAULT_CASH_UNDERLYINGS: tuple[str, ...] = ("USD", "USDC", "USDT")
#: ``base_pct`` value scopes: the group's value across all its underlyings, or this underlying
#: plus cash.
VALUE_SCOPES: tuple[str, ...] = ("group", "pair")
#: Largest fee / half spread / impact accepted, as a fraction of notional (catches bp/% typos).
MAX_COST_FRACTION: float = 0.05

#: Largest magnitude of any number in a limits file (coins, USD): beyond it sums and products of
#: the adherence table could overflow.
MAX_MAGNITUDE: float = 1e15


def _short(value: object) -> object:
    """A value for an error message: long numbers and strings shortened."""
    text = repr(value)
    return value if len(text) <= 40 else text[:20] + f"...({len(text)} characters)"


_POLICY_KEYS = ("enabled", "measure", "hysteresis", "target", "band", "thresholds", "hedge",
                "quote")
_TOP_KEYS = ("levels", "defaults", "underlying", "group", "hedge_instrument")
_RA_REQUIRED = "required: risk aversion gamma in 1/USD, > 0"


# ---------------------------------------------------------------------------------------------
# Value checks. Each takes the dotted key path for the error message.

class ConfigChecker:
    """Checks of configuration values (TOML), each raising :class:`InvalidConfig` that names the
    file (``source``), the dotted key, the value and the rule."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, value: object, rule: str) -> InvalidConfig:
        return InvalidConfig(self.source, key, value, rule)

    def table(self, key: str, value: object) -> dict:
        if not isinstance(value, Mapping):
            raise self.fail(key, value, "must be a table")
        return dict(value)

    def unknown(self, key: str, table: Mapping, allowed: tuple[str, ...] | set[str]) -> None:
        for k in table:
            if k not in allowed:
                raise self.fail(f"{key}.{k}" if key else k, table[k],
                                f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def number(self, key: str, value: object, *, gt: float | None = None, ge: float | None = None,
               lt: float | None = None, le: float | None = None) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(key, value, "must be a number")
        try:
            v = float(value)
        except OverflowError:
            v = math.inf
        if not math.isfinite(v):
            raise self.fail(key, _short(value), "must be finite")
        if abs(v) > MAX_MAGNITUDE:
            raise self.fail(key, _short(value), f"must be at most {MAX_MAGNITUDE:g} in magnitude")
        if gt is not None and not v > gt:
            raise self.fail(key, value, f"must be > {gt:g}")
        if ge is not None and not v >= ge:
            raise self.fail(key, value, f"must be >= {ge:g}")
        if lt is not None and not v < lt:
            raise self.fail(key, value, f"must be < {lt:g}")
        if le is not None and not v <= le:
            raise self.fail(key, value, f"must be <= {le:g}")
        return v

    def integer(self, key: str, value: object, *, ge: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < ge:
            raise self.fail(key, _short(value), f"must be an integer >= {ge}")
        if value > MAX_MAGNITUDE:
            raise self.fail(key, _short(value), f"must be at most {MAX_MAGNITUDE:g}")
        return int(value)

    def boolean(self, key: str, value: object) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, value, "must be true or false")
        return value

    def string(self, key: str, value: object, choices: tuple[str, ...] | None = None) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(key, value, "must be a non-empty string")
        if choices is not None and value not in choices:
            raise self.fail(key, value, f"must be one of {', '.join(choices)}")
        return value

    def strings(self, key: str, value: object) -> tuple[str, ...]:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(key, value, "must be a list of non-empty strings")
        return tuple(value)


# ---------------------------------------------------------------------------------------------
# Resolved policy pieces.

@dataclass(frozen=True)
class TargetSpec:
    """A target model and its parameters (``gpuskew.targets``). ``key`` is where it was set."""

    model: str = "neutral"
    #: fixed: target in coins, or in USD (divided by S)
    coins: float | None = None
    usd: float | None = None
    #: base_pct: share of the group's USD value to hold in the underlying (a fraction)
    share: float | None = None
    value_scope: str = "group"
    cash_underlyings: tuple[str, ...] = DEFAULT_CASH_UNDERLYINGS
    #: carry: risk aversion gamma (1/USD) and the clip (coins or USD)
    risk_aversion: float | None = None
    max_coins: float | None = None
    max_usd: float | None = None
    key: str = field(default="(built-in).target", compare=False)


@dataclass(frozen=True)
class BandSpec:
    """A band model and its parameters (``gpuskew.bands``); half-widths are in coins."""

    model: str
    #: fixed: half-widths per side, each in coins or in USD (exactly one per side)
    lower_coins: float | None = None
    upper_coins: float | None = None
    lower_usd: float | None = None
    upper_usd: float | None = None
    #: var: USD risk budget per side, one-sided normal confidence, horizon
    lower_budget_usd: float | None = None
    upper_budget_usd: float | None = None
    confidence: float = 0.99
    horizon_hours: float = 24.0
    #: whalley_wilmott, zakamouline: risk aversion gamma (1/USD) and proportional cost lambda
    #: (None: from hedges)
    risk_aversion: float | None = None
    cost: float | None = None
    #: zakamouline: time to maturity tau, days
    tau_days: float = DEFAULT_ZAKAMOULINE_TAU_DAYS
    #: floor and cap of every model's half-widths (coins and/or USD; floor wins over cap)
    floor_coins: float | None = None
    floor_usd: float | None = None
    cap_coins: float | None = None
    cap_usd: float | None = None
    key: str = field(default="band", compare=False)


@dataclass(frozen=True)
class Thresholds:
    """|skew| thresholds of the statuses; a status applies when |skew| is strictly above it."""

    warn: float = 0.8
    breach: float = 1.0
    critical: float = 1.5


@dataclass(frozen=True)
class HedgeSettings:
    """How corrective hedges are proposed."""

    enabled: bool = True
    mode: str = "to_band"
    propose_inside_band: bool = False
    horizon_hours: float = 24.0
    #: names of ``[[hedge_instrument]]`` entries allowed; None = every one on the underlying
    instruments: tuple[str, ...] | None = None
    #: backtests: the band is checked every this many hours (None: at every step)
    interval_hours: float | None = None
    #: backtests, ``to_target``: trade this fraction of the way to the target (0 < f <= 1)
    fraction: float = 1.0


@dataclass(frozen=True)
class QuoteSettings:
    """Avellaneda-Stoikov quote skew: risk aversion gamma (1/USD; None = no offset) and tau."""

    risk_aversion: float | None = None
    tau_hours: float = 1.0


@dataclass(frozen=True)
class Policy:
    """What applies to one group: the measure, target, band, thresholds, hedging and quoting."""

    enabled: bool
    measure: str
    target: TargetSpec
    band: BandSpec | None
    thresholds: Thresholds
    hedge: HedgeSettings
    quote: QuoteSettings
    hysteresis: float
    #: the sections that contributed, in resolution order (e.g. defaults, underlying.BTC, group[0])
    sections: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class HedgeInstrumentSpec:
    """A ``[[hedge_instrument]]`` entry; attributes left None come from the instruments table."""

    instrument: str
    fee: float
    half_spread: float
    impact: float = 0.0
    #: linear impact: the impact fraction grows by this much per 1,000,000 USD of notional
    impact_per_million_usd: float = 0.0
    lot_size: float = 1.0
    min_size: float = 0.0
    underlying: str | None = None
    kind: str | None = None
    settlement: str | None = None
    contract_size: float | None = None
    expiry: _dt.datetime | None = None
    key: str = field(default="hedge_instrument", compare=False)

    @property
    def cost_fraction(self) -> float:
        """lambda = fee + half_spread + impact, the proportional cost of trading it."""
        return self.fee + self.half_spread + self.impact


@dataclass(frozen=True)
class GroupEntry:
    """A ``[[group]]`` entry: its ``match`` (key -> accepted values) and its policy overrides."""

    index: int
    match: tuple[tuple[str, tuple[str, ...]], ...]
    layer: dict = field(compare=False, hash=False)

    def matches(self, row: Mapping[str, Any]) -> bool:
        for k, accepted in self.match:
            v = row.get(k)
            if v is None or str(v) not in accepted:
                return False
        return True


# ---------------------------------------------------------------------------------------------
# Parsing of the policy tables.

def _parse_target(c: ConfigChecker, key: str, raw: object) -> TargetSpec:
    t = c.table(key, raw)
    if "model" not in t:
        raise c.fail(f"{key}.model", None, f"required: a target table must name its model "
                                           f"({', '.join(TARGET_MODELS)})")
    model = c.string(f"{key}.model", t["model"], TARGET_MODELS)
    allowed = {"neutral": (), "fixed": ("coins", "usd"),
               "base_pct": ("share", "value_scope", "cash_underlyings"),
               "carry": ("risk_aversion", "max_coins", "max_usd")}[model]
    c.unknown(key, t, ("model",) + allowed)
    kw: dict[str, Any] = {"model": model, "key": key}
    if model == "fixed":
        given = [k for k in ("coins", "usd") if k in t]
        if len(given) != 1:
            raise c.fail(f"{key}.coins", t.get("coins"),
                         "fixed target needs exactly one of coins, usd")
        kw[given[0]] = c.number(f"{key}.{given[0]}", t[given[0]])
    elif model == "base_pct":
        if "share" not in t:
            raise c.fail(f"{key}.share", None, "required: the fraction of the group's USD value "
                                               "to hold in the underlying, in [0, 1]")
        kw["share"] = c.number(f"{key}.share", t["share"], ge=0.0, le=1.0)
        if "value_scope" in t:
            kw["value_scope"] = c.string(f"{key}.value_scope", t["value_scope"], VALUE_SCOPES)
        if "cash_underlyings" in t:
            kw["cash_underlyings"] = c.strings(f"{key}.cash_underlyings", t["cash_underlyings"])
    elif model == "carry":
        if "risk_aversion" not in t:
            raise c.fail(f"{key}.risk_aversion", None, _RA_REQUIRED)
        kw["risk_aversion"] = c.number(f"{key}.risk_aversion", t["risk_aversion"], gt=0.0)
        given = [k for k in ("max_coins", "max_usd") if k in t]
        if len(given) != 1:
            raise c.fail(f"{key}.max_coins", t.get("max_coins"),
                         "carry target needs exactly one of max_coins, max_usd (the clip)")
        kw[given[0]] = c.number(f"{key}.{given[0]}", t[given[0]], ge=0.0)
    return TargetSpec(**kw)


def _parse_band(c: ConfigChecker, key: str, raw: object) -> BandSpec:
    t = c.table(key, raw)
    if "model" not in t:
        raise c.fail(f"{key}.model", None, f"required: a band table must name its model "
                                           f"({', '.join(BAND_MODELS)})")
    model = c.string(f"{key}.model", t["model"], BAND_MODELS)
    common = ("floor_coins", "floor_usd", "cap_coins", "cap_usd")
    allowed = {"fixed": ("coins", "usd", "lower_coins", "upper_coins", "lower_usd", "upper_usd"),
               "var": ("budget_usd", "lower_budget_usd", "upper_budget_usd", "confidence",
                       "horizon_hours"),
               "whalley_wilmott": ("risk_aversion", "cost"),
               "zakamouline": ("risk_aversion", "cost", "tau_days")}[model]
    c.unknown(key, t, ("model",) + allowed + common)
    kw: dict[str, Any] = {"model": model, "key": key}
    if model == "fixed":
        for side in ("lower", "upper"):
            src = [k for k in ("coins", "usd", f"{side}_coins", f"{side}_usd") if k in t]
            if len(src) != 1:
                raise c.fail(f"{key}.{side}_coins", [f"{k}={t[k]!r}" for k in src] or None,
                             f"fixed band needs exactly one half-width for the {side} side: "
                             f"coins or usd (symmetric), or {side}_coins or {side}_usd")
            k = src[0]
            v = c.number(f"{key}.{k}", t[k], ge=0.0)
            kw[f"{side}_coins" if k.endswith("coins") else f"{side}_usd"] = v
    elif model == "var":
        for side in ("lower", "upper"):
            src = [k for k in ("budget_usd", f"{side}_budget_usd") if k in t]
            if len(src) != 1:
                raise c.fail(f"{key}.budget_usd", t.get("budget_usd"),
                             f"var band needs exactly one USD budget for the {side} side: "
                             f"budget_usd (symmetric) or {side}_budget_usd")
            kw[f"{side}_budget_usd"] = c.number(f"{key}.{src[0]}", t[src[0]], gt=0.0)
        if "confidence" in t:
            kw["confidence"] = c.number(f"{key}.confidence", t["confidence"], gt=0.5, lt=1.0)
        if "horizon_hours" in t:
            kw["horizon_hours"] = c.number(f"{key}.horizon_hours", t["horizon_hours"], gt=0.0)
    else:
        if "risk_aversion" not in t:
            raise c.fail(f"{key}.risk_aversion", None, _RA_REQUIRED)
        kw["risk_aversion"] = c.number(f"{key}.risk_aversion", t["risk_aversion"], gt=0.0)
        if "cost" in t:
            kw["cost"] = c.number(f"{key}.cost", t["cost"], ge=0.0, le=MAX_COST_FRACTION)
        if "tau_days" in t:
            kw["tau_days"] = c.number(f"{key}.tau_days", t["tau_days"], gt=0.0)
    for k in ("floor_coins", "floor_usd"):
        if k in t:
            kw[k] = c.number(f"{key}.{k}", t[k], ge=0.0)
    for k in ("cap_coins", "cap_usd"):
        if k in t:
            kw[k] = c.number(f"{key}.{k}", t[k], gt=0.0)
    for unit in ("coins", "usd"):
        f, cap = kw.get(f"floor_{unit}"), kw.get(f"cap_{unit}")
        if f is not None and cap is not None and f > cap:
            raise c.fail(f"{key}.floor_{unit}", f, f"must be <= {key}.cap_{unit} ({cap:g})")
    return BandSpec(**kw)


def _parse_thresholds(c: ConfigChecker, key: str, raw: object) -> dict:
    t = c.table(key, raw)
    c.unknown(key, t, ("warn", "breach", "critical"))
    return {k: c.number(f"{key}.{k}", v, gt=0.0) for k, v in t.items()}


def _parse_hedge(c: ConfigChecker, key: str, raw: object) -> dict:
    t = c.table(key, raw)
    c.unknown(key, t, ("enabled", "mode", "propose_inside_band", "horizon_hours", "instruments",
                       "interval_hours", "fraction"))
    out: dict[str, Any] = {}
    for k, v in t.items():
        p = f"{key}.{k}"
        if k in ("enabled", "propose_inside_band"):
            out[k] = c.boolean(p, v)
        elif k == "mode":
            out[k] = c.string(p, v, HEDGE_MODES)
        elif k == "horizon_hours":
            out[k] = c.number(p, v, ge=0.0)
        elif k == "interval_hours":
            out[k] = c.number(p, v, gt=0.0)
        elif k == "fraction":
            out[k] = c.number(p, v, gt=0.0, le=1.0)
        else:
            out[k] = c.strings(p, v)
    return out


def _parse_quote(c: ConfigChecker, key: str, raw: object) -> dict:
    t = c.table(key, raw)
    c.unknown(key, t, ("risk_aversion", "tau_hours"))
    out: dict[str, Any] = {}
    if "risk_aversion" in t:
        out["risk_aversion"] = c.number(f"{key}.risk_aversion", t["risk_aversion"], gt=0.0)
    if "tau_hours" in t:
        out["tau_hours"] = c.number(f"{key}.tau_hours", t["tau_hours"], gt=0.0)
    return out


def _parse_layer(c: ConfigChecker, key: str, raw: object, extra: tuple[str, ...] = ()) -> dict:
    """One policy layer (defaults, an underlying section, a group entry) -> validated dict."""
    t = c.table(key, raw)
    c.unknown(key, t, _POLICY_KEYS + extra)
    out: dict[str, Any] = {}
    for k, v in t.items():
        p = f"{key}.{k}"
        if k == "enabled":
            out[k] = c.boolean(p, v)
        elif k == "measure":
            out[k] = c.string(p, v, MEASURES)
        elif k == "hysteresis":
            out[k] = (c.number(p, v, ge=0.0, lt=1.0), p)
        elif k == "target":
            out[k] = _parse_target(c, p, v)
        elif k == "band":
            out[k] = _parse_band(c, p, v)
        elif k == "thresholds":
            out[k] = {kk: (vv, f"{p}.{kk}") for kk, vv in _parse_thresholds(c, p, v).items()}
        elif k == "hedge":
            out[k] = {kk: (vv, f"{p}.{kk}") for kk, vv in _parse_hedge(c, p, v).items()}
        elif k == "quote":
            out[k] = {kk: (vv, f"{p}.{kk}") for kk, vv in _parse_quote(c, p, v).items()}
    return out


def _parse_match(c: ConfigChecker, key: str, raw: object) -> tuple[tuple[str, tuple[str, ...]], ...]:
    t = c.table(key, raw)
    if not t:
        raise c.fail(key, raw, "must name at least one key (level, underlying or a tag column)")
    out = []
    for k, v in t.items():
        if isinstance(v, str) and v:
            out.append((k, (v,)))
        else:
            out.append((k, c.strings(f"{key}.{k}", v)))
    return tuple(out)


def _parse_datetime(c: ConfigChecker, key: str, v: object) -> _dt.datetime:
    """A date-time of the file (TOML date-time, date or string; a date alone means 08:00 UTC)."""
    from gpuskew.timeutil import to_utc

    if not isinstance(v, (str, _dt.date)):
        raise c.fail(key, v, "must be a date-time")
    try:
        return to_utc(v, source=key)
    except (InvalidInput, ValueError):
        raise c.fail(key, v, "must be an ISO 8601 date-time (e.g. 2026-12-27T08:00:00Z) or date") from None


def _parse_hedge_instrument(c: ConfigChecker, key: str, raw: object) -> HedgeInstrumentSpec:
    t = c.table(key, raw)
    c.unknown(key, t, ("instrument", "underlying", "kind", "settlement", "contract_size", "expiry",
                       "fee", "half_spread", "impact", "impact_per_million_usd", "lot_size", "min_size"))
    if "instrument" not in t:
        raise c.fail(f"{key}.instrument", None, "required: the instrument's name")
    kw: dict[str, Any] = {"instrument": c.string(f"{key}.instrument", t["instrument"]), "key": key}
    for k in ("fee", "half_spread"):
        if k not in t:
            raise c.fail(f"{key}.{k}", None, "required: a fraction of notional (0.0005 = 5 bp)")
    for k in ("fee", "half_spread", "impact", "impact_per_million_usd"):
        if k in t:
            kw[k] = c.number(f"{key}.{k}", t[k], ge=0.0, le=MAX_COST_FRACTION)
    if "lot_size" in t:
        kw["lot_size"] = c.number(f"{key}.lot_size", t["lot_size"], gt=0.0)
    if "min_size" in t:
        kw["min_size"] = c.number(f"{key}.min_size", t["min_size"], ge=0.0)
    if "underlying" in t:
        kw["underlying"] = c.string(f"{key}.underlying", t["underlying"])
    if "kind" in t:
        kw["kind"] = c.string(f"{key}.kind", t["kind"], HEDGE_KINDS)
    if "settlement" in t:
        kw["settlement"] = c.string(f"{key}.settlement", t["settlement"], ("linear", "inverse"))
    if "contract_size" in t:
        kw["contract_size"] = c.number(f"{key}.contract_size", t["contract_size"], gt=0.0)
    if "expiry" in t:
        kw["expiry"] = _parse_datetime(c, f"{key}.expiry", t["expiry"])
    if kw.get("kind") == "spot" and kw.get("settlement") == "inverse":
        raise c.fail(f"{key}.settlement", "inverse", "a spot hedge is linear")
    return HedgeInstrumentSpec(**kw)


# ---------------------------------------------------------------------------------------------

_BUILTIN_LAYER: dict[str, Any] = {
    "enabled": True,
    "measure": "delta",
    "hysteresis": (0.1, "(built-in).hysteresis"),
    "target": TargetSpec(),
    "thresholds": {"warn": (0.8, "(built-in)"), "breach": (1.0, "(built-in)"),
                   "critical": (1.5, "(built-in)")},
    "hedge": {},
    "quote": {},
}


@dataclass
class Limits:
    """A parsed limits file. :meth:`policy_for` resolves the policy of one group."""

    source: str
    defaults: dict
    underlyings: dict[str, dict]
    groups: list[GroupEntry]
    hedge_instruments: tuple[HedgeInstrumentSpec, ...]
    #: grouping levels the file manages (``levels = ["desk", "desk,book"]``): computed by every run
    #: with these limits, whatever ``--group-by`` says
    levels: tuple[tuple[str, ...], ...] = ()
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def policy_for(self, row: Mapping[str, Any], *, _require_band: bool = True) -> Policy:
        """The policy of a group. ``row`` holds the group's keys: ``level``, ``underlying`` and its
        tag values (None or missing tags never match).

        Layers, weakest first: built-in defaults, ``[defaults]``, ``[underlying.<NAME>]``, then the
        matching ``[[group]]`` entries sorted by (number of match keys, file order).
        """
        ck = tuple(sorted((str(k), None if v is None else str(v)) for k, v in row.items()))
        hit = self._cache.get(ck)
        if hit is not None and _require_band:
            return hit
        layers: list[tuple[str, dict]] = [("defaults", self.defaults)]
        u = row.get("underlying")
        if u is not None and str(u) in self.underlyings:
            layers.append((f"underlying.{u}", self.underlyings[str(u)]))
        matching = sorted((g for g in self.groups if g.matches(row)),
                          key=lambda g: (len(g.match), g.index))
        layers += [(f"group[{g.index}]", g.layer) for g in matching]
        policy = self._resolve(layers, row, _require_band)
        if _require_band:
            self._cache[ck] = policy
        return policy

    def _resolve(self, layers: list[tuple[str, dict]], row: Mapping[str, Any],
                 require_band: bool) -> Policy:
        merged: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v)
                                  for k, v in _BUILTIN_LAYER.items()}
        for _, layer in layers:
            for k, v in layer.items():
                if k in ("thresholds", "hedge", "quote"):
                    merged[k].update(v)
                else:
                    merged[k] = v
        c = ConfigChecker(self.source)
        th = {k: v for k, (v, _) in merged["thresholds"].items()}
        if not th["warn"] < th["breach"] < th["critical"]:
            # name the key that the most specific layer set
            key = max((p for _, p in merged["thresholds"].values()),
                      key=lambda p: _layer_rank(p, layers))
            raise c.fail(key, th, "thresholds must be increasing: warn < breach < critical")
        hedge = HedgeSettings(**{k: v for k, (v, _) in merged["hedge"].items()})
        if hedge.instruments is not None:
            names = {h.instrument for h in self.hedge_instruments}
            for name in hedge.instruments:
                if name not in names:
                    key = merged["hedge"]["instruments"][1]
                    raise c.fail(key, name, "not a [[hedge_instrument]] of this file")
        quote = QuoteSettings(**{k: v for k, (v, _) in merged["quote"].items()})
        enabled = merged["enabled"]
        band = merged.get("band")
        if enabled and band is None and require_band:
            where = ", ".join(f"{k}={v}" for k, v in row.items() if v is not None)
            raise c.fail("defaults.band", None,
                         f"required: no band model applies to the group ({where}); set a band "
                         f"in [defaults], [underlying.<NAME>] or a matching [[group]]")
        return Policy(enabled=enabled, measure=merged["measure"], target=merged["target"],
                      band=band, thresholds=Thresholds(**th), hedge=hedge, quote=quote,
                      hysteresis=merged["hysteresis"][0],
                      sections=tuple(name for name, _ in layers))

    def hedge_instrument(self, name: str) -> HedgeInstrumentSpec:
        for h in self.hedge_instruments:
            if h.instrument == name:
                return h
        raise KeyError(name)


def _layer_rank(path: str, layers: list[tuple[str, dict]]) -> int:
    for i, (name, _) in enumerate(layers):
        if path.startswith(name + "."):
            return i + 1
    return 0


def parse_limits(mapping: Mapping[str, Any], source: str = "<limits>") -> Limits:
    """Validate a limits mapping (as read from TOML) into :class:`Limits`.

    Raises :class:`InvalidConfig` naming ``source``, the dotted key path, the value and the rule.
    """
    c = ConfigChecker(source)
    top = c.table("", mapping)
    c.unknown("", top, _TOP_KEYS)
    levels: list[tuple[str, ...]] = []
    if "levels" in top:
        for lv in c.strings("levels", top["levels"]):
            cols = tuple(x.strip() for x in lv.split(",") if x.strip())
            if not cols or any(not x for x in cols):
                raise c.fail("levels", lv, "a level is tag columns joined by ',' (e.g. \"desk,book\")")
            if cols not in levels:
                levels.append(cols)
    defaults = _parse_layer(c, "defaults", top.get("defaults", {}))
    unders: dict[str, dict] = {}
    for name, sec in c.table("underlying", top.get("underlying", {})).items():
        unders[name] = _parse_layer(c, f"underlying.{name}", sec)
    groups_raw = top.get("group", [])
    if not isinstance(groups_raw, list):
        raise c.fail("group", groups_raw, "must be an array of tables ([[group]])")
    groups: list[GroupEntry] = []
    for i, g in enumerate(groups_raw):
        key = f"group[{i}]"
        g = c.table(key, g)
        if "match" not in g:
            raise c.fail(f"{key}.match", None, "required: e.g. match = { level = \"desk\", "
                                               "desk = \"options-mm\" }")
        match = _parse_match(c, f"{key}.match", g["match"])
        layer = _parse_layer(c, key, {k: v for k, v in g.items() if k != "match"})
        groups.append(GroupEntry(index=i, match=match, layer=layer))
    his_raw = top.get("hedge_instrument", [])
    if not isinstance(his_raw, list):
        raise c.fail("hedge_instrument", his_raw,
                     "must be an array of tables ([[hedge_instrument]])")
    his: list[HedgeInstrumentSpec] = []
    for i, h in enumerate(his_raw):
        spec = _parse_hedge_instrument(c, f"hedge_instrument[{i}]", h)
        if any(o.instrument == spec.instrument for o in his):
            raise c.fail(f"hedge_instrument[{i}].instrument", spec.instrument,
                         "duplicate instrument")
        his.append(spec)
    limits = Limits(source=source, defaults=defaults, underlyings=unders, groups=groups,
                    hedge_instruments=tuple(his), levels=tuple(levels))
    # Resolve what can be resolved now, so that cross-key errors (thresholds order, missing band,
    # unknown hedge instrument names) surface when the file is loaded, not mid-run.
    # (A missing band is only known per group: it is reported when a group needs one.)
    limits.policy_for({"level": "underlying", "underlying": None}, _require_band=False)
    for name in unders:
        limits.policy_for({"level": "underlying", "underlying": name}, _require_band=False)
    for g in groups:
        limits.policy_for({k: v[0] for k, v in g.match}, _require_band=False)
    return limits


def load_limits(path: str | Path) -> Limits:
    """Read and validate a TOML limits file."""
    return parse_limits(read_toml(path), source=str(path))


def read_toml(path: str | Path, raw: bytes | None = None) -> dict:
    """Parse a TOML file; a file that is not valid TOML, or is nested deeper than any limits or
    policies file needs (a hostile file), raises :class:`InvalidConfig` naming it."""
    p = Path(path)
    if raw is None:
        try:
            raw = p.read_bytes()
        except OSError as e:
            raise InvalidConfig(str(p), "(file)", None, f"cannot read: {e.strerror or e}") from None
    try:
        return _toml.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, _toml.TOMLDecodeError) as e:
        raise InvalidConfig(str(p), "(file)", None, f"not valid TOML: {e}") from None
    except RecursionError:
        raise InvalidConfig(str(p), "(file)", None, "nested too deeply to be a configuration file") from None


def example_limits_path() -> Path:
    """Path of the commented example limits file shipped with the package (drives ``--demo``)."""
    return Path(__file__).resolve().parent.parent / "data" / "limits.example.toml"


def load_example_limits() -> Limits:
    """The shipped example limits, parsed."""
    return load_limits(example_limits_path())


__all__ = ["Limits", "Policy", "TargetSpec", "BandSpec", "Thresholds", "HedgeSettings",
           "QuoteSettings", "HedgeInstrumentSpec", "GroupEntry", "load_limits", "parse_limits",
           "example_limits_path", "load_example_limits", "MEASURES", "TARGET_MODELS",
           "BAND_MODELS", "HEDGE_MODES", "HEDGE_KINDS", "DEFAULT_CASH_UNDERLYINGS"]

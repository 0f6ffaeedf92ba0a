"""Corrective hedges: for each group out of its band, the cheapest trade that fixes it.

For every candidate group and every configured hedge instrument on its underlying (spot, linear or
inverse perpetual, future), the trade in contracts is computed, rounded to the instrument's lots,
and costed; the group gets the cheapest instrument that reaches the goal (trades that lot
rounding prevents from reaching it are only chosen when no instrument can reach it).

Coin delta per contract (the change of the managed delta, ``delta`` or ``delta_pa``, coins): the
kernel's own measure of one contract (:func:`gpuskew.kernels.instruments.position_measures`,
quantity 1, entered at its price), with the kernel's forward F
(:func:`gpuskew.kernels.instruments.forward_price`: the quotes' ``forward`` when given, a perpetual's
mark; else S for spot and perpetuals and S e^{rT} for futures), so a proposed hedge lands exactly
where the risk it books says:

* spot: contract_size;
* linear perpetual / future: contract_size * F / S;
* inverse perpetual / future: contract_size / F (USD notional over the price; a new trade's
  entry price is F, so delta = delta_pa = N / F).

Goal: ``to_target`` moves the group to its target, nearest lot (|post deviation| <= half a lot's
coin delta); ``to_band`` moves it to the nearest band edge, rounding away from the current
position so the post-trade position is inside the band; if no lot multiple lands inside (a band
narrower than one lot), the multiple nearest to the band is used and ``lot_limited`` is set.
Inside the band (``propose_inside_band``), proposals always go to the target.

Cost (USD): |notional| * (fee + half_spread + impact) + funding carry over the horizon for
perpetuals: sign(contracts) * notional * f * h (f annualised, paid by longs when > 0; a null
funding rate counts as 0; h = horizon_hours / 8760). Spot and futures carry no funding (the basis
is in the future's price).
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpuskew.adherence.bands import HOURS_PER_YEAR
from gpuskew.errors import InvalidConfig
from gpuskew.policy.grid import hedge_allowed as allowed  # noqa: F401 - re-exported (the sweep's rule too)
from gpuskew.policy.limits import HedgeInstrumentSpec, Limits, Policy
from gpuskew.schema import ADHERENCE, HEDGE_COLUMNS, HEDGES, SECONDS_PER_YEAR, TIMESTAMP
from gpuskew.timeutil import to_utc

_TOL = 1e-9  # in lots: float slack for rounding and band checks


@dataclass(frozen=True)
class HedgeInstrument:
    """A hedge instrument resolved against the instruments and quotes tables."""

    spec: HedgeInstrumentSpec
    underlying: str
    kind: str
    settlement: str
    contract_size: float
    #: quoted mark/forward (USD), NaN when none: the kernel's forward rule applies
    price: float = math.nan
    expiry: _dt.datetime | None = None
    #: the underlying's rate and the years to expiry at as_of (futures): the kernel's S e^{rT}
    rate: float = 0.0
    years_to_expiry: float = 0.0

    @property
    def name(self) -> str:
        return self.spec.instrument

    def _codes(self) -> tuple[int, int]:
        from gpuskew.schema import KINDS, SETTLEMENTS

        return KINDS.index(self.kind), SETTLEMENTS.index(self.settlement)

    def _quoted(self) -> float:
        return self.price if self.price > 0 and self.kind != "spot" else 0.0

    def price_at(self, spot: np.ndarray) -> np.ndarray:
        """The kernel's forward F of the instrument at index price(s) ``spot`` (USD;
        ``kernels.cpu.forwards``)."""
        from gpuskew.kernels import cpu

        kind, _ = self._codes()
        s = np.ascontiguousarray(spot, dtype=np.float64).reshape(-1)
        n = s.size
        out = np.empty(n)
        cpu.forwards(np.full(n, kind, np.int8), s, np.full(n, self.rate), np.full(n, self.years_to_expiry),
                     np.full(n, self._quoted()), out)
        return out.reshape(np.shape(spot))

    def per_contract(self, spot: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(F, delta, delta_pa)`` at index price(s) ``spot``: the kernel's forward and the coins of
        each measure per contract entered at it (the kernel's measures of one contract,
        ``kernels.cpu.position_greeks``); F computed once."""
        from gpuskew.kernels import cpu
        from gpuskew.kernels.instruments import M_DELTA, M_DELTA_PA, N_MEASURES

        kind, settle = self._codes()
        shape = np.shape(spot)
        s = np.ascontiguousarray(spot, dtype=np.float64).reshape(-1)
        n = s.size
        f = self.price_at(s)
        out = np.empty((N_MEASURES, n))
        status = np.empty(n, dtype=np.int8)
        zeros = np.zeros(n)
        cpu.position_greeks(np.full(n, kind, np.int8), np.full(n, settle, np.int8), np.zeros(n, np.int8),
                            np.ones(n), np.full(n, self.contract_size), zeros, np.full(n, self.years_to_expiry), s,
                            np.full(n, self._quoted()), np.full(n, self.rate), zeros, f, out, status)
        return f.reshape(shape), out[M_DELTA].reshape(shape), out[M_DELTA_PA].reshape(shape)

    def coin_delta_per_contract(self, spot: np.ndarray, measure: str = "delta") -> np.ndarray:
        """Coins of ``measure`` (``delta`` or ``delta_pa``) per contract entered at the kernel's
        forward: the kernel's measure of one contract (see the module docstring)."""
        _, delta, delta_pa = self.per_contract(spot)
        return delta if measure == "delta" else delta_pa

    def notional_usd(self, contracts: np.ndarray, spot: np.ndarray, price: np.ndarray | None = None) -> np.ndarray:
        """|contracts| * contract_size * F (linear, spot; F = S for spot), or
        |contracts| * contract_size (inverse). ``price``: F at ``spot`` when already known."""
        c = np.abs(np.asarray(contracts, dtype=np.float64))
        if self.settlement == "inverse":
            return c * self.contract_size
        return c * self.contract_size * (self.price_at(spot) if price is None else price)


def _utc(as_of: _dt.datetime | None) -> _dt.datetime | None:
    return None if as_of is None else to_utc(as_of)


def _rows_by_name(table: pa.Table | None, key: str, names: Sequence[str]) -> dict[str, dict]:
    """Rows of ``table`` whose ``key`` is one of ``names``, as dicts by name (only those rows are
    converted to Python: the instruments table of a large book has thousands)."""
    if table is None or key not in table.column_names:
        return {}
    wanted = table.filter(pc.is_in(table[key], value_set=pa.array(list(names), pa.string())))
    return {r[key]: r for r in wanted.to_pylist()}


def resolve_hedge_instruments(limits: Limits, instruments: pa.Table | None = None,
                              quotes: pa.Table | None = None,
                              as_of: _dt.datetime | None = None,
                              underlyings: pa.Table | None = None) -> list[HedgeInstrument]:
    """The limits' ``[[hedge_instrument]]`` entries resolved by name against ``instruments``
    (kind, settlement, contract_size, underlying, expiry) and ``quotes`` (forward = mark/forward).

    Inline attributes must agree with the instruments table; without a table row they are required.
    Futures expired at ``as_of`` are left out. Raises InvalidConfig naming the entry's key.
    """
    names = [spec.instrument for spec in limits.hedge_instruments]
    by_name = _rows_by_name(instruments, "instrument", names)
    rates: dict[str, float] = {}
    if underlyings is not None and "rate" in underlyings.column_names:
        rates = {r["underlying"]: float(r["rate"] or 0.0)
                 for r in underlyings.select(["underlying", "rate"]).to_pylist()}
    q_by_name = _rows_by_name(quotes, "instrument", names)
    as_of = _utc(as_of)
    out: list[HedgeInstrument] = []
    for spec in limits.hedge_instruments:
        row = by_name.get(spec.instrument)
        attrs: dict[str, Any] = {}
        if row is not None:
            for k in ("underlying", "kind", "settlement", "contract_size", "expiry"):
                tv, iv = row.get(k), getattr(spec, k)
                if k == "expiry" and tv is not None:
                    tv = to_utc(tv)
                if iv is not None and tv is not None:
                    same = (math.isclose(iv, tv, rel_tol=1e-12) if k == "contract_size"
                            else iv == tv)
                    if not same:
                        raise InvalidConfig(limits.source, f"{spec.key}.{k}", iv,
                                            f"disagrees with the instruments table ({tv!r})")
                attrs[k] = tv if tv is not None else iv
            if attrs["kind"] not in ("spot", "perpetual", "future"):
                raise InvalidConfig(limits.source, f"{spec.key}.instrument", spec.instrument,
                                    "a hedge must be spot, perpetual or future, "
                                    f"not {attrs['kind']}")
        else:
            attrs = {k: getattr(spec, k) for k in
                     ("underlying", "kind", "settlement", "contract_size", "expiry")}
            if attrs["kind"] == "spot" and attrs["settlement"] is None:
                attrs["settlement"] = "linear"
            for k in ("underlying", "kind", "settlement", "contract_size"):
                if attrs[k] is None:
                    raise InvalidConfig(limits.source, f"{spec.key}.{k}", None,
                                        f"required: {spec.instrument} is not in the instruments "
                                        f"table; give underlying, kind, settlement and "
                                        f"contract_size inline")
        if attrs["kind"] == "spot" and attrs["settlement"] != "linear":
            raise InvalidConfig(limits.source, f"{spec.key}.settlement", attrs["settlement"],
                                "a spot hedge is linear")
        if attrs["kind"] == "future" and attrs["expiry"] is None:
            raise InvalidConfig(limits.source, f"{spec.key}.expiry", None,
                                f"required: {spec.instrument} is a future; give its expiry (the "
                                "instruments table's, or inline)")
        if attrs["kind"] == "future" and as_of is not None and attrs["expiry"] <= as_of:
            continue
        price = math.nan
        qrow = q_by_name.get(spec.instrument)
        if qrow is not None and qrow.get("forward") is not None and qrow["forward"] > 0:
            price = float(qrow["forward"])
        years = 0.0
        if attrs["kind"] == "future" and as_of is not None and attrs["expiry"] is not None:
            years = (attrs["expiry"] - as_of).total_seconds() / SECONDS_PER_YEAR
        out.append(HedgeInstrument(spec=spec, underlying=str(attrs["underlying"]),
                                   kind=attrs["kind"], settlement=attrs["settlement"],
                                   contract_size=float(attrs["contract_size"]), price=price,
                                   expiry=attrs["expiry"], rate=rates.get(str(attrs["underlying"]), 0.0),
                                   years_to_expiry=years))
    return out


def _lots(actual: np.ndarray, target: np.ndarray, half_lower: np.ndarray, half_upper: np.ndarray,
          to_band: np.ndarray, fraction: np.ndarray, lot_coins: np.ndarray, min_coins: np.ndarray,
          ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signed whole lots to trade per group, and whether the minimum size raised them: the
    kernel's rule (:func:`gpuskew.kernels.policy.trade_coins`, the backtests' too) in coins of the
    managed delta, ``lot_coins`` the coin delta of one lot."""
    from gpuskew.kernels.policy import MODE_TO_BAND, MODE_TO_TARGET, trade_coins

    n = actual.shape[0]
    lots = np.zeros(n)
    bumped = np.zeros(n, dtype=bool)
    for i in np.flatnonzero(ok):
        mode = MODE_TO_BAND if to_band[i] else MODE_TO_TARGET
        args = (float(actual[i]), float(target[i]), float(half_lower[i]), float(half_upper[i]), mode,
                float(fraction[i]), float(lot_coins[i]))
        plain = trade_coins(*args, 0.0)
        coins = trade_coins(*args, float(min_coins[i]))
        lots[i] = np.round(coins / lot_coins[i])
        bumped[i] = coins != plain
    return lots, bumped


def hedge_schema(tags: Sequence[str]) -> pa.Schema:
    """Schema of hedges.parquet: as_of, level, underlying, the tags, then :data:`HEDGE_COLUMNS`."""
    return HEDGES.arrow_schema(tags)


def propose_hedges(adherence: pa.Table, underlyings: pa.Table | None, instruments: pa.Table | None,
                   quotes: pa.Table | None, limits: Limits, as_of: _dt.datetime,
                   hedge_instruments: list[HedgeInstrument] | None = None) -> pa.Table:
    """Hedge proposals for the groups of an adherence table (``compute_adherence(...).table``).

    A group gets a proposal when it is out of its band (|skew| > 1), or, with the policy's
    ``hedge.propose_inside_band``, whenever its deviation is nonzero; policies with
    ``hedge.enabled = false`` get none. One row per group at most (the chosen instrument); no row
    when every instrument's trade rounds to zero lots. Columns: as_of, level, underlying, the tag
    columns, then :data:`HEDGE_COLUMNS`.
    """
    tags = ADHERENCE.tag_columns(adherence)
    schema = hedge_schema(tags)
    as_of = _utc(as_of)
    n = adherence.num_rows
    if hedge_instruments is None:
        hedge_instruments = resolve_hedge_instruments(limits, instruments, quotes, as_of, underlyings)
    if n == 0 or not hedge_instruments:
        return schema.empty_table()

    level = adherence.column("level").to_pylist()
    und = adherence.column("underlying").to_pylist()
    tagv = [adherence.column(t).to_pylist() for t in tags]
    num = {c: adherence.column(c).to_numpy(zero_copy_only=False).astype(np.float64)
           for c in ("spot", "actual", "target", "lower", "upper", "skew")}
    spot, actual, target = num["spot"], num["actual"], num["target"]
    lower, upper = num["lower"], num["upper"]

    funding_by_u: dict[str, float] = {}
    if underlyings is not None and "funding_rate" in underlyings.column_names:
        for r in underlyings.select(["underlying", "funding_rate"]).to_pylist():
            f = r["funding_rate"]
            funding_by_u[r["underlying"]] = 0.0 if f is None else f
    funding = np.nan_to_num(np.array([funding_by_u.get(u, 0.0) for u in und], dtype=np.float64))

    policies: list[Policy] = []
    for i in range(n):
        row = {"level": level[i], "underlying": und[i]}
        row.update({t: tagv[k][i] for k, t in enumerate(tags)})
        policies.append(limits.policy_for(row))
    enabled = np.array([p.enabled and p.hedge.enabled for p in policies], dtype=bool)
    inside_ok = np.array([p.hedge.propose_inside_band for p in policies], dtype=bool)
    to_band_mode = np.array([p.hedge.mode == "to_band" for p in policies], dtype=bool)
    horizon = np.array([p.hedge.horizon_hours for p in policies]) / HOURS_PER_YEAR
    is_pa = np.array([p.measure == "delta_pa" for p in policies], dtype=bool)
    fraction = np.array([p.hedge.fraction for p in policies])

    # out of band = |skew| > 1, the same test as the adherence statuses
    above = num["skew"] > 1.0
    below = num["skew"] < -1.0
    outside = above | below
    candidate = enabled & np.isfinite(actual) & np.isfinite(target) & np.isfinite(spot) & (
        outside | (inside_ok & (actual != target)))
    use_band = to_band_mode & outside  # inside the band, proposals go to target

    m = len(hedge_instruments)
    cost = np.full((m, n), np.inf)
    res: list[dict[str, np.ndarray]] = []
    for j, h in enumerate(hedge_instruments):
        ok = candidate & np.array([allowed(p, h, u) for p, u in zip(policies, und)], dtype=bool)
        s = np.where(ok, spot, 1.0)
        price, d_delta, d_pa = h.per_contract(s)  # F once per instrument
        d1 = np.where(is_pa, d_pa, d_delta)
        lot = h.spec.lot_size
        lot_delta = lot * d1
        tol = _TOL * lot_delta
        contracts, min_bumped = _lots(actual, target, target - lower, upper - target, use_band, fraction,
                                      lot_delta, h.spec.min_size * d1, ok)
        contracts = contracts * lot
        coin_delta = contracts * d1
        post = actual + coin_delta
        post_out = np.maximum(np.maximum(lower - post, post - upper), 0.0) > tol
        lot_limited = min_bumped | post_out
        notional = h.notional_usd(contracts, s, price)
        fee = notional * h.spec.fee
        spread = notional * h.spec.half_spread
        impact = notional * h.spec.impact
        fund = (np.sign(contracts) * notional * funding * horizon if h.kind == "perpetual"
                else np.zeros(n))
        total = fee + spread + impact + fund
        valid = ok & (contracts != 0)
        cost[j] = np.where(valid, total, np.inf)
        res.append(dict(contracts=contracts, notional=notional, price=price,
                        coin_delta=coin_delta, post=post, total=total, fee=fee, spread=spread,
                        impact=impact, fund=fund, lot_limited=lot_limited, valid=valid))

    ll = np.stack([r["lot_limited"] for r in res])
    good = np.where(~ll, cost, np.inf)
    best = np.argmin(good, axis=0)
    fallback = np.argmin(np.where(ll, cost, np.inf), axis=0)
    has_good = np.isfinite(good.min(axis=0))
    choice = np.where(has_good, best, fallback)
    chosen_ok = np.isfinite(cost[choice, np.arange(n)])
    rows = np.flatnonzero(chosen_ok)
    if rows.size == 0:
        return schema.empty_table()

    def pick(key: str) -> np.ndarray:
        stacked = np.stack([r[key] for r in res])
        return stacked[choice[rows], rows]

    contracts = pick("contracts")
    cols: dict[str, Any] = {
        "as_of": pa.array([as_of] * rows.size, type=TIMESTAMP),
        "level": [level[i] for i in rows],
        "underlying": [und[i] for i in rows],
    }
    for k, t in enumerate(tags):
        cols[t] = [tagv[k][i] for i in rows]
    chosen = [hedge_instruments[j] for j in choice[rows]]
    post = pick("post")
    cols.update({
        "hedge_instrument": [h.name for h in chosen],
        "kind": [h.kind for h in chosen],
        "settlement": [h.settlement for h in chosen],
        "mode": np.where(use_band[rows], "to_band", "to_target").tolist(),
        "side": np.where(contracts > 0, "buy", "sell").tolist(),
        "contracts": contracts,
        "notional_usd": pick("notional"),
        "price_usd": pick("price"),
        "coin_delta": pick("coin_delta"),
        "pre_trade_delta": actual[rows],
        "post_trade_delta": post,
        "post_trade_deviation": post - target[rows],
        "est_cost_usd": pick("total"),
        "fee_usd": pick("fee"),
        "spread_usd": pick("spread"),
        "impact_usd": pick("impact"),
        "funding_usd": pick("fund"),
        "lot_limited": pick("lot_limited"),
    })
    return pa.Table.from_pydict({f.name: cols[f.name] for f in schema}, schema=schema)


__all__ = ["HEDGE_COLUMNS", "HedgeInstrument", "resolve_hedge_instruments", "propose_hedges",
           "hedge_schema", "allowed"]

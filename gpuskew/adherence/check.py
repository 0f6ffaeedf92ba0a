"""Inventory skew adherence: each group's net delta against its target and band.

    result = compute_adherence(exposures, underlyings, instruments, quotes, limits, as_of)
    result.table                        # one row per monitored group (schema.ADHERENCE_COLUMNS)
    result.hedges                       # corrective hedge proposals (hedging.HEDGE_COLUMNS)
    result.score                        # portfolio adherence score in [0, 1]
    result.worst_status_by_underlying   # {"BTC": "warn", ...}

Per group (vectorised with NumPy over groups that share a policy; no per-position work):

* actual = the group's ``delta`` or ``delta_pa`` (coins), target from the target model,
  half-widths from the band model; lower = target - half_width_lower, upper = target +
  half_width_upper;
* deviation = actual - target (coins); deviation_usd = deviation * S;
* skew = deviation / half_width_upper if deviation >= 0 else deviation / half_width_lower
  (|skew| <= 1 inside the band; a zero half-width gives 0 for a zero deviation, else +/-1e9);
* status: ``critical`` if |skew| > critical, else ``breach`` if |skew| > breach, else ``warn`` if
  |skew| > warn, else ``ok`` (strict: a group exactly on its band edge is not in breach);
* quote skew: Avellaneda-Stoikov offset and size multipliers (``gpuskew.quoting``).

Portfolio adherence score, over the groups of one level (the finest present: the level with the
most tag columns, ties to the first seen, so that no exposure is counted twice):

    score = sum_g S_g * min(|deviation_g|, w_g) / sum_g S_g * |deviation_g|

w_g the half-width on the deviation's side: the share of the portfolio's absolute USD deviation
from target that lies within tolerance. Each group weighs its USD deviation (``risk_weight_usd``
= |deviation_usd|) and scores min(1, 1/|skew|). 1 when every group is in its band (and when every
deviation is zero); towards 0 as groups leave their bands by multiples of their widths.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from gpuskew.adherence import bands as _bands
from gpuskew.adherence import quoting as _quoting
from gpuskew.adherence import targets as _targets
from gpuskew.adherence.hedging import propose_hedges, resolve_hedge_instruments
from gpuskew.core.groups import GroupIndex
from gpuskew.policy.grid import band_cost
from gpuskew.policy.limits import Limits, Policy
from gpuskew.schema import ADHERENCE, ADHERENCE_STATUSES, EXPOSURES, TIMESTAMP
from gpuskew.timeutil import to_utc

_SEVERITY = {s: i for i, s in enumerate(ADHERENCE_STATUSES)}


@dataclass
class AdherenceResult:
    """Output of :func:`compute_adherence`."""

    table: pa.Table
    hedges: pa.Table
    score: float
    worst_status_by_underlying: dict[str, str]
    #: the level the score is computed over (None when no group is monitored)
    score_level: str | None = None
    #: the policy of each row of ``table``
    policies: list[Policy] = field(default_factory=list, repr=False)


def adherence_schema(tags: list[str]) -> pa.Schema:
    """Schema of the adherence table: as_of, level, underlying, tags, then the adherence columns
    (without ``effective_status``, which the alerts add)."""
    return ADHERENCE.arrow_schema(tags, columns=[n for n in ADHERENCE.names if n != "effective_status"])


def level_depth(level: str) -> int:
    """Number of tag columns of a level: 0 for "underlying", else the comma-separated count."""
    return 0 if level == "underlying" else len(level.split(","))


def finest_level(levels: list[str]) -> str | None:
    """The level with the most tag columns, ties to the first seen."""
    best = None
    for lv in levels:
        if best is None or level_depth(lv) > level_depth(best):
            best = lv
    return best


def adherence_score(deviation: np.ndarray, half_width_lower: np.ndarray,
                    half_width_upper: np.ndarray, spot: np.ndarray) -> float:
    """sum S*min(|dev|, w_side) / sum S*|dev|, in [0, 1]; 1 when the denominator is 0."""
    d = np.asarray(deviation, dtype=np.float64)
    w = np.where(d >= 0, half_width_upper, half_width_lower)
    s = np.asarray(spot, dtype=np.float64)
    ok = np.isfinite(d) & np.isfinite(w) & np.isfinite(s)
    den = float(np.sum(np.abs(d[ok]) * s[ok]))
    if den <= 0.0:
        return 1.0
    num = float(np.sum(np.minimum(np.abs(d[ok]), w[ok]) * s[ok]))
    return min(1.0, max(0.0, num / den))


def statuses(skew: np.ndarray, warn: np.ndarray, breach: np.ndarray,
             critical: np.ndarray) -> np.ndarray:
    """Status per row from |skew| and the row's thresholds (strictly above a threshold)."""
    a = np.abs(np.asarray(skew, dtype=np.float64))
    return np.select([a > critical, a > breach, a > warn], ["critical", "breach", "warn"],
                     default="ok").astype(object)


def _col(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)


def _market(underlyings: pa.Table | None, names: list[str], column: str) -> np.ndarray:
    out = np.full(len(names), np.nan)
    if underlyings is None or column not in underlyings.column_names:
        return out
    by = {}
    for r in underlyings.select(["underlying", column]).to_pylist():
        by[r["underlying"]] = np.nan if r[column] is None else float(r[column])
    return np.array([by.get(u, np.nan) for u in names], dtype=np.float64)


def compute_adherence(exposures: pa.Table, underlyings: pa.Table | None,
                      instruments: pa.Table | None, quotes: pa.Table | None, limits: Limits,
                      as_of: _dt.datetime, *, score_level: str | None = None) -> AdherenceResult:
    """Adherence of every group of ``exposures`` to the policies of ``limits``.

    exposures: the engine's group table (level, underlying, tag columns, spot, counts, measures);
    underlyings: vol and funding_rate per underlying (targets, bands, quote skew); instruments and
    quotes: to resolve hedge instruments; as_of: UTC timestamp of the run. Groups whose policy has
    ``enabled = false`` are left out. ``score_level`` overrides the level the score is computed on.
    """
    as_of = to_utc(as_of)
    groups = GroupIndex(exposures, EXPOSURES)
    tags = groups.tags
    schema = adherence_schema(tags)
    hedge_instruments = resolve_hedge_instruments(limits, instruments, quotes, as_of, underlyings)

    level_all = [str(v) for v in exposures.column("level").to_pylist()]
    und_all = [str(v) for v in exposures.column("underlying").to_pylist()]
    tag_all = [exposures.column(t).to_pylist() for t in tags]
    n_all = exposures.num_rows

    # group value for base_pct targets: keys over ALL rows (disabled ones too: cash counts)
    keys = groups.portfolio_codes()
    value_all = _col(exposures, "value_usd") if n_all else np.zeros(0)

    pol_all: list[Policy] = []
    for i in range(n_all):
        pol_all.append(limits.policy_for(groups.row(i)))
    keep = np.array([p.enabled for p in pol_all], dtype=bool)
    idx = np.flatnonzero(keep)
    n = idx.size
    policies = [pol_all[i] for i in idx]
    level = [level_all[i] for i in idx]
    und = [und_all[i] for i in idx]

    spot = _col(exposures, "spot")[idx] if n_all else np.zeros(0)
    gamma = _col(exposures, "gamma")[idx] if n_all else np.zeros(0)
    meas = {m: (_col(exposures, m)[idx] if n_all else np.zeros(0)) for m in ("delta", "delta_pa")}
    vol = _market(underlyings, und, "vol")
    funding = _market(underlyings, und, "funding_rate")
    rate = np.nan_to_num(_market(underlyings, und, "rate"))

    actual = np.full(n, np.nan)
    target = np.full(n, np.nan)
    hw_lo = np.full(n, np.nan)
    hw_up = np.full(n, np.nan)
    warn, breach, crit = np.zeros(n), np.zeros(n), np.zeros(n)
    q_gamma = np.full(n, np.nan)
    q_tau = np.full(n, np.nan)

    # rows sharing one policy are computed together
    pol_index: dict[Policy, list[int]] = {}
    for r, p in enumerate(policies):
        pol_index.setdefault(p, []).append(r)
    for p, rows_l in pol_index.items():
        rows = np.asarray(rows_l, dtype=np.int64)
        u_sub = [und[r] for r in rows]
        s = spot[rows]
        actual[rows] = meas[p.measure][rows]
        gv = None
        if p.target.model == "base_pct":
            gv_all = _targets.group_value_usd(keys, und_all, value_all, p.target.value_scope,
                                              p.target.cash_underlyings)
            gv = gv_all[idx[rows]]
        target[rows] = _targets.target_coins(p.target, spot=s, vol=vol[rows],
                                             funding_rate=funding[rows], group_value_usd=gv,
                                             underlying=u_sub)
        cost = None
        if p.band.model in ("whalley_wilmott", "zakamouline"):
            cost = np.array([band_cost(limits, p, u, hedge_instruments) for u in u_sub])
        lo, up = _bands.half_widths(p.band, spot=s, vol=vol[rows], gamma=gamma[rows], cost=cost,
                                    underlying=u_sub, rate=rate[rows])
        hw_lo[rows], hw_up[rows] = lo, up
        warn[rows], breach[rows], crit[rows] = (p.thresholds.warn, p.thresholds.breach,
                                                p.thresholds.critical)
        if p.quote.risk_aversion is not None:
            q_gamma[rows] = p.quote.risk_aversion
            q_tau[rows] = _quoting.tau_years(p.quote.tau_hours)

    deviation = actual - target
    sk = _bands.skew(deviation, hw_lo, hw_up)
    status = statuses(sk, warn, breach, crit)
    weight = np.abs(deviation) * spot
    # quote skew: no offset when the policy sets no quote risk aversion or the vol is missing
    offset = _quoting.reservation_offset(deviation, q_gamma, vol, spot, q_tau)
    offset_valid = np.isfinite(offset)
    bid, ask = _quoting.multipliers_from_skew(sk)

    cols = {
        "as_of": pa.array([as_of] * n, type=TIMESTAMP),
        "level": level, "underlying": und,
    }
    for k, t in enumerate(tags):
        cols[t] = [tag_all[k][i] for i in idx]
    cols.update({
        "measure": [p.measure for p in policies],
        "spot": spot, "actual": actual, "target": target,
        "lower": target - hw_lo, "upper": target + hw_up,
        "half_width_lower": hw_lo, "half_width_upper": hw_up,
        "deviation": deviation, "deviation_usd": deviation * spot,
        "skew": sk, "status": status.tolist(),
        "target_model": [p.target.model for p in policies],
        "band_model": [p.band.model for p in policies],
        "risk_weight_usd": weight,
        "reservation_offset_usd": pa.array(offset, mask=~offset_valid, type=pa.float64()),
        "bid_size_mult": bid, "ask_size_mult": ask,
    })
    table = pa.Table.from_pydict({f.name: cols[f.name] for f in schema}, schema=schema)

    lvl = score_level if score_level is not None else finest_level(level)
    sel = np.array([lv == lvl for lv in level], dtype=bool)
    score = adherence_score(deviation[sel], hw_lo[sel], hw_up[sel], spot[sel]) if n else 1.0

    worst: dict[str, str] = {}
    for u, st in zip(und, status):
        if u not in worst or _SEVERITY[st] > _SEVERITY[worst[u]]:
            worst[u] = st

    hedges = propose_hedges(table, underlyings, instruments, quotes, limits, as_of,
                            hedge_instruments=hedge_instruments)
    return AdherenceResult(table=table, hedges=hedges, score=score,
                           worst_status_by_underlying=worst, score_level=lvl, policies=policies)


__all__ = ["AdherenceResult", "compute_adherence", "adherence_schema", "adherence_score",
           "statuses", "finest_level", "level_depth"]

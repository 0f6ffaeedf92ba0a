"""The greeks path: a book repriced along every market path, summed per group.

A linear hedge does not change the book's greeks, so this is computed once per market path and
then every policy is swept over it (:mod:`gpuskew.backtest.sweep`).

Every ``full_every`` steps (and at every step where a client fill or an expiry changes the book)
the book is fully revalued: every held instrument priced once and every position from its
instrument (:meth:`gpuskew.core.backend.Backend.held_greeks`, the engine's path and bits) and summed
per group by the fixed reduction tree (:meth:`~gpuskew.core.backend.Backend.segmented_sum`). In between, a second-order step from
the last full revaluation k, per group (the sums of per-position Taylor expansions are the Taylor
expansion of the sums, since every group holds one underlying):

    dS = S(t) - S(k)   [USD];   ds = 100 (L(t) - L(k))   [vol points];   dd = days since k
    V(t)     = V + delta dS + gamma dS^2 / 2 + vega ds + theta dd + vanna dS ds + volga ds^2 / 2
    delta(t) = delta + gamma dS + vanna ds            (delta_pa moves by the same amount)

gamma, vanna, vega and theta are held at their values at k. The error of that step is measured at
each full revaluation whose book did not change: the Taylor value and delta predicted from the
previous revaluation against the full ones (max and RMS over groups and revaluations, the delta
error in USD, delta x S; reported in the backtest's summary).

Market moves: S per underlying; forwards and perpetual marks move in proportion to S; every
option's implied vol moves by the change of its underlying's ATM level (the smile keeps its shape),
floored at 1%; T falls with time. Perpetuals and futures held without an entry price take their
forward at the start as entry (so that their value moves with the market). An option or future
that expires during the path is settled at the first grid step at or after its expiry: its value
there (priced one microsecond before expiry: the payoff) moves into the group's cash, and the
position leaves the book. Client fills (:class:`gpuskew.synthetic.markets.Flow`) enter the book at
their step, their premium and fee leave the cash. The group's **wealth** = value + cash: its
change is the book's P&L.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from gpuskew import schema
from gpuskew.core.backend import Backend, resolve_backend
from gpuskew.core.book import NO_EXPIRY, Book, load_book
from gpuskew.core.groups import group_positions
from gpuskew.core.reduction import plan_segmented_sum
from gpuskew.errors import InvalidInput
from gpuskew.kernels import instruments as ki
from gpuskew.synthetic.markets import IV_FLOOR, Flow, MarketPaths
from gpuskew.timeutil import to_micros

#: Time to expiry used to price a position at its settlement step (one microsecond), years.
SETTLE_T: float = 1e-6 / schema.SECONDS_PER_YEAR
#: Seconds per day (theta is per calendar day).
SECONDS_PER_DAY: float = 86_400.0
#: Default: a full revaluation every this many steps.
DEFAULT_FULL_EVERY: int = 60
#: Positions x revaluations priced in one kernel launch (revaluations are batched side by side).
ROWS_PER_LAUNCH: int = 1 << 20

_M = {name: i for i, name in enumerate(schema.MEASURE_NAMES)}
#: measures the path keeps per group and step
PATH_MEASURES: tuple[str, ...] = ("value_usd", "delta", "delta_pa", "gamma", "vanna", "vega_usd", "theta_usd")


@dataclass
class GreeksPath:
    """Per path, group and grid step (arrays (paths, groups, steps + 1)): ``wealth`` (value +
    cash, USD), ``delta`` and ``delta_pa`` (coins), ``gamma`` (coins/USD), ``vanna`` (coins per
    vol point), ``vega`` (USD per vol point), ``theta`` (USD per day); per group ``groups`` (rows:
    level, underlying, tags) and ``und`` (index into ``market.underlyings``)."""

    market: MarketPaths
    groups: list[dict]
    group_table: pa.Table
    tags: list[str]
    und: np.ndarray
    wealth: np.ndarray
    delta: np.ndarray
    delta_pa: np.ndarray
    gamma: np.ndarray
    vanna: np.ndarray
    vega: np.ndarray
    theta: np.ndarray
    full_every: int
    error: dict = field(default_factory=dict)
    backend: dict = field(default_factory=dict)
    flow: dict = field(default_factory=dict)
    n_positions: int = 0
    revaluations: int = 0
    #: derived arrays that depend only on this path (the sweep's Zakamouline factors), computed once
    #: per process (not pickled: a sharded sweep's workers compute their own)
    cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __getstate__(self) -> dict:
        return dict(vars(self), cache={})

    @property
    def n_groups(self) -> int:
        return len(self.groups)

    def window(self, first: int, last: int) -> GreeksPath:
        """Steps first..last (inclusive grid points) as a path of their own."""
        sl = slice(first, last + 1)
        return GreeksPath(self.market.window(first, last), self.groups, self.group_table, self.tags, self.und,
                          self.wealth[:, :, sl], self.delta[:, :, sl], self.delta_pa[:, :, sl],
                          self.gamma[:, :, sl], self.vanna[:, :, sl], self.vega[:, :, sl], self.theta[:, :, sl],
                          self.full_every, dict(self.error), dict(self.backend), dict(self.flow),
                          self.n_positions, self.revaluations)

    def split(self, n_windows: int) -> GreeksPath:
        """The path cut into ``n_windows`` consecutive windows of equal length, as that many paths
        per original path (each window restarts the hedge): for a single recorded path."""
        steps = self.market.n_steps // n_windows
        if steps < 1:
            raise ValueError("more windows than steps")
        parts = [self.window(i * steps, (i + 1) * steps) for i in range(n_windows)]
        cat = lambda name: np.concatenate([getattr(p, name) for p in parts], axis=0)  # noqa: E731
        m0 = parts[0].market
        market = MarketPaths(m0.start, m0.step_seconds, m0.underlyings,
                             np.concatenate([p.market.spot for p in parts]),
                             np.concatenate([p.market.atm_vol for p in parts]),
                             np.concatenate([p.market.funding for p in parts]), m0.rate,
                             m0.source + f" (cut into {n_windows} windows)", m0.seed, m0.models)
        return GreeksPath(market, self.groups, self.group_table, self.tags, self.und, cat("wealth"), cat("delta"),
                          cat("delta_pa"), cat("gamma"), cat("vanna"), cat("vega"), cat("theta"), self.full_every,
                          dict(self.error), dict(self.backend), dict(self.flow), self.n_positions,
                          self.revaluations)


def _extended_book(book: Book, flow: Flow | None) -> tuple[Book, np.ndarray]:
    """The book with one position row per fill appended; the step from which each row is held."""
    pos = book.positions
    tags = list(book.tags)
    n0 = pos.num_rows
    if flow is None or len(flow) == 0:
        return book, np.zeros(n0, dtype=np.int64)
    kinds = dict(zip(book.instruments["instrument"].to_pylist(), book.instruments["kind"].to_pylist()))
    entry0 = pos["entry_price"] if "entry_price" in pos.column_names else pa.nulls(n0, pa.float64())
    fill_entry = [float(p) if kinds[i] in ("perpetual", "future") and math.isfinite(p) else None
                  for i, p in zip(flow.instrument, flow.price)]
    cols: dict[str, pa.Array] = {
        "instrument": pa.concat_arrays([pos["instrument"].combine_chunks().cast(pa.string()),
                                        pa.array(flow.instrument, pa.string())]),
        "quantity": pa.concat_arrays([pos["quantity"].combine_chunks().cast(pa.float64()),
                                      pa.array(flow.quantity, pa.float64())]),
        "entry_price": pa.concat_arrays([entry0.combine_chunks().cast(pa.float64())
                                         if isinstance(entry0, pa.ChunkedArray) else entry0,
                                         pa.array(fill_entry, pa.float64())]),
    }
    for t in tags:
        cols[t] = pa.concat_arrays([pos[t].combine_chunks().cast(pa.string()),
                                    pa.array(flow.tags.get(t, [None] * len(flow)), pa.string())])
    ext = load_book({"instruments": book.instruments, "positions": pa.table(cols), "underlyings": book.underlyings,
                     "quotes": book.quotes})
    ext.sources = dict(book.sources, positions=f"{book.sources.get('positions')} + {len(flow)} fills")
    start = np.concatenate([np.zeros(n0, dtype=np.int64), flow.step.astype(np.int64)])
    return ext, start


@dataclass
class _Level:
    name: str
    codes: np.ndarray
    n_groups: int


def _groups(book: Book, levels: Sequence[tuple[str, ...]],
            market: MarketPaths) -> tuple[list[_Level], list[dict], pa.Table, np.ndarray]:
    flat = book.flat()
    tags = sorted({t for lv in levels for t in lv}, key=lambda t: book.tags.index(t))
    out_levels: list[_Level] = []
    rows: list[dict] = []
    und: list[int] = []
    for level in [()] + [lv for lv in levels if lv]:
        g = group_positions(flat.underlying_code, flat.underlying_names, book.positions, level)
        name = ",".join(level) if level else "underlying"
        out_levels.append(_Level(name, g.codes, g.n_groups))
        for i in range(g.n_groups):
            row = {"level": name, "underlying": g.keys["underlying"][i]}
            for t in tags:
                row[t] = g.keys[t][i] if t in level else None
            rows.append(row)
            und.append(market.index(g.keys["underlying"][i]))
    cols = {"level": pa.array([r["level"] for r in rows], pa.string()),
            "underlying": pa.array([r["underlying"] for r in rows], pa.string())}
    for t in tags:
        cols[t] = pa.array([r[t] for r in rows], pa.string())
    return out_levels, rows, pa.table(cols), np.array(und, dtype=np.int64)


def _initial_entries(flat: Any, h_T0: np.ndarray) -> np.ndarray:
    """Entry prices: as given; perpetuals and futures without one take their forward at the start
    (the forward of their instrument, ``kernels.cpu.forwards`` over the held instruments), so that
    their value moves with the market."""
    from gpuskew.kernels import cpu

    entry = flat.entry.copy()
    need = ((flat.kind == ki.KIND_PERPETUAL) | (flat.kind == ki.KIND_FUTURE)) & ~(entry > 0)
    if need.any():
        h_F = np.empty(flat.h_kind.shape[0])
        cpu.forwards(flat.h_kind, flat.h_S, flat.h_r, h_T0, flat.h_fwd, h_F)
        entry[need] = h_F[flat.pos_inst[need]]
    return entry


def _settlement_steps(kind: np.ndarray, expiry_us: np.ndarray, start_us: int, step_us: float) -> np.ndarray:
    """The settlement step of each expiring option or future (the first grid step at or after its
    expiry); -1 when expired before the start (never priced), int64 max when it does not expire."""
    has_exp = (expiry_us != NO_EXPIRY) & ((kind == ki.KIND_OPTION) | (kind == ki.KIND_FUTURE))
    settle = np.full(kind.shape[0], np.iinfo(np.int64).max, dtype=np.int64)
    rel = (expiry_us[has_exp] - start_us) / step_us
    settle[has_exp] = np.maximum(np.ceil(rel - 1e-9), 0).astype(np.int64)
    settle[has_exp & (expiry_us <= start_us)] = -1
    return settle


def compute_greeks_path(book: Book, market: MarketPaths, levels: Sequence[tuple[str, ...]] = (),
                        backend: str | Backend = "auto", full_every: int = DEFAULT_FULL_EVERY,
                        flow: Flow | None = None,
                        progress: Callable[[int, int], None] | None = None) -> GreeksPath:
    """Reprice ``book`` along every path of ``market`` (see the module docstring).

    ``levels``: group-by levels (tuples of tag columns) besides the per-underlying one;
    ``backend``: 'auto' | 'cpu' | 'cuda' or a resolved :class:`Backend`; ``full_every``: steps
    between full revaluations (1: every step); ``flow``: client fills; ``progress(done, total)``
    is called after each path.
    """
    if full_every < 1:
        raise ValueError("full_every must be >= 1")
    ext, start_step = _extended_book(book, flow)
    flat = ext.flat()
    if flat.underlying_names != list(market.underlyings):
        raise InvalidInput("market", "underlying", f"the market's underlyings ({', '.join(market.underlyings)}) "
                                                   f"differ from the book's ({', '.join(flat.underlying_names)})")
    lv, rows, group_table, und = _groups(ext, levels, market)
    n_g = len(rows)
    n_p, n_t = market.n_paths, market.n_steps
    n = len(flat)
    # the held instruments: each priced once per revaluation, its positions from it (the engine's
    # Backend.held_greeks)
    m = flat.h_kind.shape[0]
    pos_inst = flat.pos_inst
    h_ucode = np.empty(m, dtype=np.int64)
    h_ucode[pos_inst] = flat.underlying_code
    start_us = to_micros(market.start)
    step_us = market.step_seconds * 1e6
    h_settle_step = _settlement_steps(flat.h_kind, flat.h_expiry_us, start_us, step_us)
    settle = h_settle_step[pos_inst]  # per position
    entry = _initial_entries(flat, flat.held_time_to_expiry(start_us))
    h_is_option = flat.h_kind == ki.KIND_OPTION
    inst_kind = flat.kind
    is_fill = np.arange(n) >= n - (len(flow) if flow is not None else 0)

    # the steps that are fully revalued
    events = set(int(s) for s in start_step if 0 < s <= n_t)
    events |= set(int(s) for s in settle if 0 <= s <= n_t)
    reval_steps = sorted(set(range(0, n_t + 1, full_every)) | {n_t} | events)

    # every (path, step, variant) to revalue: variant 0 the book as held at the step (settling
    # positions priced at their payoff), variant 1 the book after that step's settlements. They are
    # independent, so they are revalued in batches: the positions of b blocks side by side in one
    # kernel launch, summed per (block, group) by one reduction plan.
    settle_steps = {int(x) for x in settle if 0 <= x <= n_t}
    blocks = [(p, t, v) for p in range(n_p) for t in reval_steps for v in ((0, 1) if t in settle_steps else (0,))]
    where = {blk: i for i, blk in enumerate(blocks)}
    keep = PATH_MEASURES + ("volga",)
    sums_all = np.empty((len(blocks), len(keep), n_g))
    values_at: dict[int, np.ndarray] = {}
    per_launch = max(1, min(len(blocks), ROWS_PER_LAUNCH // max(1, n)))
    # 'auto' decides on the positions priced in one launch (revaluations side by side)
    chosen = backend if isinstance(backend, Backend) else resolve_backend(backend, per_launch * n)
    fill_steps = {int(x) for x in start_step[is_fill]}
    static_cache: dict[int, dict] = {}
    plan_cache: dict[tuple[int, int], tuple] = {}

    def static_cols(b: int) -> dict:
        """The columns that do not change between revaluations, for b blocks side by side: the
        held instruments' (tiled), the positions' entries (tiled) and their instruments (block k's
        positions point at block k's instruments)."""
        if b not in static_cache:
            static_cache.clear()
            cols = {name: chosen.to_device(np.ascontiguousarray(np.tile(getattr(flat, name), b)))
                    for name in ("h_kind", "h_settle", "h_cp", "h_csize", "h_strike", "h_r")}
            cols["entry"] = chosen.to_device(np.ascontiguousarray(np.tile(entry, b)))
            cols["pos_inst"] = chosen.to_device(
                (pos_inst[None, :] + m * np.arange(b, dtype=np.int64)[:, None]).reshape(-1))
            static_cache[b] = cols
        return static_cache[b]

    def level_plan(k: int, b: int) -> tuple:
        if (k, b) not in plan_cache:
            L = lv[k]
            codes = (L.codes[None, :].astype(np.int64) + L.n_groups * np.arange(b, dtype=np.int64)[:, None]).ravel()
            plan = plan_segmented_sum(codes, L.n_groups * b)
            plan_cache[(k, b)] = (plan, chosen.plan_to_device(plan))
        return plan_cache[(k, b)]

    keep_rows = [_M[name] for name in keep]
    for c0 in range(0, len(blocks), per_launch):
        chunk = blocks[c0:c0 + per_launch]
        b = len(chunk)
        pi = np.array([x[0] for x in chunk], dtype=np.int64)[:, None]
        ti = np.array([x[1] for x in chunk], dtype=np.int64)[:, None]
        vi = np.array([x[2] for x in chunk], dtype=np.int64)[:, None]
        # per (block, held instrument): the market at the block's step
        S = market.spot[pi, h_ucode[None, :], ti]
        shift = market.atm_vol[pi, h_ucode[None, :], ti] - market.atm_vol[pi, h_ucode[None, :], 0]
        fwd = np.where(flat.h_fwd > 0, flat.h_fwd * (S / flat.h_S), 0.0)
        vol = np.where(h_is_option, np.maximum(flat.h_vol + shift, IV_FLOOR), 0.0)
        T = np.stack([flat.held_time_to_expiry(int(round(start_us + int(t) * step_us))) for t in ti[:, 0]])
        T = np.where(h_settle_step[None, :] == ti, SETTLE_T, T)
        # per (block, position): the quantity held (0 before its fill, after its settlement)
        settling = settle[None, :] == ti
        active = (start_step[None, :] <= ti) & ((settle[None, :] >= ti) | (settle[None, :] < 0))
        active &= ~(settling & (vi == 1))
        qty = np.where(active, flat.qty[None, :], 0.0)
        cols = dict(static_cols(b))
        for name, a in (("qty", qty), ("h_S", S), ("h_fwd", fwd), ("h_vol", vol), ("h_T", T)):
            cols[name] = chosen.to_device(np.ascontiguousarray(a, dtype=np.float64).reshape(-1))
        out_dev, _status = chosen.held_greeks(cols)
        parts = []
        for k, L in enumerate(lv):
            plan, dplan = level_plan(k, b)
            parts.append(chosen.segmented_sum(out_dev, plan, dplan).reshape(-1, b, L.n_groups))
        sums = np.concatenate(parts, axis=2)[keep_rows]  # (measures, blocks, groups)
        if not np.isfinite(sums).all():
            bad = int(np.flatnonzero(~np.isfinite(sums).all(axis=(0, 2)))[0])
            raise InvalidInput(ext.sources.get("positions", "positions"), None,
                               f"non-finite greeks at step {chunk[bad][1]} of path {chunk[bad][0]} (check the "
                               "market path and the book's quantities, strikes and vols)")
        sums_all[c0:c0 + b] = np.transpose(sums, (1, 0, 2))
        need = [j for j, (_, t, v) in enumerate(chunk) if v == 0 and (t in fill_steps or t in settle_steps)]
        if need:
            values = np.asarray(chosen.to_host(out_dev))[_M["value_usd"]].reshape(b, n)
            for j in need:
                values_at[c0 + j] = values[j].copy()
    n_reval = len(blocks)

    def group_of_positions(per_position: np.ndarray) -> np.ndarray:
        """Host sums per group of a per-position vector (bincount per level)."""
        return np.concatenate([np.bincount(L.codes, weights=per_position, minlength=L.n_groups) for L in lv])

    arrays = {name: np.empty((n_p, n_g, n_t + 1)) for name in ("wealth", "delta", "delta_pa", "gamma",
                                                                "vanna", "vega", "theta")}
    err_v = err_d = 0.0  # value (USD) and delta x S (USD)
    err_v2 = err_d2 = move_v2 = 0.0
    err_n = 0
    dt_days = market.step_seconds / SECONDS_PER_DAY
    for p in range(n_p):
        cash = np.zeros(n_g)
        cash_prev = cash
        base: dict[str, np.ndarray] | None = None
        base_step = 0
        for t in reval_steps:
            k0 = where[(p, t, 0)]
            state = {name: sums_all[k0, i] for i, name in enumerate(keep)}
            fills_here = (start_step == t) & is_fill
            settling = settle == t
            changed = bool(fills_here.any() or settling.any())
            if fills_here.any():
                values = values_at[k0]
                paid = np.zeros(n)
                rows_f = np.flatnonzero(fills_here)
                k = rows_f - (n - len(flow))  # index into the flow
                price = flow.price[k]
                at_model = ~np.isfinite(price)
                contract_cash = -flat.qty[rows_f] * flat.csize[rows_f] * np.where(at_model, 0.0, price)
                model_cash = -values[rows_f] * (1.0 - np.sign(flat.qty[rows_f]) * flow.edge)
                linear_kind = (inst_kind[rows_f] == ki.KIND_PERPETUAL) | (inst_kind[rows_f] == ki.KIND_FUTURE)
                paid[rows_f] = np.where(at_model, model_cash, np.where(linear_kind, 0.0, contract_cash)) \
                    - flow.fee[k]
                cash = cash + group_of_positions(paid)
            if base is not None and t > base_step:
                # Taylor steps base_step+1 .. t from the base; at t, measure the error when the book
                # did not change since the base
                ts = np.arange(base_step + 1, t + 1)
                pred = _taylor(base, market, p, und, base_step, ts, dt_days)
                _store(arrays, p, ts[:-1], pred, cash_prev)
                if not changed:
                    dv = pred["value_usd"][:, -1] - state["value_usd"]
                    dd = (pred["delta"][:, -1] - state["delta"]) * market.spot[p, und, t]
                    err_v = max(err_v, float(np.max(np.abs(dv))) if dv.size else 0.0)
                    err_d = max(err_d, float(np.max(np.abs(dd))) if dd.size else 0.0)
                    err_v2 += float(np.sum(dv * dv))
                    err_d2 += float(np.sum(dd * dd))
                    mv = state["value_usd"] - base["value_usd"]
                    move_v2 += float(np.sum(mv * mv))
                    err_n += dv.size
            _store(arrays, p, np.array([t]), {k: v[:, None] for k, v in state.items()}, cash)
            if settling.any():
                # the settling positions' payoff becomes cash; the book after the settlement is the
                # base of the next steps
                cash = cash + group_of_positions(np.where(settling, values_at[k0], 0.0))
                k1 = where[(p, t, 1)]
                state = {name: sums_all[k1, i] for i, name in enumerate(keep)}
            base = state
            base_step = t
            cash_prev = cash.copy()
        if progress:
            progress(p + 1, n_p)
    error = {
        "full_every": full_every,
        "revaluations": n_reval,
        "compared": err_n,
        "value_max_abs_usd": err_v,
        "value_rms_usd": math.sqrt(err_v2 / err_n) if err_n else 0.0,
        "delta_usd_max_abs": err_d,
        "delta_usd_rms": math.sqrt(err_d2 / err_n) if err_n else 0.0,
        "value_move_rms_usd": math.sqrt(move_v2 / err_n) if err_n else 0.0,
    }
    error["value_rms_relative"] = error["value_rms_usd"] / error["value_move_rms_usd"] \
        if error["value_move_rms_usd"] > 0 else 0.0
    tags = [c for c in group_table.column_names if c not in ("level", "underlying")]
    return GreeksPath(market, rows, group_table, tags, und, arrays["wealth"], arrays["delta"], arrays["delta_pa"],
                      arrays["gamma"], arrays["vanna"], arrays["vega"], arrays["theta"], full_every, error,
                      {"used": chosen.name, "device": chosen.device, "reason": chosen.reason},
                      flow.summary() if flow is not None else {}, n, n_reval)


def _taylor(base: dict[str, np.ndarray], market: MarketPaths, p: int, und: np.ndarray, k: int, ts: np.ndarray,
            dt_days: float) -> dict[str, np.ndarray]:
    """Second-order step from the full revaluation at step k to the steps ``ts`` (groups x steps)."""
    dS = market.spot[p][und][:, ts] - market.spot[p, und, k][:, None]
    ds = 100.0 * (market.atm_vol[p][und][:, ts] - market.atm_vol[p, und, k][:, None])
    dd = (ts - k)[None, :] * dt_days
    b = {name: v[:, None] for name, v in base.items()}
    value = (b["value_usd"] + b["delta"] * dS + 0.5 * b["gamma"] * dS * dS + b["vega_usd"] * ds
             + b["theta_usd"] * dd + b["vanna"] * dS * ds + 0.5 * b["volga"] * ds * ds)
    move = b["gamma"] * dS + b["vanna"] * ds
    shape = dS.shape
    return {"value_usd": value, "delta": b["delta"] + move, "delta_pa": b["delta_pa"] + move,
            "gamma": np.broadcast_to(b["gamma"], shape), "vanna": np.broadcast_to(b["vanna"], shape),
            "vega_usd": np.broadcast_to(b["vega_usd"], shape), "theta_usd": np.broadcast_to(b["theta_usd"], shape)}


def _store(arrays: dict[str, np.ndarray], p: int, ts: np.ndarray, values: dict[str, np.ndarray],
           cash: np.ndarray) -> None:
    if ts.size == 0:
        return
    w = values["value_usd"][:, : ts.size] + cash[:, None]
    arrays["wealth"][p][:, ts] = w
    arrays["delta"][p][:, ts] = values["delta"][:, : ts.size]
    arrays["delta_pa"][p][:, ts] = values["delta_pa"][:, : ts.size]
    arrays["gamma"][p][:, ts] = values["gamma"][:, : ts.size]
    arrays["vanna"][p][:, ts] = values["vanna"][:, : ts.size]
    arrays["vega"][p][:, ts] = values["vega_usd"][:, : ts.size]
    arrays["theta"][p][:, ts] = values["theta_usd"][:, : ts.size]


__all__ = ["GreeksPath", "compute_greeks_path", "DEFAULT_FULL_EVERY", "PATH_MEASURES"]

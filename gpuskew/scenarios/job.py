"""The scenario job: a book resident on a backend, revalued under the risk matrix of every underlying.

    job = ScenarioJob(book, as_of="2026-11-20T08:00:00Z", backend="auto", group_by=["desk"])
    result = job.run(load_scenario_config("scenarios.toml"))    # again with other parameters: cheap
    result.scenarios, result.risk_vectors, result.summary

:class:`ScenarioJob` moves the book to the backend once and prices its greeks once (the engine's
kernels: each held instrument once); each :meth:`ScenarioJob.run` only moves the scenario grid (a
few hundred numbers), revalues each held instrument once per scenario and then every position from
it (``kernels/scenarios.py``), and sums per group with the engine's fixed reduction plans (the
finest level over the positions, coarser levels over its group sums): the same bits on the CPU,
under the CUDA simulator and over the shards of a cluster (:mod:`gpuskew.distributed.scenarios`).

Per group and scenario: ``pnl_usd`` (full revaluation, summed), ``pnl_taylor_usd`` (from the
group's delta and gamma and the per-position vol terms) and ``pnl_coin`` (V'/S' - V/S from the
group's value and P&L, for groups holding coin-settled positions).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from gpuskew import __version__, schema
from gpuskew.core.backend import Backend, resolve_backend
from gpuskew.core.book import Book, FlatPositions
from gpuskew.core.engine import (HELD_MARKET_COLUMNS, Priced, as_of_micros, check_finite, device_plan, level_grouping,
                                 parse_as_of, price_positions)
from gpuskew.core.reduction import plan_segmented_sum
from gpuskew.core.groups import Grouping, parse_levels
from gpuskew.errors import InvalidInput
from gpuskew.scenarios.matrix import ScenarioGrid, build_grid
from gpuskew.scenarios.params import N_STANDARD, ScenarioConfig
from gpuskew.timeutil import iso_z

#: rows of the per-position array reduced per group: value, delta, gamma, then the Taylor vol
#: terms (kernels.scenarios T_*), then the scenarios
_GREEK_ROWS = ("value_usd", "delta", "gamma")

MARGIN_NOTE = ("estimate only: the worst weighted loss of the risk matrix (Deribit's 'worst_case'); "
               "Deribit's risk-matrix margin adds a roll shock, a delta shock and correlation "
               "contingencies, and its initial margin open-order and MMP margins, none of which are "
               "modelled here; maintenance = mm_factor * initial")


@dataclass
class ScenarioResult:
    """Outputs of one scenario run (pyarrow Tables and the summary dict)."""

    scenarios: pa.Table
    risk_vectors: pa.Table
    summary: dict
    grid: ScenarioGrid
    levels: list[tuple[str, ...]] = field(default_factory=list)


def _launch(backend: Backend, name: str, *args: Any) -> None:
    """A scenario kernel of the backend (kernels/cpu.py or kernels/cuda.py)."""
    if backend.name == "cpu":
        from gpuskew.kernels import cpu

        getattr(cpu, name)(*args)
    else:
        from gpuskew.kernels import cuda as kcuda

        getattr(kcuda, f"launch_{name}")(*args)


def _scenario_kernel(backend: Backend, cols: dict[str, Any], greeks: Any, grid: ScenarioGrid,
                     out: Any) -> None:
    """Fill ``out`` ((3 + N_TAYLOR + n_scenarios) x n): value, delta, gamma, Taylor vol terms, P&L."""
    from gpuskew.kernels import instruments as ki
    from gpuskew.kernels.scenarios import N_TAYLOR

    for row, m in enumerate((ki.M_VALUE_USD, ki.M_DELTA, ki.M_GAMMA)):
        out[row] = greeks[m]
    taylor = out[3:3 + N_TAYLOR]
    pnl = out[3 + N_TAYLOR:]
    moves = backend.to_device(np.ascontiguousarray(grid.moves))
    vol_case = backend.to_device(np.ascontiguousarray(grid.vol_case))
    vparams = backend.to_device(np.ascontiguousarray(grid.vparams))
    from gpuskew.kernels.scenarios import N_QS_EXTRA

    # each held instrument revalued once per scenario, then every position from it
    qv = backend.xp.empty((grid.n_scenarios + N_QS_EXTRA, cols["h_kind"].shape[0]), dtype=np.float64)
    _launch(backend, "instrument_scenario_values", cols["h_kind"], cols["h_cp"], cols["h_strike"], cols["h_T"],
            cols["h_S"], cols["h_fwd"], cols["h_r"], cols["h_vol"], cols["h_ucode"], moves, vol_case, vparams, qv)
    _launch(backend, "scenario_pnl", cols["pos_inst"], cols["qty"], cols["entry"], cols["h_kind"], cols["h_settle"],
            cols["h_csize"], cols["h_T"], cols["h_S"], cols["h_vol"], cols["h_ucode"], greeks, moves, vol_case, qv,
            pnl, taylor)


def _tag_names(book: Book, levels: list[tuple[str, ...]]) -> list[str]:
    return sorted({t for lv in levels for t in lv}, key=lambda t: book.tags.index(t))


class ScenarioJob:
    """A book priced once on a backend, revalued under any number of scenario grids."""

    def __init__(self, book: Book, as_of: str | datetime | None = None, backend: str = "auto",
                 group_by: str | Sequence[str] | Sequence[Sequence[str]] | None = (),
                 progress: Callable[[str], None] | None = None):
        t0 = time.perf_counter()
        self.book = book
        self.when = parse_as_of(as_of)
        self.requested = backend
        self.levels = parse_levels(group_by, book.tags)
        self.backend = resolve_backend(backend, len(book))
        self.progress = progress
        flat = self.flat = book.flat()
        b = self.backend
        self.finest = max(reversed([()] + self.levels), key=len)
        priced = price_positions(book, self.when, b)
        b.synchronize()
        self.greeks, self.status = priced.out, priced.status
        self.T = priced.T  # per position (the engine's), host
        self.h_T = flat.held_time_to_expiry(as_of_micros(self.when))  # per held instrument
        #: what does not change between runs: the risk vectors' unit contracts priced (built by the
        #: first run), the inverse-settled positions per group of each summed level
        self._risk_base: RiskVectorBase | None = None
        self._n_inverse: dict[tuple[str, ...], np.ndarray] = {}
        self.cols = resident_columns(book, b, priced)
        from gpuskew.core.backend import CpuBackend

        self._host = CpuBackend("coarser levels from the finest group sums")
        self.timings: dict[str, float] = {"prepare": round(time.perf_counter() - t0, 6)}
        if progress:
            progress("greeks")

    # -- one run ---------------------------------------------------------------------------------
    def run(self, config: ScenarioConfig) -> ScenarioResult:
        """Revalue every position under the grid of ``config``; sum per group; build the tables."""
        t0 = time.perf_counter()
        b, flat = self.backend, self.flat
        grid = build_grid(config, flat.underlying_names)
        out = scenario_rows_on(b, self.cols, self.greeks, grid, len(flat))
        b.synchronize()
        t1 = time.perf_counter()
        if self.progress:
            self.progress("scenarios")
        values = lambda: np.asarray(b.to_host(out))  # noqa: E731 - only read when a sum is not finite
        sums: dict[tuple[str, ...], tuple[Grouping, np.ndarray]] = {}
        for level in level_order(self.levels):
            grouping = level_grouping(self.book, flat, level)
            sums[level] = (grouping, b.segmented_sum(out, *device_plan(self.book, b, grouping)))
            check_finite(sums[level][1], values, self.book, grouping, names=(),
                         what="a scenario revaluation is not finite")
        for level, (g, _) in sums.items():
            if level not in self._n_inverse:
                self._n_inverse[level] = np.bincount(g.codes[flat.settle == 1], minlength=g.n_groups)
        n_inverse = {level: self._n_inverse[level] for level in sums}  # scenario_tables adds the coarser ones
        coarser = {level: level_grouping(self.book, flat, level) for level in [()] + self.levels if level not in sums}
        scenarios, worst_rows = scenario_tables(self.levels, _tag_names(self.book, self.levels), sums, n_inverse,
                                                grid, flat.underlying_spot, self._host, coarser)
        t2 = time.perf_counter()
        if self._risk_base is None:
            self._risk_base = RiskVectorBase.of(self.book, flat, h_T=self.h_T)
        risk_vectors = self._risk_base.table(grid)
        t3 = time.perf_counter()
        timings = dict(self.timings, scenario_kernel=round(t1 - t0, 6), group_sums=round(t2 - t1, 6),
                       risk_vectors=round(t3 - t2, 6))
        summary = self._summary(config, grid, scenarios, worst_rows, timings)
        if self.progress:
            self.progress("tables")
        return ScenarioResult(scenarios, risk_vectors, summary, grid, list(self.levels))

    def _summary(self, config: ScenarioConfig, grid: ScenarioGrid, scenarios: pa.Table,
                 worst_rows: list[dict], timings: dict) -> dict:
        expired = int(np.sum(self.status == schema.STATUS_EXPIRED))
        b = self.backend
        return scenario_summary(self.book, (b.name, b.device, b.reason), self.requested, self.when, self.levels,
                                config, grid, scenarios, worst_rows, timings, len(self.book), expired,
                                self.risk_vector_count())

    def risk_vector_count(self) -> int:
        """The instruments held (one risk vector each)."""
        return int(self.flat.held_row.size)


def scenario_summary(book: Book, backend: tuple[str, str, str], requested: str, when: datetime,
                     levels: Sequence[tuple[str, ...]], config: ScenarioConfig, grid: ScenarioGrid,
                     scenarios: pa.Table, worst_rows: list[dict], timings: dict, n_positions: int, expired: int,
                     instruments_held: int) -> dict:
    """summary.json of a scenario run (``backend``: name, device, reason)."""
    warnings = []
    if expired:
        warnings.append(f"{expired} position(s) on expired options/futures have zero scenario P&L "
                        "(not priced)")
    missing = sorted(set(config.underlyings) - set(grid.underlying_names))
    if missing:
        warnings.append(f"{config.source}: no positions on underlying(s) {', '.join(missing)}; "
                        "their parameters are unused")
    return {
        "version": __version__,
        "as_of": iso_z(when),
        "backend": {"requested": requested, "used": backend[0], "device": backend[1], "reason": backend[2]},
        "inputs": {name: {"source": book.sources[name], "hash": book.input_hashes[name] or "in-memory"}
                   for name in schema.INPUT_TABLES},
        "counts": {"positions": n_positions, "instruments_held": instruments_held,
                   "underlyings": len(grid.underlying_names), "expired": expired,
                   "scenarios": grid.n_scenarios, "groups": len(worst_rows),
                   "rows": scenarios.num_rows},
        "group_by": [list(lv) for lv in levels],
        "scenario_file": config.source,
        "parameters": config.as_dict(grid.underlying_names),
        "layout": {"standard": f"scenarios 0-{N_STANDARD - 1}: spot move major (ascending), vol "
                               "down/same/up minor", "extended": f"scenarios {N_STANDARD}-"
                               f"{grid.n_scenarios - 1}: extended moves on vol up, weighted"},
        "margin_note": MARGIN_NOTE,
        "worst": worst_rows,
        "warnings": warnings,
        "timings_s": timings,
    }


def level_order(levels: Sequence[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """The levels whose sums come from the positions: the per-underlying level, the finest, and any
    level that is not a subset of the finest (a coarser one is summed over the finest's groups)."""
    finest = max(reversed([()] + list(levels)), key=len)
    out = [finest]
    for level in [()] + list(levels):
        if level not in out and not set(level) <= set(finest):
            out.append(level)
    return out


def coarse_plan(fine: Grouping, coarse: Grouping) -> Any:
    """The reduction plan of ``coarse`` over the group sums of ``fine`` (whose tag columns include
    coarse's): fine group g goes to the coarse group with the same underlying and tag values of
    coarse's level. Built from the group keys alone, so a cluster's coordinator builds the same."""
    index = {tuple(coarse.keys[k][g] for k in ("underlying", *coarse.level)): g for g in range(coarse.n_groups)}
    codes = np.array([index[tuple(fine.keys[k][g] for k in ("underlying", *coarse.level))]
                      for g in range(fine.n_groups)], dtype=np.int32)
    return plan_segmented_sum(codes, coarse.n_groups)


def scenario_tables(levels: Sequence[tuple[str, ...]], tags: list[str],
                    sums: dict[tuple[str, ...], tuple[Grouping, np.ndarray]],
                    n_inverse: dict[tuple[str, ...], np.ndarray], grid: ScenarioGrid, spot_by_code: np.ndarray,
                    host: Backend, groupings: dict[tuple[str, ...], Grouping] | None = None
                    ) -> tuple[pa.Table, list[dict]]:
    """scenarios.parquet and the worst rows of every level from the sums of :func:`level_order`'s
    levels (the rest: the fixed tree over the finest level's group sums). ``groupings``: the
    groups of the levels summed over the finest (default: computed by the caller into ``sums``)."""
    finest = level_order(levels)[0]
    fine, fine_sums = sums[finest]
    tables, worst_rows = [], []
    for level in [()] + list(levels):
        if level in sums:
            grouping, level_sums = sums[level]
        else:
            grouping = groupings[level] if groupings is not None else None
            if grouping is None:
                raise ValueError(f"no grouping for level {level}")
            level_sums = host.segmented_sum(fine_sums, coarse_plan(fine, grouping))
            if level not in n_inverse:  # counts add exactly
                n_inverse[level] = np.bincount(coarse_codes(fine, grouping), weights=n_inverse[finest],
                                               minlength=grouping.n_groups).astype(np.int64)
        table, worst = _group_table(level, tags, grouping, level_sums, n_inverse[level], grid, spot_by_code)
        tables.append(table)
        worst_rows += worst
    return (pa.concat_tables(tables) if tables else schema.SCENARIOS.empty(tags)), worst_rows


def coarse_codes(fine: Grouping, coarse: Grouping) -> np.ndarray:
    """The coarse group of each fine group (by keys)."""
    index = {tuple(coarse.keys[k][g] for k in ("underlying", *coarse.level)): g for g in range(coarse.n_groups)}
    return np.array([index[tuple(fine.keys[k][g] for k in ("underlying", *coarse.level))]
                     for g in range(fine.n_groups)], dtype=np.int64)


def resident_columns(book: Book, backend: Backend, priced: Priced) -> dict[str, Any]:
    """The columns the scenario kernels read, on the backend's device: the held instruments' (and
    their underlying codes, times to expiry and market data at the priced time) and the positions'
    (instrument index, quantity, entry)."""
    flat = priced.flat
    key = ("scenario_resident", backend.name)
    if key not in book._cache:
        resident = {name: backend.to_device(getattr(flat, name))
                    for name in ("pos_inst", "qty", "entry", "h_kind", "h_settle", "h_cp", "h_csize", "h_strike")}
        resident["h_ucode"] = backend.to_device(flat.h_ucode)
        book._cache[key] = resident
    cols = dict(book._cache[key])
    for name in HELD_MARKET_COLUMNS:
        cols[name] = backend.to_device(getattr(flat, name))
    cols["h_T"] = backend.to_device(flat.held_time_to_expiry(as_of_micros(priced.when)))
    return cols


def scenario_rows_on(backend: Backend, cols: dict[str, Any], greeks: Any, grid: ScenarioGrid, n: int) -> Any:
    """The per-position rows summed per group ((3 + N_TAYLOR + n_scenarios) x n, on the device):
    value, delta, gamma, the Taylor vol terms, the scenario P&L."""
    from gpuskew.kernels.scenarios import N_TAYLOR

    out = backend.xp.empty((3 + N_TAYLOR + grid.n_scenarios, n), dtype=np.float64)
    _scenario_kernel(backend, cols, greeks, grid, out)
    return out


def scenario_rows(book: Book, priced: Priced, backend: Backend, grid: ScenarioGrid) -> Any:
    """:func:`scenario_rows_on` a (shard's) book priced by :func:`price_positions`, plus one last
    row: 1 for every inverse-settled position (its group's coin P&L is reported). The ``extra``
    rows of :func:`gpuskew.distributed.job.sharded_step` for a sharded scenario run."""
    out = scenario_rows_on(backend, resident_columns(book, backend, priced), priced.out, grid, len(priced.flat))
    inverse = backend.to_device((priced.flat.settle == 1).astype(np.float64)[None, :])
    return backend.xp.concatenate([out, inverse], axis=0)


def _group_table(level: tuple[str, ...], tags: list[str], grouping: Grouping, sums: np.ndarray,
                 n_inverse: np.ndarray, grid: ScenarioGrid, spot_by_code: np.ndarray) -> tuple[pa.Table, list[dict]]:
    """scenarios.parquet rows of one level (group major, scenario minor) and each group's worst."""
    from gpuskew.kernels import scenarios as ks

    ng, nsc = grouping.n_groups, grid.n_scenarios
    names = grouping.keys["underlying"]
    ucode = np.array([grid.underlying_names.index(u) for u in names], dtype=np.int64)
    spot = spot_by_code[ucode]
    value, delta, gamma = sums[0], sums[1], sums[2]
    tay = sums[3:3 + ks.N_TAYLOR]
    pnl = sums[3 + ks.N_TAYLOR:].T  # (groups x scenarios)
    moves = grid.moves[ucode]  # (groups x scenarios)
    weights = grid.weights[ucode]
    up = grid.vol_case == ks.VOL_UP
    down = grid.vol_case == ks.VOL_DOWN

    def pick(up_row: int, down_row: int) -> np.ndarray:
        return np.where(up, tay[up_row][:, None], np.where(down, tay[down_row][:, None], 0.0))

    dS = spot[:, None] * moves
    taylor = ks.taylor_pnl(delta[:, None], gamma[:, None], dS, pick(ks.T_VEGA_UP, ks.T_VEGA_DOWN),
                           pick(ks.T_VANNA_UP, ks.T_VANNA_DOWN), pick(ks.T_VOLGA_UP, ks.T_VOLGA_DOWN))
    coin = ks.coin_pnl(pnl, value[:, None], spot[:, None], moves)
    has_coin = n_inverse > 0
    weighted = weights * pnl
    worst_j = np.argmin(weighted, axis=1) if nsc else np.zeros(ng, dtype=np.int64)
    worst = np.zeros((ng, nsc), dtype=bool)
    worst[np.arange(ng), worst_j] = True
    level_name = ",".join(level) if level else "underlying"
    rep = lambda a: np.repeat(np.asarray(a, dtype=object), nsc).tolist()  # noqa: E731
    cols: dict[str, Any] = {"level": [level_name] * (ng * nsc), "underlying": rep(names)}
    for t in tags:
        cols[t] = rep(grouping.keys[t]) if t in level else [None] * (ng * nsc)
    vol_names = grid.vol_case_names
    cols.update({
        "scenario": np.tile(np.arange(nsc, dtype=np.int32), ng),
        "spot_move": moves.ravel(),
        "vol_case": vol_names * ng,
        "extended": np.tile(grid.extended, ng),
        "weight": weights.ravel(),
        "pnl_usd": pnl.ravel(),
        "pnl_coin": pa.array(coin.ravel(), mask=~np.repeat(has_coin, nsc)),
        "pnl_taylor_usd": taylor.ravel(),
        "worst": worst.ravel(),
    })
    spec = schema.SCENARIOS.arrow_schema(tags)
    table = pa.table({f.name: pa.array(cols[f.name], f.type) if not isinstance(cols[f.name], pa.Array)
                      else cols[f.name] for f in spec}, schema=spec)
    worst_rows = []
    for g in range(ng):
        j = int(worst_j[g])
        row: dict[str, Any] = {"level": level_name, "underlying": names[g]}
        for t in level:
            row[t] = grouping.keys[t][g]
        loss = max(0.0, -float(weighted[g, j]))
        mm = float(grid.mm_factor[ucode[g]])
        row.update({"scenario": j, "spot_move": float(moves[g, j]), "vol_case": vol_names[j],
                    "extended": bool(grid.extended[j]), "weight": float(weights[g, j]),
                    "pnl_usd": float(pnl[g, j]), "weighted_pnl_usd": float(weighted[g, j]),
                    "pnl_taylor_usd": float(taylor[g, j]),
                    "estimated_initial_margin_usd": loss,
                    "estimated_maintenance_margin_usd": mm * loss})
        if has_coin[g]:
            wc = weights[g] * coin[g]
            jc = int(np.argmin(wc))
            loss_c = max(0.0, -float(wc[jc]))
            row.update({"worst_coin_scenario": jc, "estimated_initial_margin_coin": loss_c,
                        "estimated_maintenance_margin_coin": mm * loss_c})
        worst_rows.append(row)
    return table, worst_rows


def risk_vector_table(book: Book, flat: FlatPositions, T: np.ndarray, grid: ScenarioGrid) -> pa.Table:
    """risk_vectors.parquet: one contract of every instrument held, revalued under the grid (CPU
    kernels; a few thousand rows at most). In the settlement currency: coins for inverse
    instruments (V'/S' - V/S), USD for linear ones; extended entries weighted. ``T``: each
    position's time to expiry. (A job revalued under many grids keeps :class:`RiskVectorBase`.)"""
    h_T = np.empty(flat.held_row.size, dtype=np.float64)
    h_T[flat.pos_inst] = T  # every position of an instrument has its T
    return RiskVectorBase.of(book, flat, h_T=h_T).table(grid)


@dataclass
class RiskVectorBase:
    """The held instruments' unit contracts priced once (they do not depend on the grid): the
    columns of :func:`risk_vector_table` per held instrument and their greeks."""

    cols: dict[str, np.ndarray]
    ucode: np.ndarray
    greeks: np.ndarray
    names: pa.Array
    unds: list[str]
    kinds: pa.Array
    settlements: pa.Array

    @classmethod
    def of(cls, book: Book, flat: FlatPositions, *, h_T: np.ndarray) -> "RiskVectorBase":
        """``h_T``: each held instrument's time to expiry (``flat.held_time_to_expiry``)."""
        from gpuskew.kernels import cpu, instruments as ki

        m = flat.held_row.size
        cols = {"kind": flat.h_kind, "settle": flat.h_settle, "cp": flat.h_cp, "csize": flat.h_csize,
                "strike": flat.h_strike, "T": np.ascontiguousarray(h_T, dtype=np.float64), "S": flat.h_S,
                "fwd": flat.h_fwd, "r": flat.h_r, "vol": flat.h_vol}
        greeks = np.empty((ki.N_MEASURES, m))
        status = np.empty(m, dtype=np.int8)
        c = cols
        cpu.position_greeks(c["kind"], c["settle"], c["cp"], np.ones(m), c["csize"], c["strike"], c["T"], c["S"],
                            c["fwd"], c["r"], c["vol"], np.zeros(m), greeks, status)
        ucode = flat.h_ucode
        inst = book.instruments
        rows = pa.array(flat.held_row)
        return cls(cols, ucode, greeks, inst["instrument"].take(rows).combine_chunks(),
                   [flat.underlying_names[i] for i in ucode], inst["kind"].take(rows).combine_chunks(),
                   inst["settlement"].take(rows).combine_chunks())

    def table(self, grid: ScenarioGrid) -> pa.Table:
        """risk_vectors.parquet under ``grid``."""
        from gpuskew.kernels import cpu, instruments as ki, scenarios as ks

        c, ucode, m = self.cols, self.ucode, self.ucode.size
        one, zero = np.ones(m), np.zeros(m)
        pnl = np.empty((grid.n_scenarios, m))
        taylor = np.empty((ks.N_TAYLOR, m))
        qv = np.empty((grid.n_scenarios + ks.N_QS_EXTRA, m))
        cpu.instrument_scenario_values(c["kind"], c["cp"], c["strike"], c["T"], c["S"], c["fwd"], c["r"], c["vol"],
                                       ucode, grid.moves, grid.vol_case, grid.vparams, qv)
        cpu.scenario_pnl(np.arange(m, dtype=np.int64), one, zero, c["kind"], c["settle"], c["csize"], c["T"],
                         c["S"], c["vol"], ucode, self.greeks, grid.moves, grid.vol_case, qv, pnl, taylor)
        # the unit position's base value: a perpetual or future without an entry price is worth 0
        # both here and with the scenarios' entry (its base forward), so V is the greeks' value
        value = self.greeks[ki.M_VALUE_USD]
        moves = grid.moves[ucode].T  # (scenarios x instruments)
        weights = grid.weights[ucode].T
        coin = ks.coin_pnl(pnl, value[None, :], c["S"][None, :], moves)
        inverse = c["settle"] == ki.SETTLE_INVERSE
        native = np.where(inverse[None, :], coin, pnl)
        ext = grid.extended

        def lists(a: np.ndarray) -> pa.Array:
            return pa.array([a[:, i].tolist() for i in range(m)], pa.list_(pa.float64()))

        cols = {
            "instrument": self.names.cast(pa.string()),
            "underlying": pa.array(self.unds, pa.string()),
            "kind": self.kinds,
            "settlement": self.settlements,
            "settlement_currency": pa.array([und if inv else "USD" for und, inv in zip(self.unds, inverse)],
                                            pa.string()),
            "standard": lists(native[~ext]),
            "extended": lists((weights * native)[ext]),
            "standard_usd": lists(pnl[~ext]),
            "extended_usd": lists((weights * pnl)[ext]),
        }
        spec = schema.RISK_VECTORS.arrow_schema()
        table = pa.table([cols[f.name].cast(f.type) for f in spec], schema=spec)
        return table.sort_by([("underlying", "ascending"), ("instrument", "ascending")])


def run_scenarios(book: Book, as_of: str | datetime | None = None, backend: str = "auto",
                  group_by: str | Sequence[str] | Sequence[Sequence[str]] | None = (),
                  config: ScenarioConfig | None = None,
                  progress: Callable[[str], None] | None = None) -> ScenarioResult:
    """One scenario run: :class:`ScenarioJob` then :meth:`ScenarioJob.run`."""
    job = ScenarioJob(book, as_of, backend, group_by, progress)
    return job.run(config or ScenarioConfig())

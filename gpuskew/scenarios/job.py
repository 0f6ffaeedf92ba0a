"""The scenario job: a book resident on a backend, revalued under the risk matrix of every underlying.

    job = ScenarioJob(book, as_of="2026-11-20T08:00:00Z", backend="auto", group_by=["desk"])
    result = job.run(load_scenario_config("scenarios.toml"))    # again with other parameters: cheap
    result.scenarios, result.risk_vectors, result.summary

:class:`ScenarioJob` moves the book to the backend once, its positions sorted by the group of the
finest grouping level (so that every group's columns are contiguous for the kernel's writes and
the reduction tree's reads), and prices its greeks once; each
:meth:`ScenarioJob.run` only moves the scenario grid (a few hundred numbers), runs one kernel pass
over the positions (``kernels/scenarios.py``: every scenario of each position) and sums per group
with the fixed reduction tree (``Backend.segmented_sum``): the same bits on the CPU and under the
CUDA simulator.

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
from gpuskew.core.engine import HELD_MARKET_COLUMNS, as_of_micros, check_finite, level_grouping, parse_as_of
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
        self.T = flat.time_to_expiry(as_of_micros(self.when))
        b = self.backend
        # the book resident in group order: positions sorted by the group of the finest level, so
        # that the kernel writes, and the reduction tree reads, every group's columns contiguously
        # (groups are ordered by underlying, then tag values: every level that is a prefix of the
        # finest one is contiguous too)
        self.finest = max(reversed([()] + self.levels), key=len)
        codes = level_grouping(book, flat, self.finest).codes
        self.perm = _stable_order(codes)
        key = ("scenario_resident", b.name, self.finest)
        if key not in book._cache:
            resident = {name: b.to_device(np.ascontiguousarray(getattr(flat, name)[self.perm]))
                        for name in ("pos_inst", "qty", "entry")}
            resident.update({name: b.to_device(getattr(flat, name))
                             for name in ("h_kind", "h_settle", "h_cp", "h_csize", "h_strike")})
            held_ucode = np.empty(flat.held_row.size, dtype=np.int32)
            held_ucode[flat.pos_inst] = flat.underlying_code
            resident["h_ucode"] = b.to_device(held_ucode)
            book._cache[key] = resident
        cols = dict(book._cache[key])
        for name in HELD_MARKET_COLUMNS:
            cols[name] = b.to_device(getattr(flat, name))
        cols["h_T"] = b.to_device(flat.held_time_to_expiry(as_of_micros(self.when)))
        self.cols = cols
        self.greeks, status = b.held_greeks(cols)
        b.synchronize()
        self.status = np.asarray(b.to_host(status))
        from gpuskew.core.backend import CpuBackend

        self._host = CpuBackend("coarser levels from the finest group sums")
        self.timings: dict[str, float] = {"prepare": round(time.perf_counter() - t0, 6)}
        if progress:
            progress("greeks")

    # -- one run ---------------------------------------------------------------------------------
    def run(self, config: ScenarioConfig) -> ScenarioResult:
        """Revalue every position under the grid of ``config``; sum per group; build the tables."""
        from gpuskew.kernels.scenarios import N_TAYLOR

        t0 = time.perf_counter()
        b, flat = self.backend, self.flat
        grid = build_grid(config, flat.underlying_names)
        n = len(flat)
        rows = 3 + N_TAYLOR + grid.n_scenarios
        out = b.xp.empty((rows, n), dtype=np.float64)
        _scenario_kernel(b, self.cols, self.greeks, grid, out)
        b.synchronize()
        t1 = time.perf_counter()
        if self.progress:
            self.progress("scenarios")
        tags = _tag_names(self.book, self.levels)
        inverse = flat.settle == 1
        tables, worst_rows = [], []
        values = lambda: np.asarray(b.to_host(out))  # noqa: E731 - only read when a sum is not finite
        fine = level_grouping(self.book, flat, self.finest)
        fine_sums = b.segmented_sum(out, *self._plan(fine))
        check_finite(fine_sums, values, self.book, fine, perm=self.perm, names=(),
                     what="a scenario revaluation is not finite")
        for level in [()] + self.levels:
            grouping = level_grouping(self.book, flat, level)
            if level == self.finest:
                sums = fine_sums
            elif set(level) <= set(self.finest):
                # a coarser level is a union of the finest groups: its sums are the fixed tree over
                # theirs (the same on every backend), not another pass over the positions
                sums = self._host.segmented_sum(fine_sums, self._coarse_plan(fine, grouping))
            else:
                sums = b.segmented_sum(out, *self._plan(grouping))
            check_finite(sums, values, self.book, grouping, perm=self.perm, names=(),
                         what="a scenario revaluation is not finite")
            n_inverse = np.bincount(grouping.codes[inverse], minlength=grouping.n_groups)
            table, worst = _group_table(level, tags, grouping, sums, n_inverse, grid, flat)
            tables.append(table)
            worst_rows += worst
        scenarios = pa.concat_tables(tables) if tables else schema.SCENARIOS.empty(tags)
        t2 = time.perf_counter()
        risk_vectors = risk_vector_table(self.book, flat, self.T, grid)
        t3 = time.perf_counter()
        timings = dict(self.timings, scenario_kernel=round(t1 - t0, 6), group_sums=round(t2 - t1, 6),
                       risk_vectors=round(t3 - t2, 6))
        summary = self._summary(config, grid, scenarios, worst_rows, timings)
        if self.progress:
            self.progress("tables")
        return ScenarioResult(scenarios, risk_vectors, summary, grid, list(self.levels))

    def _plan(self, grouping: Grouping) -> tuple[Any, list]:
        """The reduction plan of a level over the resident (group-ordered) columns, kept with the book."""
        key = ("scenario_plan", self.backend.name, self.finest, grouping.level)
        if key not in self.book._cache:
            plan = plan_segmented_sum(grouping.codes[self.perm], grouping.n_groups)
            self.book._cache[key] = (plan, self.backend.plan_to_device(plan))
        return self.book._cache[key]

    def _coarse_plan(self, fine: Grouping, coarse: Grouping) -> Any:
        """The reduction plan of ``coarse`` over the group sums of ``fine`` (finer or equal)."""
        key = ("scenario_coarse_plan", fine.level, coarse.level)
        if key not in self.book._cache:
            first = np.zeros(fine.n_groups, dtype=np.int64)
            first[fine.codes[::-1]] = np.arange(fine.codes.size - 1, -1, -1)  # a member of each fine group
            codes = coarse.codes[first] if fine.n_groups else np.zeros(0, dtype=np.int32)
            self.book._cache[key] = plan_segmented_sum(codes, coarse.n_groups)
        return self.book._cache[key]

    def _summary(self, config: ScenarioConfig, grid: ScenarioGrid, scenarios: pa.Table,
                 worst_rows: list[dict], timings: dict) -> dict:
        book, b = self.book, self.backend
        expired = int(np.sum(self.status == schema.STATUS_EXPIRED))
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
            "as_of": iso_z(self.when),
            "backend": {"requested": self.requested, "used": b.name, "device": b.device, "reason": b.reason},
            "inputs": {name: {"source": book.sources[name], "hash": book.input_hashes[name]}
                       for name in schema.INPUT_TABLES},
            "counts": {"positions": len(book), "instruments_held": self.risk_vector_count(),
                       "underlyings": len(grid.underlying_names), "expired": expired,
                       "scenarios": grid.n_scenarios, "groups": len(worst_rows),
                       "rows": scenarios.num_rows},
            "group_by": [list(lv) for lv in self.levels],
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

    def risk_vector_count(self) -> int:
        return int(np.unique(self.flat.instrument_index).size)


def _stable_order(codes: np.ndarray) -> np.ndarray:
    """Positions sorted by group code, ties in position order."""
    return np.argsort(codes, kind="stable").astype(np.int64)


def _group_table(level: tuple[str, ...], tags: list[str], grouping: Grouping, sums: np.ndarray,
                 n_inverse: np.ndarray, grid: ScenarioGrid, flat: FlatPositions) -> tuple[pa.Table, list[dict]]:
    """scenarios.parquet rows of one level (group major, scenario minor) and each group's worst."""
    from gpuskew.kernels import scenarios as ks

    ng, nsc = grouping.n_groups, grid.n_scenarios
    names = grouping.keys["underlying"]
    ucode = np.array([grid.underlying_names.index(u) for u in names], dtype=np.int64)
    spot = flat.underlying_spot[ucode]
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
    instruments (V'/S' - V/S), USD for linear ones; extended entries weighted."""
    from gpuskew.kernels import cpu, instruments as ki, scenarios as ks

    inst_rows, first = np.unique(flat.instrument_index, return_index=True)
    k = first
    m = k.size
    greeks = np.empty((ki.N_MEASURES, m))
    status = np.empty(m, dtype=np.int8)
    one = np.ones(m)
    zero = np.zeros(m)
    args = (flat.kind[k], flat.settle[k], flat.cp[k], one, flat.csize[k], flat.strike[k], T[k], flat.S[k],
            flat.fwd[k], flat.r[k], flat.vol[k], zero)
    cpu.position_greeks(*args, greeks, status)
    pnl = np.empty((grid.n_scenarios, m))
    taylor = np.empty((ks.N_TAYLOR, m))
    ucode = np.ascontiguousarray(flat.underlying_code[k])
    qv = np.empty((grid.n_scenarios + ks.N_QS_EXTRA, m))
    cpu.instrument_scenario_values(flat.kind[k], flat.cp[k], flat.strike[k], T[k], flat.S[k], flat.fwd[k], flat.r[k],
                                   flat.vol[k], ucode, grid.moves, grid.vol_case, grid.vparams, qv)
    cpu.scenario_pnl(np.arange(m, dtype=np.int64), one, zero, flat.kind[k], flat.settle[k], flat.csize[k], T[k],
                     flat.S[k], flat.vol[k], ucode, greeks, grid.moves, grid.vol_case, qv, pnl, taylor)
    # the unit position's base value: a perpetual or future without an entry price is worth 0 both
    # here and with the scenarios' entry (its base forward), so V is the greeks' value
    value = greeks[ki.M_VALUE_USD]
    u = flat.underlying_code[k]
    moves = grid.moves[u].T  # (scenarios x instruments)
    weights = grid.weights[u].T
    coin = ks.coin_pnl(pnl, value[None, :], flat.S[k][None, :], moves)
    inverse = flat.settle[k] == ki.SETTLE_INVERSE
    native = np.where(inverse[None, :], coin, pnl)
    ext = grid.extended
    held = np.bincount(flat.instrument_index, weights=flat.qty, minlength=int(inst_rows.max()) + 1 if m else 0)
    inst = book.instruments
    names = inst["instrument"].take(pa.array(inst_rows)).to_pylist()
    unds = [flat.underlying_names[i] for i in u]

    def lists(a: np.ndarray) -> pa.Array:
        return pa.array([a[:, i].tolist() for i in range(m)], pa.list_(pa.float64()))

    cols = {
        "instrument": pa.array(names, pa.string()),
        "underlying": pa.array(unds, pa.string()),
        "kind": inst["kind"].take(pa.array(inst_rows)).combine_chunks(),
        "settlement": inst["settlement"].take(pa.array(inst_rows)).combine_chunks(),
        "settlement_currency": pa.array([und if inv else "USD" for und, inv in zip(unds, inverse)], pa.string()),
        "contracts_held": pa.array(held[inst_rows] if m else [], pa.float64()),
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

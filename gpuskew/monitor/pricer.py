"""Incremental pricing: re-price only dirty positions with the run's kernel, then group sums from
the full per-position arrays in the run's fixed order.

* ``out`` (N_MEASURES x rows) and ``status`` live on the backend's device (NumPy on the CPU, CuPy
  with CUDA): a re-price moves only the dirty rows' input columns to the device, runs
  ``Backend.position_greeks`` on them and scatters the results into ``out``. The kernel is a pure
  function of each position's inputs, so a position priced alone has the same bits as in a run
  over the whole book.
* Group sums: the priced rows in ledger order get dense group codes (:mod:`grouping`); the fixed
  reduction plan of :func:`gpuskew.core.reduction.plan_segmented_sum` over those rows is the plan
  ``gpuskew run`` builds for the same positions; its first level is re-indexed from
  "k-th priced row" to the row number in ``out``, so ``Backend.segmented_sum`` reads ``out``
  directly. Plans are rebuilt only when the set of priced rows changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gpuskew import schema
from gpuskew.core.backend import Backend
from gpuskew.core.groups import Grouping
from gpuskew.core.reduction import SegmentedSumPlan, TileLevel, plan_segmented_sum

#: kernel input columns, in Backend.position_greeks' naming
KERNEL_COLUMNS = ("kind", "settle", "cp", "qty", "csize", "strike", "T", "S", "fwd", "r", "vol", "entry")
#: per-instrument input columns of Backend.held_greeks, and the per-instrument names they come from
HELD_COLUMNS = {"h_kind": "kind", "h_settle": "settle", "h_cp": "cp", "h_csize": "csize", "h_strike": "strike",
                "h_T": "T", "h_S": "S", "h_fwd": "fwd", "h_r": "r", "h_vol": "vol"}


@dataclass
class LevelPlan:
    """Codes and the re-indexed reduction plan of one level."""

    codes: Grouping
    plan: SegmentedSumPlan
    device_plan: list


class Pricer:
    """Per-position measures on the device, and group sums (see the module docstring)."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self.xp = backend.xp
        self.capacity = 0
        self.out: Any = self.xp.zeros((schema.N_MEASURES, 0))
        self.status: Any = self.xp.zeros(0, np.int8)
        self.T = np.zeros(0)  #: host copy of each row's time to expiry (positions table)
        self.rows = np.zeros(0, np.int64)  #: priced rows, ascending
        self.plans: list[LevelPlan] = []
        self.repriced_total = 0

    def ensure_capacity(self, n: int) -> None:
        if n <= self.capacity:
            return
        cap = max(n, 2 * self.capacity, 1024)
        xp = self.xp
        out = xp.zeros((schema.N_MEASURES, cap))
        status = xp.zeros(cap, np.int8)
        if self.capacity:
            out[:, : self.capacity] = self.out
            status[: self.capacity] = self.status
        T = np.zeros(cap)
        T[: self.capacity] = self.T
        self.out, self.status, self.T, self.capacity = out, status, T, cap

    def _held(self, instruments: dict[str, np.ndarray], pos_inst: np.ndarray, qty: np.ndarray,
              entry: np.ndarray) -> tuple[Any, Any]:
        """Every measure of the given positions, each of their instruments priced once
        (Backend.held_greeks: the bits of the per-position kernel)."""
        b = self.backend
        cols = {k: b.to_device(np.ascontiguousarray(instruments[v])) for k, v in HELD_COLUMNS.items()}
        cols["pos_inst"] = b.to_device(np.ascontiguousarray(pos_inst, dtype=np.int64))
        cols["qty"] = b.to_device(np.ascontiguousarray(qty, dtype=np.float64))
        cols["entry"] = b.to_device(np.ascontiguousarray(entry, dtype=np.float64))
        return b.held_greeks(cols)

    def reprice(self, rows: np.ndarray, instruments: dict[str, np.ndarray], pos_inst: np.ndarray,
                qty: np.ndarray, entry: np.ndarray) -> None:
        """Price ``rows`` (int64): ``instruments`` the per-instrument input columns (kind, settle,
        cp, csize, strike, T, S, fwd, r, vol) of the instruments they hold, ``pos_inst`` each row's
        index among them, ``qty`` and ``entry`` per row."""
        if rows.size == 0:
            return
        b = self.backend
        out, status = self._held(instruments, pos_inst, qty, entry)
        T = np.asarray(instruments["T"])[pos_inst]
        self.T[rows] = T
        if rows[0] == 0 and rows[-1] == rows.size - 1:  # rows are ascending and distinct: all of 0..n-1
            n = rows.size
            self.out[:, :n] = out
            self.status[:n] = status
        else:
            idx = b.to_device(rows)
            self.out[:, idx] = out
            self.status[idx] = status
        self.repriced_total += int(rows.size)

    def reprice_all(self, instruments: dict[str, np.ndarray], pos_inst: np.ndarray, qty: np.ndarray,
                    entry: np.ndarray) -> None:
        """Price every row 0..capacity-1 (full-length ``pos_inst``, ``qty``, ``entry``); the
        kernel's output arrays become the per-position arrays (no copy)."""
        out, status = self._held(instruments, pos_inst, qty, entry)
        assert out.shape == (schema.N_MEASURES, self.capacity)
        self.out, self.status = out, status
        self.T = np.asarray(instruments["T"], dtype=np.float64)[pos_inst]
        self.repriced_total += self.capacity

    def set_rows(self, rows: np.ndarray, levels: list[Grouping]) -> None:
        """The priced rows (ascending) and their group codes per level: rebuild the plans."""
        self.rows = rows
        self.plans = []
        for lc in levels:
            plan = plan_segmented_sum(lc.codes, lc.n_groups)
            if plan.levels:
                first = plan.levels[0]
                remapped = TileLevel(rows[first.index], first.tile_start, first.tile_len)
                plan = SegmentedSumPlan(plan.n_groups, (remapped,) + plan.levels[1:])
            self.plans.append(LevelPlan(lc, plan, self.backend.plan_to_device(plan)))

    def sums(self, k: int) -> np.ndarray:
        """Sums (host, N_MEASURES x groups) of level ``k`` over the priced rows."""
        lp = self.plans[k]
        return self.backend.segmented_sum(self.out, lp.plan, lp.device_plan)

    def host_out(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(out[:, rows], status[rows]) on the host."""
        b = self.backend
        out = np.asarray(b.to_host(self.out))[:, rows]
        status = np.asarray(b.to_host(self.status))[rows]
        return out, status

    def compact(self, keep: np.ndarray) -> None:
        """Renumber rows after a ledger compaction (``keep``: old row of each new row); the
        per-position arrays are gathered where they live (no round trip through the host)."""
        b, xp = self.backend, self.xp
        if keep.size:
            self.ensure_capacity(int(keep.max()) + 1)
        idx = b.to_device(np.ascontiguousarray(keep, dtype=np.int64))
        cap = max(keep.size, 1024)
        out = xp.zeros((schema.N_MEASURES, cap))
        status = xp.zeros(cap, np.int8)
        T = np.zeros(cap)
        if keep.size:
            out[:, : keep.size] = self.out[:, idx]
            status[: keep.size] = self.status[idx]
            T[: keep.size] = self.T[keep]
        self.out, self.status, self.T, self.capacity = out, status, T, cap
        self.plans = []


__all__ = ["Pricer", "LevelPlan", "KERNEL_COLUMNS"]

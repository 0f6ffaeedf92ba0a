"""Instruments, underlyings and quotes of the live book: the static and market inputs of pricing.

Starts from a validated book and changes with ``instrument`` (new listings), ``index``, ``mark``
and ``rate`` events. Market events older than the last one applied for the same key (the
underlying for index and rate ticks, the instrument for marks) are ignored and counted by the
caller. Every per-instrument column the kernel reads is kept as a NumPy array, encoded exactly as
:func:`gpuskew.core.book.flatten` encodes it, so that a position priced here gets the same inputs,
bit for bit, as the same position in ``gpuskew run`` on the monitor's snapshot book.

Missing market data is NaN here: an underlying without an index price, an option without an iv.
Positions on such instruments are *pending*: kept, but not priced, summed or written to a snapshot
book until the data arrives.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa

from gpuskew import schema
from gpuskew.core.book import NO_EXPIRY, Book
from gpuskew.kernels.instruments import CALL, PUT

KIND_OPTION = schema.KINDS.index("option")


def _grown(a: np.ndarray, n: int, fill: Any) -> np.ndarray:
    if n <= a.shape[0]:
        return a
    new = np.full(max(n, 2 * a.shape[0], 16), fill, dtype=a.dtype)
    new[: a.shape[0]] = a
    return new


def _floats(col: pa.ChunkedArray) -> np.ndarray:
    return col.to_numpy(zero_copy_only=False).astype(np.float64)  # nulls -> NaN


class Registry:
    """Per-instrument and per-underlying arrays (see the module docstring).

    Instruments are numbered in the order they became known (the book's order, then listings);
    underlyings likewise. ``version`` counters tell the publisher which tables changed.
    """

    def __init__(self, book: Book):
        inst, und, quo = book.instruments, book.underlyings, book.quotes
        self.inst_names: list[str] = []
        self.inst_index: dict[str, int] = {}
        self.inst_rows: list[dict] = []  #: declared instruments columns, as given (expiry as datetime)
        self.n_inst = 0
        self.kind = np.zeros(0, np.int8)
        self.settle = np.zeros(0, np.int8)
        self.cp = np.zeros(0, np.int8)
        self.strike = np.zeros(0)  #: 0 unless option (as flatten)
        self.csize = np.zeros(0)
        self.expiry = np.zeros(0, np.int64)  #: µs since epoch, NO_EXPIRY if none
        self.inst_und = np.zeros(0, np.int32)
        self.iv = np.zeros(0)  #: NaN = no iv
        self.fwd = np.zeros(0)  #: NaN = no forward / mark
        self.quoted = np.zeros(0, bool)  #: has a row in quotes
        self.und_names: list[str] = []
        self.und_index: dict[str, int] = {}
        self.spot = np.zeros(0)  #: NaN = no index price yet
        self.rate = np.zeros(0)
        self.vol = np.zeros(0)  #: NaN = none
        self.funding = np.zeros(0)  #: NaN = none
        self.last_ts: dict[tuple, int] = {}
        self.version = {"instruments": 0, "underlyings": 0, "quotes": 0}

        for name, spot, rate, vol, funding in zip(und["underlying"].to_pylist(), _floats(und["spot"]),
                                                  _floats(und["rate"]), _floats(und["vol"]),
                                                  _floats(und["funding_rate"])):
            u = self.underlying(name)
            self.spot[u], self.rate[u], self.vol[u], self.funding[u] = spot, rate, vol, funding
        expiry_us = inst["expiry"].cast(pa.int64()).to_pylist()
        for row, exp in zip(inst.select([c.name for c in schema.INSTRUMENT_COLUMNS]).to_pylist(), expiry_us):
            row["expiry_us"] = exp
            self.add_instrument(row)
        q_iv, q_fwd = _floats(quo["iv"]), _floats(quo["forward"])
        for name, iv, fwd in zip(quo["instrument"].to_pylist(), q_iv, q_fwd):
            i = self.inst_index[name]
            self.iv[i], self.fwd[i], self.quoted[i] = iv, fwd, True

    # -- building ------------------------------------------------------------------------------
    def underlying(self, name: str) -> int:
        """Index of an underlying, created (without market data) if new."""
        u = self.und_index.get(name)
        if u is None:
            u = len(self.und_names)
            self.und_names.append(name)
            self.und_index[name] = u
            n = u + 1
            self.spot = _grown(self.spot, n, np.nan)
            self.rate = _grown(self.rate, n, 0.0)
            self.vol = _grown(self.vol, n, np.nan)
            self.funding = _grown(self.funding, n, np.nan)
            self.version["underlyings"] += 1
        return u

    def add_instrument(self, row: dict) -> int:
        """Register an instruments row (declared columns; ``expiry_us`` µs or None); returns its index."""
        i = self.n_inst
        n = i + 1
        for name, fill in (("kind", 0), ("settle", 0), ("cp", 0), ("strike", 0.0), ("csize", 0.0),
                           ("expiry", NO_EXPIRY), ("inst_und", 0), ("iv", np.nan), ("fwd", np.nan),
                           ("quoted", False)):
            setattr(self, name, _grown(getattr(self, name), n, fill))
        is_opt = row["kind"] == "option"
        self.kind[i] = schema.KINDS.index(row["kind"])
        self.settle[i] = schema.SETTLEMENTS.index(row["settlement"])
        self.cp[i] = (CALL if row["option_type"] == "call" else PUT) if is_opt else 0
        self.strike[i] = float(row["strike"]) if is_opt else 0.0
        self.csize[i] = float(row["contract_size"])
        exp = row.get("expiry_us")
        self.expiry[i] = NO_EXPIRY if exp is None else int(exp)
        self.inst_und[i] = self.underlying(row["underlying"])
        self.inst_names.append(row["instrument"])
        self.inst_index[row["instrument"]] = i
        self.inst_rows.append({c.name: row.get(c.name) for c in schema.INSTRUMENT_COLUMNS})
        self.n_inst = n
        self.version["instruments"] += 1
        return i

    def same_instrument(self, i: int, row: dict) -> bool:
        """Does a listing describe instrument ``i`` as registered (same terms)?"""
        if row["kind"] != schema.KINDS[self.kind[i]] or row["settlement"] != schema.SETTLEMENTS[self.settle[i]]:
            return False
        if self.und_names[self.inst_und[i]] != row["underlying"]:
            return False
        if not math.isclose(float(row["contract_size"]), float(self.csize[i]), rel_tol=1e-12):
            return False
        exp = row.get("expiry_us")
        if (NO_EXPIRY if exp is None else int(exp)) != int(self.expiry[i]):
            return False
        if row["kind"] == "option":
            return (float(row["strike"]) == float(self.strike[i])
                    and (CALL if row["option_type"] == "call" else PUT) == int(self.cp[i]))
        return True

    # -- market events -----------------------------------------------------------------------------
    def fresh(self, key: tuple, ts_us: int) -> bool:
        """True (and remembered) unless an event for ``key`` newer than ``ts_us`` was applied."""
        last = self.last_ts.get(key)
        if last is not None and ts_us < last:
            return False
        self.last_ts[key] = ts_us
        return True

    def set_spot(self, u: int, spot: float) -> None:
        self.spot[u] = spot
        self.version["underlyings"] += 1

    def set_rates(self, u: int, rate: float | None, funding: float | None, vol: float | None) -> bool:
        """Apply a rate tick; returns True when the pricing input (``rate``) changed."""
        changed = rate is not None and rate != self.rate[u]
        if rate is not None:
            self.rate[u] = rate
        if funding is not None:
            self.funding[u] = funding
        if vol is not None:
            self.vol[u] = vol
        self.version["underlyings"] += 1
        return changed

    def set_mark(self, i: int, iv: float | None, forward: float | None) -> None:
        if iv is not None:
            self.iv[i] = iv
        if forward is not None:
            self.fwd[i] = forward
        self.quoted[i] = True
        self.version["quotes"] += 1

    # -- what the kernel and the snapshot need -------------------------------------------------------
    def priceable(self) -> np.ndarray:
        """Per instrument: its underlying has an index price and, for an option, an iv is known."""
        n = self.n_inst
        has_spot = np.isfinite(self.spot[self.inst_und[:n]])
        is_opt = self.kind[:n] == KIND_OPTION
        return has_spot & (~is_opt | np.isfinite(self.iv[:n]))

    def kernel_inputs(self, inst: np.ndarray) -> dict[str, np.ndarray]:
        """Per-position instrument and market columns for positions on instruments ``inst``
        (everything the kernel reads except ``qty``, ``entry`` and ``T``), encoded as flatten does."""
        u = self.inst_und[inst]
        is_opt = self.kind[inst] == KIND_OPTION
        fwd = self.fwd[inst]
        iv = self.iv[inst]
        return {
            "kind": self.kind[inst], "settle": self.settle[inst], "cp": self.cp[inst],
            "csize": self.csize[inst], "strike": self.strike[inst], "expiry_us": self.expiry[inst],
            "S": self.spot[u], "fwd": np.where(np.isnan(fwd), 0.0, fwd), "r": self.rate[u],
            "vol": np.where(is_opt, np.where(np.isnan(iv), 0.0, iv), 0.0),
        }

    def instruments_table(self) -> pa.Table:
        """Every known instrument, as an instruments table (declared columns)."""
        cols = {c.name: [r[c.name] for r in self.inst_rows] for c in schema.INSTRUMENT_COLUMNS}
        return pa.table({c.name: pa.array(cols[c.name], c.type) for c in schema.INSTRUMENT_COLUMNS})

    def underlyings_table(self, only_priced: bool = True) -> pa.Table:
        """Underlyings with an index price (all of them with ``only_priced=False``: spot may be null)."""
        n = len(self.und_names)
        keep = np.isfinite(self.spot[:n]) if only_priced else np.ones(n, bool)
        idx = np.flatnonzero(keep)

        def col(a: np.ndarray) -> pa.Array:
            v = a[idx]
            return pa.array(v, pa.float64(), mask=np.isnan(v))

        return pa.table({"underlying": pa.array([self.und_names[i] for i in idx], pa.string()),
                         "spot": col(self.spot), "rate": pa.array(self.rate[idx], pa.float64()),
                         "vol": col(self.vol), "funding_rate": col(self.funding)})

    def quotes_table(self) -> pa.Table:
        """Instruments with a quote: instrument, iv, forward (null where none)."""
        idx = np.flatnonzero(self.quoted[: self.n_inst])
        iv, fwd = self.iv[idx], self.fwd[idx]
        return pa.table({"instrument": pa.array([self.inst_names[i] for i in idx], pa.string()),
                         "iv": pa.array(iv, pa.float64(), mask=np.isnan(iv)),
                         "forward": pa.array(fwd, pa.float64(), mask=np.isnan(fwd))})

    def info(self, name: str) -> dict | None:
        """``kind``, ``settlement``, ``contract_size`` of a known instrument (for the Deribit mapper)."""
        i = self.inst_index.get(name)
        if i is None:
            return None
        return {"kind": schema.KINDS[self.kind[i]], "settlement": schema.SETTLEMENTS[self.settle[i]],
                "contract_size": float(self.csize[i])}


__all__ = ["Registry"]

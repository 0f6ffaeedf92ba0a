"""A greeks path read from a history folder: the groups' greeks as ``gpuskew run --history`` stored
them, for ``gpuskew calibrate --history``.

The runs' times are put on a regular grid (the median interval between runs, from the first run to
the last); each grid time holds the last run at or before it. Groups are the exposures rows present
in every run (others are left out, with a warning); the index price of each underlying is the
exposures' ``spot``. The history holds no implied vols or funding: the ATM vol path is the
underlying's close-to-close realised vol over the period (constant) and funding is 0. The book's
wealth is its ``value_usd``: trades between runs move it too (new premium), so its P&L mixes
market moves and flow.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from gpuskew.backtest.calibrate import realised_vol
from gpuskew.backtest.greeks_path import GreeksPath
from gpuskew.core.groups import GroupIndex
from gpuskew.errors import InvalidInput
from gpuskew.schema import EXPOSURES
from gpuskew.synthetic.markets import MarketPaths
from gpuskew.timeutil import from_micros


def greeks_from_history(history_dir: str | Path, start: datetime | None = None,
                        end: datetime | None = None) -> tuple[GreeksPath, list[str]]:
    """(greeks path, warnings) of the exposures of the runs in ``history_dir`` between start and
    end (UTC, inclusive)."""
    from gpuskew.history import read_history

    table = read_history(history_dir, "exposures", start, end)
    if table.num_rows == 0:
        raise InvalidInput(str(history_dir), None, "no exposures in the history folder for that period; append "
                                                   "runs with `gpuskew run ... --history DIR`")
    as_of = table["as_of"].cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy()
    times = np.unique(as_of)
    if times.size < 3:
        raise InvalidInput(str(history_dir), "as_of", f"{times.size} run(s) in the period: calibration needs "
                                                      "at least 3")
    index = GroupIndex(table, EXPOSURES)
    ids = index.ids
    order = sorted(set(ids), key=lambda gid: (gid[1] or "", gid[0] != "underlying", gid[0] or "", gid[2]))
    run_of = np.searchsorted(times, as_of)
    seen: dict[tuple, set] = {}
    for gid, r in zip(ids, run_of):
        seen.setdefault(gid, set()).add(int(r))
    keep = [gid for gid in order if len(seen[gid]) == times.size]
    warnings = [f"group {gid[0]}/{gid[1]} {dict(gid[2])} is not in every run: left out"
                for gid in order if len(seen[gid]) != times.size]
    if not keep:
        raise InvalidInput(str(history_dir), None, "no group is present in every run of the period")
    step_us = float(np.median(np.diff(times)))
    if not step_us > 0:  # before step_us is divided by (unique times: a guard)
        raise InvalidInput(str(history_dir), "as_of", "runs must have distinct times")
    n_steps = max(1, int(round((times[-1] - times[0]) / step_us)))
    grid = times[0] + np.round(np.arange(n_steps + 1) * step_us).astype(np.int64)
    held = np.searchsorted(times, grid, side="right") - 1
    pos = {gid: g for g, gid in enumerate(keep)}
    names = sorted({gid[1] for gid in keep})
    n_g = len(keep)
    per_run = {name: np.full((n_g, times.size), np.nan) for name in
               ("value_usd", "delta", "delta_pa", "gamma", "vanna", "vega_usd", "theta_usd")}
    spot_run = np.full((len(names), times.size), np.nan)
    cols = {name: table[name].to_numpy(zero_copy_only=False).astype(np.float64) for name in per_run}
    spot = table["spot"].to_numpy(zero_copy_only=False).astype(np.float64)
    for i, gid in enumerate(ids):
        g = pos.get(gid)
        r = run_of[i]
        spot_run[names.index(gid[1]), r] = spot[i]
        if g is not None:
            for name in per_run:
                per_run[name][g, r] = cols[name][i]
    for name, a in per_run.items():
        if not np.isfinite(a).all():
            raise InvalidInput(str(history_dir), name, "not finite in the history's exposures")
    if not np.isfinite(spot_run).all() or (spot_run <= 0).any():
        raise InvalidInput(str(history_dir), "spot", "an underlying's spot is missing or not > 0 in a run")
    rows = [{"level": gid[0], "underlying": gid[1], **dict(gid[2])} for gid in keep]
    tags = [t for t in index.tags if any(t in r for r in rows)]
    rows = [{"level": r["level"], "underlying": r["underlying"], **{t: r.get(t) for t in tags}} for r in rows]
    group_table = pa.table({"level": pa.array([r["level"] for r in rows], pa.string()),
                            "underlying": pa.array([r["underlying"] for r in rows], pa.string()),
                            **{t: pa.array([r[t] for r in rows], pa.string()) for t in tags}})
    S = spot_run[:, held][None, :, :]
    # close-to-close realised vol of each underlying (calibrate.realised_vol); 0 with one return
    realised = np.array([realised_vol(S[0, u], step_us / 1e6)["close_to_close"] if n_steps > 1 else 0.0
                         for u in range(len(names))])
    vol = np.broadcast_to(realised[None, :, None], S.shape).copy()
    market = MarketPaths(from_micros(int(times[0])), step_us / 1e6, names, S, vol,
                         np.zeros_like(S), np.zeros(len(names)), source=f"history:{history_dir}",
                         models={n: "history" for n in names})
    arr = {name: a[:, held][None, :, :] for name, a in per_run.items()}
    und = np.array([names.index(r["underlying"]) for r in rows], dtype=np.int64)
    gp = GreeksPath(market, rows, group_table, tags, und, arr["value_usd"], arr["delta"], arr["delta_pa"],
                    arr["gamma"], arr["vanna"], arr["vega_usd"], arr["theta_usd"], 1,
                    {"source": "history", "runs": int(times.size), "full_every": 1},
                    {"used": "history", "device": "none", "reason": "greeks read from the history"}, {}, 0,
                    int(times.size))
    return gp, warnings


__all__ = ["greeks_from_history"]

"""The demo's intraday simulation: seeded, the market moves, flow moves inventory, hedges fill."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from gpuskew.synthetic.demo import DEMO_AS_OF, make_demo_book
from gpuskew.synthetic.simulate import DemoSimulation


def _path(seed: int, steps: int = 4):
    sim = DemoSimulation(make_demo_book(n_positions=2000, seed=3), start=DEMO_AS_OF, seed=seed)
    return [(t, {k: v for k, v in tables.items()}) for t, tables in sim.steps(steps)]


def test_same_seed_same_path_and_clock_steps():
    a, b = _path(5), _path(5)
    assert [t for t, _ in a] == [t for t, _ in b]
    assert (a[1][0] - a[0][0]).total_seconds() == 15 * 60
    for (_, x), (_, y) in zip(a, b):
        assert all(x[k].equals(y[k]) for k in x)
    c = _path(6)
    assert not c[-1][1]["underlyings"].equals(a[-1][1]["underlyings"])


def test_market_moves_and_flow_changes_option_quantities_only():
    path = _path(1)
    first, last = path[0][1], path[-1][1]
    s0 = first["underlyings"]["spot"].to_numpy()
    s1 = last["underlyings"]["spot"].to_numpy()
    assert not np.array_equal(s0, s1) and (s1 > 0).all()
    q0, q1 = first["positions"]["quantity"].to_numpy(), last["positions"]["quantity"].to_numpy()
    changed = np.flatnonzero(q0 != q1)
    assert changed.size > 0
    kinds = dict(zip(first["instruments"]["instrument"].to_pylist(), first["instruments"]["kind"].to_pylist()))
    assert {kinds[first["positions"]["instrument"][int(i)].as_py()] for i in changed} == {"option"}


def test_hedges_fill_at_the_coarsest_level_as_new_positions():
    tables = make_demo_book(n_positions=2000, seed=3)
    sim = DemoSimulation(tables, start=DEMO_AS_OF, seed=2, hedge_fill_probability=1.0)
    hedges = pa.table({"level": ["desk", "desk,book"], "underlying": ["BTC", "BTC"],
                       "desk": ["options-mm", "options-mm"], "book": [None, "btc-vol"],
                       "hedge_instrument": ["BTC-PERPETUAL", "BTC-PERPETUAL"], "contracts": [100.0, 100.0]})
    before = sim.tables["positions"].num_rows
    assert sim.execute_hedges(hedges) == 1  # the desk-level proposal only
    new = sim.tables["positions"].slice(before).to_pylist()
    assert len(new) == 1 and new[0]["instrument"] == "BTC-PERPETUAL" and new[0]["quantity"] == 100.0
    assert new[0]["desk"] == "options-mm" and new[0]["entry_price"] > 0

"""The demo's intraday loop: one Session, seeded market moves, flow and hedge fills as updates."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from gpuskew.core.book import load_book
from gpuskew.policy.limits import load_example_limits
from gpuskew.session import MemoryAlertState, Session
from gpuskew.synthetic.demo import DEMO_AS_OF, make_demo_book
from gpuskew.synthetic.simulate import DemoSimulation


def _loop(seed: int, steps: int = 4, **kw):
    session = Session(load_book(make_demo_book(n_positions=2000, seed=3)), load_example_limits(), "cpu",
                      MemoryAlertState())
    sim = DemoSimulation(start=DEMO_AS_OF, seed=seed, **kw)
    out = [session.step(DEMO_AS_OF, positions_table=False)]
    books = [session.book]
    for _ in range(steps - 1):
        sim.propose(out[-1].hedges)
        when, market, fills = sim.advance(session.book)
        out.append(session.step(when, market=market, fills=fills, positions_table=False))
        books.append(session.book)
    return out, books, sim


def test_same_seed_same_path_and_clock_steps():
    a, ba, _ = _loop(5)
    b, bb, _ = _loop(5)
    assert [s.as_of for s in a] == [s.as_of for s in b] == ["2026-11-20T08:00:00Z", "2026-11-20T08:15:00Z",
                                                           "2026-11-20T08:30:00Z", "2026-11-20T08:45:00Z"]
    for x, y in zip(a, b):
        assert x.exposures.equals(y.exposures)
    c, bc, _ = _loop(6)
    assert not bc[-1].underlyings.equals(ba[-1].underlyings)


def test_market_moves_and_client_flow_trades_options():
    steps, books, _ = _loop(1, hedge_fill_probability=0.0)
    s0 = books[0].underlyings["spot"].to_numpy()
    s1 = books[-1].underlyings["spot"].to_numpy()
    assert not np.array_equal(s0, s1) and (s1 > 0).all()
    kinds = dict(zip(books[0].instruments["instrument"].to_pylist(), books[0].instruments["kind"].to_pylist()))
    before = {(r["instrument"], r["desk"], r["book"], r["account"]): r["quantity"] for r in books[0].positions.to_pylist()}
    after = {(r["instrument"], r["desk"], r["book"], r["account"]): r["quantity"] for r in books[-1].positions.to_pylist()}
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert changed and {kinds[k[0]] for k in changed} == {"option"}
    # the same resident book: instruments are the very same table, never re-read
    assert books[-1].instruments is books[0].instruments


def test_proposed_hedges_fill_at_the_coarsest_level():
    steps, books, sim = _loop(2, steps=2, hedge_fill_probability=1.0)
    proposed = steps[0].hedges
    coarsest = min((lv for lv in set(proposed["level"].to_pylist()) if lv != "underlying"),
                   key=lambda lv: (lv.count(","), lv))
    expected = proposed.filter(pa.compute.equal(proposed["level"], coarsest))
    assert sim.executions is not None and sim.executions.num_rows == expected.num_rows
    assert set(sim.executions["level"].to_pylist()) == {coarsest}
    # each hedge landed: the group's delta moved by its coin delta (up to the market move)
    assert sim.executions["hedge_instrument"].to_pylist() == expected["hedge_instrument"].to_pylist()

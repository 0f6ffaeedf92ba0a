"""The live state: position keeping, market data, dirty-only re-pricing, and the central claim: every
publish equals ``gpuskew run`` (a Session step) on the same positions and market data, bit for bit."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pyarrow as pa
import pytest

from gpuskew.core.book import load_book
from gpuskew.monitor import snapshot
from gpuskew.monitor.events import parse_event, us_to_iso
from gpuskew.monitor.sample import sample_day
from gpuskew.monitor.state import LiveState
from gpuskew.policy.limits import load_example_limits
from gpuskew.session import NoAlertState, Session
from gpuskew.synthetic.demo import DEMO_AS_OF, make_demo_book

AS_OF_US = int(DEMO_AS_OF.timestamp()) * 1_000_000


@pytest.fixture(scope="module")
def tables():
    return make_demo_book(n_positions=800, seed=11)


@pytest.fixture(scope="module")
def limits():
    return load_example_limits()


def new_state(tables, limits=None, **kw):
    kw.setdefault("backend", "cpu")
    kw.setdefault("as_of_us", AS_OF_US)
    return LiveState(load_book(tables), limits=limits, group_by=["desk", "desk,book"], **kw)


def run_equivalent(state, pub, limits):
    """What `gpuskew run` computes on the monitor's snapshot book at the publish's as_of."""
    book = load_book(state.book_tables())
    session = Session(book, limits, "cpu", NoAlertState(), ["desk", "desk,book"])
    return session.step(pub.as_of)


def assert_same_table(a: pa.Table, b: pa.Table, skip=()):
    assert a.column_names == b.column_names
    assert a.num_rows == b.num_rows
    for name in a.column_names:
        if name in skip:
            continue
        x, y = a[name].to_pylist(), b[name].to_pylist()
        bad = [i for i, (p, q) in enumerate(zip(x, y)) if not (p == q or (p != p and q != q))]
        assert not bad, f"column {name}: rows {bad[:5]} differ: {[(x[i], y[i]) for i in bad[:3]]}"


def test_every_publish_equals_the_run_on_the_same_state_bitwise(tables, limits):
    state = new_state(tables, limits)
    events = sample_day(tables, DEMO_AS_OF, n_events=1200, seed=5)
    checked = 0
    for k, ev in enumerate(events):
        state.apply(parse_event(ev))
        if k % 300 == 299 or k == len(events) - 1:
            pub = state.publish()
            step = run_equivalent(state, pub, limits)
            assert_same_table(pub.exposures, step.exposures)
            assert pub.exposures.equals(step.exposures, check_metadata=True)
            out, status = state.pricer.host_out(state.pricer.rows)
            measures = np.array([step.positions[m].to_numpy() for m in
                                 ("value_usd", "value_coin", "delta", "delta_usd", "delta_pa", "gamma",
                                  "gamma_1pct", "vega_usd", "theta_usd", "rho_usd", "vanna", "volga")])
            assert np.array_equal(out.view(np.int64), measures.view(np.int64))  # bits, not values
            # adherence: every column; effective statuses too (no alert state on either side)
            assert_same_table(pub.effective, step.effective, skip=("effective_status",))
            checked += 1
    assert checked >= 4
    assert state.counts["fill"] > 300 and state.counts["instrument"] == 1
    assert state.rejected["duplicate_trade_id"] > 0 and state.rejected["stale"] > 0


def test_only_dirty_positions_are_repriced(tables):
    state = new_state(tables)
    first = state.publish()
    assert first.repriced == first.positions  # everything once
    reg = state.registry
    held_options = [reg.inst_names[i] for i in np.unique(state.positions.inst[state.pricer.rows])
                    if reg.kind[i] == 3]
    name = held_options[0]
    n_on_it = int(np.sum(np.array([state.positions.ledger.instrument[r] for r in state.pricer.rows]) == name))
    state.apply(parse_event({"type": "mark", "ts": us_to_iso(AS_OF_US + 1_000_000), "instrument": name, "iv": 0.77}))
    pub = state.publish()
    assert pub.repriced == n_on_it < first.positions
    step = run_equivalent(state, pub, None)
    assert pub.exposures.equals(step.exposures)
    # nothing new: nothing re-priced, same sums
    again = state.publish()
    assert again.repriced == 0 and again.exposures.equals(pub.exposures)


def test_positions_are_the_sum_of_distinct_fills(tables):
    state = new_state(tables)
    before = {(r["instrument"], r["desk"], r["book"], r["account"]): r["quantity"]
              for r in state.positions.table().to_pylist()}
    fills = [("BTC-PERPETUAL", 100.0, "T1"), ("BTC-PERPETUAL", -40.0, "T2"), ("BTC-PERPETUAL", 100.0, "T1"),
             ("ETH-PERPETUAL", 7.0, "T3"), ("ETH-PERPETUAL", -7.0, "T4")]
    for k, (inst, qty, tid) in enumerate(fills):
        reason = state.apply(parse_event({"type": "fill", "ts": us_to_iso(AS_OF_US + k), "trade_id": tid,
                                          "instrument": inst, "quantity": qty, "price": 1000.0,
                                          "tags": {"desk": "new-desk", "book": "b1"}}))
        assert reason == ("duplicate_trade_id" if k == 2 else None)
    after = {(r["instrument"], r["desk"], r["book"], r["account"]): r["quantity"]
             for r in state.positions.table().to_pylist()}
    assert after[("BTC-PERPETUAL", "new-desk", "b1", None)] == 60.0
    assert ("ETH-PERPETUAL", "new-desk", "b1", None) not in after  # closed: removed
    assert {k: v for k, v in after.items() if k[1] != "new-desk"} == before
    assert state.rejected["duplicate_trade_id"] == 1


def test_stale_ticks_are_ignored_and_counted(tables):
    state = new_state(tables)
    t = AS_OF_US + 10_000_000
    assert state.apply(parse_event({"type": "index", "ts": us_to_iso(t), "underlying": "BTC", "spot": 99000})) is None
    assert state.apply(parse_event({"type": "index", "ts": us_to_iso(t - 1), "underlying": "BTC",
                                    "spot": 1.0})) == "stale"
    assert state.apply(parse_event({"type": "index", "ts": us_to_iso(t), "underlying": "BTC",
                                    "spot": 99000})) is None  # same time again: harmless
    assert state.registry.spot[state.registry.und_index["BTC"]] == 99000
    assert state.rejected["stale"] == 1


def test_unknown_instruments_and_tags_are_rejected(tables):
    state = new_state(tables)
    base = {"type": "fill", "ts": us_to_iso(AS_OF_US), "quantity": 1, "price": 10}
    assert state.apply(parse_event(dict(base, trade_id="a", instrument="NOPE"))) == "unknown_instrument"
    assert state.apply(parse_event(dict(base, trade_id="b", instrument="BTC-PERPETUAL",
                                        tags={"dsk": "x"}))) == "unknown_tag"
    assert state.apply(parse_event({"type": "mark", "ts": us_to_iso(AS_OF_US), "instrument": "NOPE",
                                    "iv": 0.5})) == "unknown_instrument"
    # a rejected fill's trade_id is not spent: the corrected fill goes through
    assert state.apply(parse_event(dict(base, trade_id="a", instrument="BTC-PERPETUAL"))) is None


def test_a_listing_without_market_data_holds_positions_pending_until_a_mark(tables):
    state = new_state(tables)
    state.publish()
    ts = us_to_iso(AS_OF_US + 1000)
    listing = {"type": "instrument", "ts": ts, "instrument": "BTC-NEW-C", "underlying": "BTC", "kind": "option",
               "settlement": "inverse", "option_type": "call", "strike": 120000.0,
               "expiry": us_to_iso(AS_OF_US + 30 * 86400 * 10**6), "contract_size": 1.0}
    assert state.apply(parse_event(listing)) is None
    assert state.apply(parse_event(dict(listing, strike=1.0))) == "duplicate_instrument"
    assert state.apply(parse_event(listing)) is None  # the same listing again: fine
    assert state.apply(parse_event({"type": "fill", "ts": ts, "trade_id": "n1", "instrument": "BTC-NEW-C",
                                    "quantity": 5, "price": 3000, "tags": {"desk": "options-mm"}})) is None
    pub = state.publish()
    assert pub.pending == 1
    assert "BTC-NEW-C" not in state.book_tables()["positions"]["instrument"].to_pylist()
    state.apply(parse_event({"type": "mark", "ts": ts, "instrument": "BTC-NEW-C", "iv": 0.55}))
    pub = state.publish()
    assert pub.pending == 0
    assert "BTC-NEW-C" in state.book_tables()["positions"]["instrument"].to_pylist()
    assert pub.exposures.equals(run_equivalent(state, pub, None).exposures)


def test_time_steps_reprice_dated_positions_and_drop_expired_ones(tables):
    state = new_state(tables, time_step_s=60)
    state.publish()
    reg = state.registry
    n = reg.n_inst
    rows = state.pricer.rows
    held_inst = np.unique(state.positions.inst[rows])
    expiries = sorted({int(reg.expiry[i]) for i in held_inst if reg.expiry[i] > AS_OF_US
                       and reg.expiry[i] != np.iinfo(np.int64).min})
    first = expiries[0]
    expiring = [reg.inst_names[i] for i in held_inst if reg.expiry[i] == first]
    # an event 30 s later: no step (T unchanged)
    state.apply(parse_event({"type": "rate", "ts": us_to_iso(AS_OF_US + 30_000_000), "underlying": "BTC",
                             "vol": 0.51}))
    assert state.as_of_us == AS_OF_US
    # an event after the first expiry: a step, the expiring positions drop out
    state.apply(parse_event({"type": "rate", "ts": us_to_iso(first + 1), "underlying": "BTC", "vol": 0.52}))
    assert state.as_of_us == first + 1
    pub = state.publish()
    held = set(state.book_tables()["positions"]["instrument"].to_pylist())
    assert not held & set(expiring)
    assert pub.exposures.equals(run_equivalent(state, pub, None).exposures)
    assert state.apply(parse_event({"type": "fill", "ts": us_to_iso(first + 2), "trade_id": "late",
                                    "instrument": expiring[0], "quantity": 1, "price": 1})) == "expired_instrument"
    assert reg.n_inst == n


def test_restart_from_a_snapshot_continues_bit_for_bit(tables, limits, tmp_path):
    events = [parse_event(e) for e in sample_day(tables, DEMO_AS_OF, n_events=900, seed=8)]
    straight = new_state(tables, limits)
    for ev in events:
        straight.apply(ev)
    want = straight.publish()

    first = new_state(tables, limits)
    for ev in events[:500]:
        first.apply(ev)
    first.publish()
    path = snapshot.save(first, tmp_path, seq=500, cursors={"file:x": 500})
    again, meta = snapshot.load(path, limits=limits, group_by=["desk", "desk,book"], backend="cpu")
    assert meta["seq"] == 500 and meta["cursors"] == {"file:x": 500}
    assert again.seen_trades == first.seen_trades
    for ev in events[500:]:
        again.apply(ev)
    got = again.publish()
    assert got.as_of_us == want.as_of_us
    assert got.exposures.equals(want.exposures)
    assert again.book_tables()["positions"].equals(straight.book_tables()["positions"])
    assert_same_table(got.effective, want.effective, skip=("effective_status",))
    assert dict(again.counts) == dict(straight.counts) and dict(again.rejected) == dict(straight.rejected)


def test_compaction_keeps_sums_and_order(tables):
    state = new_state(tables)
    for k in range(30):  # open then close 30 new positions: 30 dead rows
        for sign, tid in ((1, f"o{k}"), (-1, f"c{k}")):
            state.apply(parse_event({"type": "fill", "ts": us_to_iso(AS_OF_US + k), "trade_id": tid,
                                     "instrument": "BTC-PERPETUAL", "quantity": sign * 10.0, "price": 97000.0,
                                     "tags": {"desk": f"tmp{k}"}}))
    before = state.publish()
    n_rows = state.positions.n_rows
    state.compact()
    assert state.positions.n_rows == n_rows - 30
    after = state.publish()
    assert after.exposures.equals(before.exposures)
    assert after.repriced == 0


def test_a_publish_renders_its_rows_once_and_the_alert_state_keeps_the_previous_statuses(tables, limits, tmp_path,
                                                                                         monkeypatch):
    from gpuskew.monitor import alertstate
    from gpuskew.monitor.metrics import MonitorMetrics
    from gpuskew.monitor.view import AlertFeed, state_view

    calls = []
    real = alertstate._statuses
    monkeypatch.setattr(alertstate, "_statuses", lambda t: calls.append(t) or real(t))
    alerts = alertstate.PersistentAlertState(tmp_path / "effective.parquet")
    state = new_state(tables, limits, alert_state=alerts)
    pub = state.publish()
    again = state.publish()
    assert len(calls) == 3  # the initial None, then each new table once: never the previous one again
    assert again.rows("effective") is again.rows("effective")
    assert again.rows("effective") == again.effective.to_pylist()
    effective_rows = pub.rows("effective")
    MonitorMetrics(100).groups.update(pub.effective, effective_rows)
    view = state_view(pub, feeds=[], alerts=AlertFeed(), counts={}, rejected={}, clock="event")
    # metrics and /api/state share the rows the publication rendered once
    assert set(pub._rows) == {"effective", "exposures", "hedges"} and pub.rows("effective") is effective_rows
    assert view["groups"] == len(effective_rows) and len(view["exposures"]) == pub.exposures.num_rows


def test_dirty_only_publishes_equal_full_repricing_bitwise(tables):
    """Structure-only data (priced rows, rows per instrument, counts per level, expired counts) is
    cached between publishes: every publish still equals one that re-prices and recounts everything."""
    lean, full = new_state(tables), new_state(tables)
    events = sample_day(tables, DEMO_AS_OF, n_events=900, seed=8)
    repriced = []
    for k, ev in enumerate(events):
        lean.apply(parse_event(ev))
        full.apply(parse_event(ev))
        if k % 45 == 44:
            a = lean.publish()
            full.mark_all_dirty()
            full._rows_token += 1  # drop its cached counts too
            b = full.publish()
            assert a.exposures.equals(b.exposures), k
            out_a, st_a = lean.pricer.host_out(lean.pricer.rows)
            out_b, st_b = full.pricer.host_out(full.pricer.rows)
            assert np.array_equal(out_a.view(np.int64), out_b.view(np.int64)) and np.array_equal(st_a, st_b)
            repriced.append(a.repriced)
            if k % 225 == 224:
                lean.compact()
                full.compact()
    assert min(repriced) < max(repriced)  # some publishes re-priced a few positions only


def test_compaction_gathers_on_the_backend_without_a_host_round_trip(tables, monkeypatch):
    state = new_state(tables)
    state.publish()
    row = int(state.pricer.rows[3])
    inst = state.registry.inst_names[state.positions.inst[row]]
    qty = float(state.positions.ledger.quantity[row])
    tags = dict(zip(state.tags, state.positions.tag_values(row)))
    assert state.apply(parse_event({"type": "fill", "ts": us_to_iso(AS_OF_US + 1), "trade_id": "close-1",
                                    "instrument": inst, "quantity": -qty, "price": 100.0,
                                    "tags": {k: v for k, v in tags.items() if v is not None}})) is None
    before = state.publish()
    copies = []
    monkeypatch.setattr(state.backend, "to_host", lambda a: copies.append(a) or a)
    state.compact()
    assert copies == []
    monkeypatch.undo()
    after = state.publish()
    assert after.exposures.equals(before.exposures)


def test_trade_ids_are_remembered_within_a_bounded_window_that_survives_a_snapshot(tables, tmp_path):
    from gpuskew.monitor.state import RecentTradeIds

    state = new_state(tables)
    state.seen_trades = RecentTradeIds(limit=3)

    def fill(tid, k):
        return state.apply(parse_event({"type": "fill", "ts": us_to_iso(AS_OF_US + k), "trade_id": tid,
                                        "instrument": "BTC-PERPETUAL", "quantity": 1.0, "price": 1000.0}))

    for k, tid in enumerate(["t1", "t2", "t3", "t4"]):
        assert fill(tid, k) is None
    assert list(state.seen_trades) == ["t2", "t3", "t4"]  # oldest forgotten first
    assert fill("t3", 10) == "duplicate_trade_id"
    path = snapshot.save(state, tmp_path, seq=4, cursors={})
    again, _ = snapshot.load(path, backend="cpu", group_by=["desk", "desk,book"])
    again.seen_trades.limit = 3
    assert again.seen_trades == state.seen_trades
    assert fill("t5", 11) is None
    again.apply(parse_event({"type": "fill", "ts": us_to_iso(AS_OF_US + 11), "trade_id": "t5",
                             "instrument": "BTC-PERPETUAL", "quantity": 1.0, "price": 1000.0}))
    assert list(again.seen_trades) == list(state.seen_trades) == ["t3", "t4", "t5"]

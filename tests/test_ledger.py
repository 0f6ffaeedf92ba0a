"""Position keeping (DESIGN section 4): average cost, harmonic for inverse, reduce, flip, close, order."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuskew.core.ledger import ADDED, CLOSED, FLIPPED, OPENED, REDUCED, PositionLedger, averaged_entry


def _book():
    return pa.table({"instrument": ["BTC-PERPETUAL", "BTC-27DEC26-100000-C", "BTC-PERPETUAL"],
                     "quantity": [100.0, -2.0, 5.0], "entry_price": [90_000.0, None, 95_000.0],
                     "desk": ["a", "a", "b"]})


def test_linear_average_is_arithmetic_and_inverse_harmonic():
    # linear: 2 @ 100 then 1 @ 130 -> (200 + 130) / 3 = 110
    assert averaged_entry(2.0, 100.0, 1.0, 130.0, inverse=False) == pytest.approx(110.0, rel=1e-15)
    # inverse (USD notional N): the coin P&L is linear in 1/price: 10 @ 100, 10 @ 200 -> 20 / (0.1 + 0.05)
    assert averaged_entry(10.0, 100.0, 10.0, 200.0, inverse=True) == pytest.approx(20 / 0.15, rel=1e-15)


def test_fill_actions_and_entries():
    ledger = PositionLedger.from_table(_book(), ["desk"])
    assert ledger.apply("BTC-PERPETUAL", 100.0, 110_000.0, {"desk": "a"}, inverse=True).action == ADDED
    assert ledger.entry[0] == pytest.approx(200 / (100 / 90_000 + 100 / 110_000), rel=1e-15)
    entry = ledger.entry[0]
    out = ledger.apply("BTC-PERPETUAL", -50.0, 120_000.0, {"desk": "a"}, inverse=True)
    assert (out.action, out.quantity, out.entry_price) == (REDUCED, 150.0, entry)  # a reduction keeps the entry
    out = ledger.apply("BTC-PERPETUAL", -200.0, 80_000.0, {"desk": "a"}, inverse=True)
    assert (out.action, out.quantity, out.entry_price) == (FLIPPED, -50.0, 80_000.0)  # the rest at the fill price
    out = ledger.apply("BTC-PERPETUAL", 50.0, 81_000.0, {"desk": "a"}, inverse=True)
    assert out.action == CLOSED and ledger.row_of("BTC-PERPETUAL", {"desk": "a"}) is None
    out = ledger.apply("ETH-PERPETUAL", 3.0, 3_000.0, {"desk": "c"})
    assert out.action == OPENED and out.entry_price == 3_000.0


def test_table_order_and_removal():
    ledger = PositionLedger.from_table(_book(), ["desk"])
    ledger.apply("ETH-PERPETUAL", 3.0, 3_000.0, {"desk": "c"})
    ledger.apply("BTC-PERPETUAL", -100.0, 1.0, {"desk": "a"})   # closes row 0
    table = ledger.to_table()
    assert table.column("instrument").to_pylist() == ["BTC-27DEC26-100000-C", "BTC-PERPETUAL", "ETH-PERPETUAL"]
    assert table.column("desk").to_pylist() == ["a", "b", "c"]
    assert table.column("entry_price").to_pylist() == [None, 95_000.0, 3_000.0]
    # a closed key that trades again comes back at the end
    ledger.apply("BTC-PERPETUAL", 1.0, 100_000.0, {"desk": "a"})
    assert ledger.to_table().column("instrument").to_pylist()[-1] == "BTC-PERPETUAL"
    old = ledger.compact()
    assert old.tolist() == [1, 2, 3, 4] and len(ledger) == ledger.n_rows == 4


def test_expiry_removes_positions():
    ledger = PositionLedger.from_table(_book(), ["desk"])
    assert ledger.expire(["BTC-27DEC26-100000-C"]) == 1
    assert ledger.to_table().num_rows == 2


@pytest.mark.parametrize("bad", [(0.0, 1.0), (math.nan, 1.0), (1.0, 0.0), (1.0, math.inf), (1.0, -2.0)])
def test_bad_fills_are_refused(bad):
    with pytest.raises(ValueError):
        PositionLedger(["desk"]).apply("X", bad[0], bad[1], {"desk": "a"})


@settings(max_examples=80)
@given(st.lists(st.tuples(st.integers(-5, 5).filter(bool), st.floats(50.0, 150.0)), min_size=1, max_size=30),
       st.booleans())
def test_quantity_is_the_sum_of_fills_and_entry_stays_within_fill_prices(fills, inverse):
    ledger = PositionLedger(["desk"])
    for dq, price in fills:
        ledger.apply("X", float(dq), price, {"desk": "a"}, inverse=inverse)
    total = sum(dq for dq, _ in fills)
    row = ledger.row_of("X", {"desk": "a"})
    if total == 0:
        assert row is None
    else:
        assert ledger.quantity[row] == total
        prices = [p for _, p in fills]
        assert min(prices) * (1 - 1e-12) <= ledger.entry[row] <= max(prices) * (1 + 1e-12)


_DICT = pa.dictionary(pa.int32(), pa.string())


def _dup_book(dictionary: bool) -> pa.Table:
    """A book that is not netted: keys held by several rows, a null tag."""
    table = pa.table({"instrument": ["X", "Y", "X", "X", "Y", "Z"], "quantity": [1.0, 2.0, 3.0, -1.0, 5.0, 6.0],
                      "entry_price": [10.0, None, 12.0, 13.0, 14.0, 15.0],
                      "desk": ["a", "a", "a", "b", "a", None]})
    return table.set_column(3, "desk", table.column("desk").cast(_DICT)) if dictionary else table


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.tuples(st.sampled_from(["X", "Y", "Z"]), st.sampled_from(["a", "b", None]),
                                   st.sampled_from([-5.0, -3.0, -2.0, -1.0, 1.0, 2.0, 3.0])),
                         max_size=6), min_size=1, max_size=8),
       st.booleans(), st.booleans())
def test_a_kept_ledger_settled_per_batch_matches_a_ledger_rebuilt_per_batch(batches, dictionary, expire_z):
    # the Session keeps one ledger across steps (settle() between batches, no renumbering); the
    # reference rebuilds it from the previous batch's table (what compact() after each batch gave)
    kept = PositionLedger.from_table(_dup_book(dictionary), ["desk"])
    table = _dup_book(dictionary)
    for b, batch in enumerate(batches):
        ref = PositionLedger.from_table(table, ["desk"])
        for ledger in (kept, ref):
            for inst, desk, dq in batch:
                ledger.apply(inst, dq, 100.0 + dq, {"desk": desk})
            if expire_z and b == 1:
                ledger.expire(["Z"])
        kept.settle()
        if 2 * len(kept) < kept.n_rows:
            kept.compact()
        table = ref.to_table()
        got = kept.to_table()
        assert got.equals(table.cast(got.schema)) and got.to_pylist() == table.to_pylist()
        assert got.schema.field("desk").type == (_DICT if dictionary else pa.string())
        assert all(c.num_chunks == 1 for c in got.columns)


def test_to_table_keeps_the_tag_column_types():
    ledger = PositionLedger.from_table(_dup_book(True), ["desk"])
    ledger.apply("Y", 1.0, 10.0, {"desk": "new"})
    ledger.apply("X", -1.0, 10.0, {"desk": "a"})  # closes row 0
    table = ledger.to_table()
    assert table.schema.field("desk").type == _DICT and table.column("desk").num_chunks == 1
    assert table.column("desk").to_pylist() == ["a", "a", "b", "a", None, "new"]
    assert table.column("instrument").to_pylist() == ["Y", "X", "X", "Y", "Z", "Y"]

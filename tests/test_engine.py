"""Engine properties on whole books: permutation invariance, additivity across shards, linear scaling
in quantity, the Python API on pandas/polars tables, and the non-finite guard."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gpuskew
from gpuskew import schema
from gpuskew.synthetic.demo import DEMO_AS_OF, make_demo_book
from gpuskew.errors import InvalidInput

MEASURES = list(schema.MEASURE_NAMES)
KEYS = ["level", "underlying", "desk", "book"]


def _run(tables, group_by=("desk", "desk,book")):
    return gpuskew.compute(gpuskew.load_book(tables), as_of=DEMO_AS_OF, backend="cpu", group_by=list(group_by))


def _matrix(table: pa.Table) -> np.ndarray:
    return np.stack([table[c].to_numpy() for c in MEASURES])


def _assert_sums_close(a: pa.Table, b: pa.Table) -> None:
    assert a.select(KEYS).equals(b.select(KEYS))
    ma, mb = _matrix(a), _matrix(b)
    # sums of the same numbers in another order: relative 1e-12 of the sum of magnitudes
    np.testing.assert_allclose(ma, mb, rtol=1e-11, atol=1e-9)


@settings(max_examples=8, deadline=None, derandomize=True)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 3000))
def test_permutation_invariance(seed, n):
    tables = make_demo_book(n_positions=n, seed=seed % 50)
    base = _run(tables)
    perm = np.random.default_rng(seed).permutation(n)
    shuffled = dict(tables, positions=tables["positions"].take(pa.array(perm)))
    other = _run(shuffled)
    _assert_sums_close(base.exposures, other.exposures)
    # per-position values do not depend on the order: exact after undoing the permutation
    back = np.empty(n, dtype=np.int64)
    back[perm] = np.arange(n)
    np.testing.assert_array_equal(_matrix(other.positions.take(pa.array(back))), _matrix(base.positions))


@settings(max_examples=8, deadline=None, derandomize=True)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 3000), cut=st.floats(0.05, 0.95))
def test_group_sums_add_up_across_shards(seed, n, cut):
    tables = make_demo_book(n_positions=n, seed=seed % 50)
    k = max(1, min(n - 1, int(n * cut)))
    whole = _run(tables).exposures
    parts = [_run(dict(tables, positions=tables["positions"].slice(a, b))).exposures
             for a, b in ((0, k), (k, n - k))]
    # add shard rows by key
    total: dict[tuple, np.ndarray] = {}
    for part in parts:
        m = _matrix(part)
        for i, key in enumerate(zip(*(part[c].to_pylist() for c in KEYS))):
            total[key] = total.get(key, 0.0) + m[:, i]
    mw = _matrix(whole)
    keys = list(zip(*(whole[c].to_pylist() for c in KEYS)))
    assert set(keys) == set(total)
    for i, key in enumerate(keys):
        np.testing.assert_allclose(total[key], mw[:, i], rtol=1e-10, atol=1e-8)


def test_linear_scaling_in_quantity_is_exact_for_powers_of_two():
    tables = make_demo_book(n_positions=2000, seed=4)
    base = _run(tables)
    pos = tables["positions"]
    scaled = pos.set_column(pos.column_names.index("quantity"), "quantity", pc.multiply(pos["quantity"], 4.0))
    other = _run(dict(tables, positions=scaled))
    np.testing.assert_array_equal(_matrix(other.positions), 4.0 * _matrix(base.positions))
    np.testing.assert_array_equal(_matrix(other.exposures), 4.0 * _matrix(base.exposures))


def test_per_underlying_total_equals_sum_of_its_desks():
    res = _run(make_demo_book(n_positions=3000, seed=2))
    e = res.exposures
    under = e.filter(pc.equal(e["level"], "underlying"))
    desks = e.filter(pc.equal(e["level"], "desk"))
    for row in under.to_pylist():
        rows = desks.filter(pc.equal(desks["underlying"], row["underlying"]))
        assert sum(rows["n_positions"].to_pylist()) == row["n_positions"]
        assert abs(sum(rows["delta"].to_pylist()) - row["delta"]) <= 1e-9 * max(1.0, abs(row["delta"]))


def test_api_accepts_pandas_and_polars_and_gives_same_numbers():
    pd = pytest.importorskip("pandas")
    pl = pytest.importorskip("polars")
    tables = make_demo_book(n_positions=500, seed=8)
    base = _run(tables)
    as_pandas = {k: v.to_pandas() for k, v in tables.items()}
    as_polars = {k: pl.from_arrow(v) for k, v in tables.items()}
    for variant in (as_pandas, as_polars):
        other = _run(variant)
        np.testing.assert_array_equal(_matrix(other.exposures), _matrix(base.exposures))
    assert isinstance(pd, object)


def test_expired_positions_reported_not_priced():
    res = _run(make_demo_book(n_positions=20_000, seed=7), group_by=())
    status = res.positions["status"].to_numpy(zero_copy_only=False)
    expired = status == "expired"
    assert expired.any()
    assert (_matrix(res.positions)[:, expired] == 0).all()
    assert res.summary["counts"]["expired"] == int(expired.sum())
    assert any("expired" in w for w in res.summary["warnings"])


def test_non_finite_results_are_refused_with_the_rows():
    tables = make_demo_book(n_positions=100, seed=1)
    pos = tables["positions"]
    q = pos["quantity"].to_pylist()
    q[7] = 1e308
    bad = pos.set_column(pos.column_names.index("quantity"), "quantity", pa.array(q))
    with pytest.raises(InvalidInput) as err:
        _run(dict(tables, positions=bad))
    assert "row 8 (data rows counted from 1)" in str(err.value) and "non-finite" in str(err.value)


def test_auto_backend_records_why():
    res = gpuskew.compute(gpuskew.load_book(make_demo_book(n_positions=50)), as_of=DEMO_AS_OF)
    assert res.summary["backend"]["requested"] == "auto"
    assert res.summary["backend"]["used"] == "cpu" and res.summary["backend"]["reason"].startswith("auto")


def test_unknown_group_by_column():
    with pytest.raises(InvalidInput, match="tag"):
        _run(make_demo_book(n_positions=50), group_by=("nope",))


def test_with_market_reprices_a_resident_book_like_a_fresh_load():
    tables = make_demo_book(n_positions=3000, seed=5)
    book = gpuskew.load_book(tables)
    first = gpuskew.compute(book, as_of=DEMO_AS_OF, backend="cpu", group_by=["desk"])
    und = tables["underlyings"]
    moved = und.set_column(und.column_names.index("spot"), "spot", pc.multiply(und["spot"], 1.03))
    quotes = tables["quotes"]
    quotes = quotes.set_column(quotes.column_names.index("forward"), "forward",
                               pc.multiply(quotes["forward"], 1.03))
    updated = book.with_market(moved, quotes)
    assert updated._cache.get(("static", "cpu")) is book._cache[("static", "cpu")]  # not rebuilt
    fresh = gpuskew.load_book(dict(tables, underlyings=moved, quotes=quotes))
    a = gpuskew.compute(updated, as_of=DEMO_AS_OF, backend="cpu", group_by=["desk"])
    b = gpuskew.compute(fresh, as_of=DEMO_AS_OF, backend="cpu", group_by=["desk"])
    np.testing.assert_array_equal(_matrix(a.exposures), _matrix(b.exposures))
    assert not np.array_equal(_matrix(a.exposures), _matrix(first.exposures))
    bad = moved.set_column(moved.column_names.index("spot"), "spot", pc.multiply(moved["spot"], -1.0))
    with pytest.raises(InvalidInput, match="spot"):
        book.with_market(bad, quotes)


def test_with_market_checks_the_held_instruments_and_names_the_positions():
    from gpuskew.io.validate import validate_market

    tables = make_demo_book(n_positions=400, seed=3)
    book = gpuskew.load_book(tables)
    flat = book.flat()
    # the underlying code of each held instrument is kept (not scattered back from the positions)
    np.testing.assert_array_equal(flat.h_ucode[flat.pos_inst], flat.underlying_code)
    inst = book.instruments
    held = set(inst["instrument"].take(pa.array(flat.held_row)).to_pylist())
    options = [n for n, k in zip(inst["instrument"].to_pylist(), inst["kind"].to_pylist()) if k == "option"]
    quotes, und = book.quotes, book.underlyings
    quoted = quotes["instrument"].to_pylist()
    held_opt = next(n for n in options if n in held and n in quoted)
    free_opt = next(n for n in options if n not in held and n in quoted)

    def without_iv(name):
        iv = [None if q == name else v for q, v in zip(quoted, quotes["iv"].to_pylist())]
        return quotes.set_column(quotes.column_names.index("iv"), "iv", pa.array(iv, pa.float64()))

    book.with_market(und, without_iv(free_opt))  # an option nobody holds may lack an iv
    with pytest.raises(InvalidInput, match="option held without an iv") as resident:
        book.with_market(und, without_iv(held_opt))
    with pytest.raises(InvalidInput) as scanned:
        validate_market(inst, book.positions, und, without_iv(held_opt), book.sources)
    rows = [i for i, n in enumerate(book.positions["instrument"].to_pylist()) if n == held_opt]
    assert resident.value.rows == scanned.value.rows == rows[:5]
    assert resident.value.n_bad == scanned.value.n_bad == len(rows)


def test_a_step_with_market_and_fills_flattens_once_and_prices_like_a_fresh_load():
    from gpuskew.session import MarketUpdate, Session

    tables = make_demo_book(n_positions=2000, seed=11)
    book = gpuskew.load_book(tables)
    und = tables["underlyings"]
    moved = und.set_column(und.column_names.index("spot"), "spot", pc.multiply(und["spot"], 0.97))
    # a book without its flat view does not build one just to move the market
    updated = book.with_market(moved, tables["quotes"])
    assert book._flat is None and updated._flat is None
    session = Session(gpuskew.load_book(tables), backend="cpu", group_by=["desk", "book"])
    session.book.flat()  # resident, as after a first step
    pos = tables["positions"]
    fills = pa.table({"instrument": [pos["instrument"][0].as_py(), pos["instrument"][1].as_py()],
                      "quantity": [2.0, -1.0], "price": [100.0, 200.0],
                      "desk": ["new-desk", pos["desk"][1].as_py()]})
    step = session.step(DEMO_AS_OF, market=MarketUpdate(underlyings=moved.select(["underlying", "spot"])),
                        fills=fills)
    fresh = gpuskew.load_book(dict(tables, underlyings=session.book.underlyings, positions=session.book.positions))
    b = gpuskew.compute(fresh, as_of=DEMO_AS_OF, backend="cpu", group_by=["desk", "book"])
    assert step.exposures.select(KEYS).equals(b.exposures.select(KEYS))
    np.testing.assert_array_equal(_matrix(step.exposures), _matrix(b.exposures))
    assert "new-desk" in step.exposures["desk"].to_pylist()


def test_each_held_instrument_priced_once_gives_the_per_position_bits():
    """The engine prices each held instrument once (instrument_pricing) and then every position on
    it (positions_from_instruments): bitwise the per-position kernel (position_greeks), every
    contract type and expired options included."""
    import numpy as np

    from gpuskew.core.engine import as_of_micros
    from gpuskew.kernels import cpu
    from gpuskew.synthetic.demo import DEMO_AS_OF, make_demo_book

    book = gpuskew.load_book(make_demo_book(5_000, seed=11))
    res = gpuskew.compute(book, as_of=DEMO_AS_OF, backend="cpu")
    flat = book.flat()
    assert flat.held_row.size < len(flat) and set(flat.kind.tolist()) == {0, 1, 2, 3}
    T = flat.time_to_expiry(as_of_micros(DEMO_AS_OF))
    out = np.empty((12, len(flat)))
    status = np.empty(len(flat), np.int8)
    cpu.position_greeks(flat.kind, flat.settle, flat.cp, flat.qty, flat.csize, flat.strike, T, flat.S, flat.fwd,
                        flat.r, flat.vol, flat.entry, out, status)
    got = np.stack([res.positions[m].to_numpy() for m in schema.MEASURE_NAMES])
    np.testing.assert_array_equal(got.view(np.int64), out.view(np.int64))
    assert (status == 1).any() and res.positions["status"].to_pylist().count("expired") == int((status == 1).sum())


def test_as_of_micros_is_the_one_timeutil_conversion():
    """The engine's valuation time in microseconds is gpuskew.timeutil.to_micros itself (no second
    copy of the epoch arithmetic): same integers, naive datetimes read as UTC like everywhere else."""
    from datetime import datetime, timedelta, timezone

    from gpuskew.core.engine import as_of_micros
    from gpuskew.timeutil import to_micros

    assert as_of_micros is to_micros
    t = datetime(2026, 11, 20, 8, 0, 0, 123_456, tzinfo=timezone(timedelta(hours=2)))
    assert as_of_micros(t) == 1_795_161_600_123_456 - 2 * 3_600_000_000
    assert as_of_micros(datetime(1969, 12, 31, 23, 59, 59)) == -1_000_000


def test_the_to_device_stage_times_the_uploads():
    # the columns go to the device inside the "to_device" lap, none during "greeks"
    from gpuskew.core.engine import as_backend

    book = gpuskew.load_book(make_demo_book(n_positions=300, seed=2))
    backend = as_backend("cpu", len(book))
    uploads: list[int] = []
    to_device = backend.to_device
    backend.to_device = lambda a: (uploads.append(1), to_device(a))[1]  # type: ignore[method-assign]
    seen: dict[str, int] = {}
    gpuskew.compute(book, as_of=DEMO_AS_OF, backend=backend, progress=lambda stage: seen.setdefault(stage, len(uploads)))
    assert seen["prepare"] == 0 and seen["to_device"] > 0 and seen["greeks"] == seen["to_device"]


def test_summary_input_hashes_are_what_the_run_id_hashes():
    # in-memory tables: summary.json names the content hash the run id is made of, not "in-memory"
    from gpuskew.session import Session, run_id

    book = gpuskew.load_book(make_demo_book(n_positions=200, seed=4))
    step = Session(book, backend="cpu").step(DEMO_AS_OF)
    hashes = {name: entry["hash"] for name, entry in step.summary["inputs"].items()}
    assert hashes == book.content_hashes() and all(h.startswith("sha256:") for h in hashes.values())
    assert step.run_id == run_id(book, DEMO_AS_OF, step.result.levels, None)


def test_plausibility_warnings_count_rows_from_one():
    from gpuskew.session import Session

    tables = make_demo_book(n_positions=100, seed=1)
    quotes = tables["quotes"]
    iv = quotes["iv"].to_pylist()
    bad = [i for i, v in enumerate(iv) if v is not None][:7]
    iv = [50.0 if i in bad else v for i, v in enumerate(iv)]
    tables = dict(tables, quotes=quotes.set_column(quotes.column_names.index("iv"), "iv", pa.array(iv, pa.float64())))
    book = gpuskew.load_book(tables)
    (warning,) = Session(book, backend="cpu").plausibility_warnings(DEMO_AS_OF)
    assert warning.endswith("; rows " + ", ".join(str(i + 1) for i in bad[:5]) + " ...")
    with pytest.raises(InvalidInput, match="--strict refuses it") as err:
        Session(book, backend="cpu", strict=True).plausibility_warnings(DEMO_AS_OF)
    assert err.value.rows == bad[:5] and err.value.n_bad == 7 and err.value.column == "iv"


def test_per_position_instrument_columns_are_gathered_only_when_read():
    from gpuskew.core.book import PER_POSITION_COLUMNS

    tables = make_demo_book(n_positions=500, seed=8)
    book = gpuskew.load_book(tables)
    gpuskew.compute(book, as_of=DEMO_AS_OF, backend="cpu", positions_table=False)
    flat = book.flat()
    assert flat._gathered == {}  # the kernels read the held columns: no per-position copies built
    for name in PER_POSITION_COLUMNS:
        values = getattr(flat, name)
        np.testing.assert_array_equal(values, getattr(flat, "h_" + name)[flat.pos_inst])
        assert values.dtype == getattr(flat, "h_" + name).dtype and values.flags.c_contiguous
        assert getattr(flat, name) is values  # kept once gathered
    und = tables["underlyings"]
    moved = book.with_market(und.set_column(und.column_names.index("spot"), "spot", pc.multiply(und["spot"], 2.0)),
                             tables["quotes"])
    np.testing.assert_array_equal(moved.flat().S, 2.0 * flat.S)  # a new market gathers its own

"""The seeded Deribit-like demo book: determinism, data contract, realism, files."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from gpuskew.synthetic.demo import (
    DEMO_AS_OF,
    TAG_COLUMNS,
    demo_universe_summary,
    make_demo_book,
    write_demo_book,
)
from gpuskew.schema import INPUT_TABLES, SECONDS_PER_YEAR, TIMESTAMP

N_SMALL = 2_000


@pytest.fixture(scope="module")
def book() -> dict[str, pa.Table]:
    return make_demo_book(N_SMALL, seed=7)


@pytest.fixture(scope="module")
def big_book() -> dict[str, pa.Table]:
    return make_demo_book(200_000, seed=11)


def _rows(table: pa.Table) -> list[dict]:
    return table.to_pylist()


def _instruments_by_name(book) -> dict[str, dict]:
    return {r["instrument"]: r for r in _rows(book["instruments"])}


# -- determinism ---------------------------------------------------------------------------------

def test_demo_as_of_is_friday_0800_utc():
    assert DEMO_AS_OF == datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)
    assert DEMO_AS_OF.utcoffset() == timedelta(0)


def test_same_seed_gives_identical_tables(book):
    again = make_demo_book(N_SMALL, seed=7)
    for name in INPUT_TABLES:
        assert again[name].equals(book[name], check_metadata=True), name


def test_different_seed_changes_positions_not_universe(book):
    other = make_demo_book(N_SMALL, seed=8)
    assert not other["positions"].equals(book["positions"])
    for name in ("instruments", "underlyings", "quotes"):
        assert other[name].equals(book[name]), name


def test_sizes_and_empty_book():
    assert make_demo_book(1, seed=1)["positions"].num_rows == 1
    empty = make_demo_book(0)
    assert empty["positions"].num_rows == 0
    assert empty["positions"].schema == make_demo_book(5)["positions"].schema
    with pytest.raises(ValueError):
        make_demo_book(-1)


# -- data contract -------------------------------------------------------------------------------

def test_columns_and_types_match_schema(book):
    assert set(book) == set(INPUT_TABLES)
    for name, cols in INPUT_TABLES.items():
        schema = book[name].schema
        expected = [c.name for c in cols]
        if name == "positions":
            expected += list(TAG_COLUMNS)
        assert schema.names == expected, name
        for c in cols:
            assert schema.field(c.name).type == c.type, (name, c.name)
    for tag in TAG_COLUMNS:
        assert book["positions"].schema.field(tag).type == pa.string()
    assert book["instruments"].schema.field("expiry").type == TIMESTAMP


def test_required_columns_have_no_nulls_and_keys_are_unique(book):
    for name, cols in INPUT_TABLES.items():
        for c in cols:
            if c.required:
                assert book[name].column(c.name).null_count == 0, (name, c.name)
    for tag in TAG_COLUMNS:
        assert book["positions"].column(tag).null_count == 0
    for name, key in (("instruments", "instrument"), ("underlyings", "underlying"),
                      ("quotes", "instrument")):
        col = book[name].column(key)
        assert len(col.unique()) == len(col), name


def test_every_contract_type_is_present(book):
    inst = book["instruments"]
    combos = {(r["kind"], r["settlement"], r["option_type"]) for r in _rows(inst)}
    for want in [("spot", "linear", None),
                 ("perpetual", "linear", None), ("perpetual", "inverse", None),
                 ("future", "linear", None), ("future", "inverse", None),
                 ("option", "linear", "call"), ("option", "linear", "put"),
                 ("option", "inverse", "call"), ("option", "inverse", "put")]:
        assert want in combos, want
    assert {r["kind"] for r in _rows(inst)} <= {"spot", "perpetual", "future", "option"}
    # and every type is actually held in a 2,000-position book
    held = {(r["kind"], r["settlement"], r["option_type"])
            for r in _rows(inst.filter(pc.is_in(inst["instrument"],
                                                book["positions"]["instrument"].unique())))}
    assert held == combos


def test_references_resolve(book):
    inst = _instruments_by_name(book)
    unds = {r["underlying"] for r in _rows(book["underlyings"])}
    quotes = {r["instrument"]: r for r in _rows(book["quotes"])}
    held = set(book["positions"]["instrument"].unique().to_pylist())
    assert held <= set(inst)
    assert {inst[h]["underlying"] for h in held} <= unds
    assert {r["underlying"] for r in inst.values()} <= unds
    for name, r in inst.items():
        if r["kind"] == "option":
            q = quotes[name]
            assert q["iv"] is not None and 0.15 <= q["iv"] <= 3.0, name
            assert q["forward"] is not None and q["forward"] > 0, name
        elif r["kind"] in ("future", "perpetual"):
            assert quotes[name]["iv"] is None and quotes[name]["forward"] > 0, name
        else:
            assert name not in quotes


def test_underlyings_market(book):
    u = {r["underlying"]: r for r in _rows(book["underlyings"])}
    assert set(u) == {"BTC", "ETH", "SOL", "XRP", "USDC"}
    assert u["BTC"]["spot"] == pytest.approx(97_000, rel=0.05)
    assert u["ETH"]["spot"] == pytest.approx(3_400, rel=0.05)
    assert u["SOL"]["spot"] == pytest.approx(190, rel=0.05)
    assert u["XRP"]["spot"] == pytest.approx(2.3, rel=0.05)
    assert u["USDC"]["spot"] == 1.0 and u["USDC"]["rate"] == 0.0
    assert u["USDC"]["vol"] is None or u["USDC"]["vol"] < 0.05
    assert {k: u[k]["vol"] for k in ("BTC", "ETH", "SOL", "XRP")} == {
        "BTC": 0.50, "ETH": 0.65, "SOL": 0.85, "XRP": 0.9}
    assert u["BTC"]["funding_rate"] == pytest.approx(0.0001 * 3 * 365)
    for k in ("BTC", "ETH", "SOL", "XRP"):
        assert 0.04 <= u[k]["rate"] <= 0.05
        assert abs(u[k]["funding_rate"]) < 1.0


# -- instruments ---------------------------------------------------------------------------------

def test_contract_sizes_follow_conventions(book):
    inst = _instruments_by_name(book)
    assert inst["BTC-PERPETUAL"]["settlement"] == "inverse"
    assert inst["BTC-PERPETUAL"]["contract_size"] == 10.0
    assert inst["ETH-PERPETUAL"]["contract_size"] == 1.0
    assert inst["ETH-PERPETUAL"]["settlement"] == "inverse"
    linear_perps = {"BTC_USDC-PERPETUAL": 0.001, "ETH_USDC-PERPETUAL": 0.01,
                    "SOL_USDC-PERPETUAL": 0.1, "XRP_USDC-PERPETUAL": 1.0}
    for name, size in linear_perps.items():
        assert inst[name]["settlement"] == "linear" and inst[name]["contract_size"] == size
    for name, r in inst.items():
        if r["kind"] == "spot":
            assert r["settlement"] == "linear" and r["contract_size"] == 1.0
            assert name == r["underlying"]
        elif r["kind"] == "option":
            want = {"BTC": ("inverse", 1.0), "ETH": ("inverse", 1.0),
                    "SOL": ("linear", 10.0), "XRP": ("linear", 1000.0)}[r["underlying"]]
            assert (r["settlement"], r["contract_size"]) == want, name
        elif r["kind"] == "future":
            if r["settlement"] == "inverse":
                assert r["contract_size"] == {"BTC": 10.0, "ETH": 1.0}[r["underlying"]], name
            else:
                assert "_USDC-" in name and r["contract_size"] < 1.0, name


def test_names_strikes_and_expiries(book):
    option_re = re.compile(r"^(BTC|ETH|SOL_USDC|XRP_USDC)-(\d{1,2})([A-Z]{3})(\d{2})-(\d+(d\d+)?)-(C|P)$")
    future_re = re.compile(r"^(BTC|ETH|BTC_USDC|ETH_USDC)-\d{1,2}[A-Z]{3}\d{2}$")
    for r in _rows(book["instruments"]):
        kind, name, exp = r["kind"], r["instrument"], r["expiry"]
        if kind == "option":
            m = option_re.match(name)
            assert m, name
            assert r["strike"] > 0
            assert float(m.group(5).replace("d", ".")) == pytest.approx(r["strike"], rel=1e-12)
            assert m.group(7) == r["option_type"][0].upper()
            assert int(m.group(2)) == exp.day
        elif kind == "future":
            assert future_re.match(name), name
        else:
            assert exp is None and r["strike"] is None and r["option_type"] is None, name
        if kind in ("option", "future"):
            assert exp.tzinfo is not None and (exp.hour, exp.minute, exp.second) == (8, 0, 0)
            assert exp > DEMO_AS_OF or (kind == "option" and exp == DEMO_AS_OF - timedelta(days=1))


def test_expiry_calendar(book):
    exps = sorted({r["expiry"] for r in _rows(book["instruments"])
                   if r["underlying"] == "BTC" and r["kind"] == "option"})
    dates = {e.date().isoformat() for e in exps}
    # expired yesterday; dailies; Friday weeklies; last-Friday monthlies and quarterlies
    for d in ("2026-11-19", "2026-11-21", "2026-11-22", "2026-11-23", "2026-11-27", "2026-12-04",
              "2026-12-11", "2026-12-18", "2026-12-25", "2027-01-29", "2027-03-26", "2027-06-25",
              "2027-09-24"):
        assert d in dates, d
    assert len(exps) == 13
    fut = {r["instrument"] for r in _rows(book["instruments"]) if r["kind"] == "future"}
    assert {"BTC-25DEC26", "ETH-25DEC26", "BTC-26MAR27", "ETH-24SEP27"} <= fut


def test_strike_grid_is_centered_and_scales_with_maturity(book):
    inst = book["instruments"].to_pylist()
    spot = 97_000.0

    def strikes(expiry_date):
        return sorted({r["strike"] for r in inst if r["underlying"] == "BTC"
                       and r["kind"] == "option" and r["expiry"].date().isoformat() == expiry_date})

    daily, long = strikes("2026-11-21"), strikes("2027-09-24")
    assert all(k % 500 == 0 for k in daily) and all(k % 5000 == 0 for k in long)
    assert 0.85 * spot < daily[0] < spot < daily[-1] < 1.15 * spot
    assert long[0] <= 0.55 * spot and long[-1] >= 1.8 * spot
    assert len(daily) >= 10 and len(long) >= 10
    eth = sorted({r["strike"] for r in inst if r["underlying"] == "ETH" and r["kind"] == "option"})
    assert all(k % 25 == 0 for k in eth)


def test_smile_has_skew_and_convexity(book):
    inst = _instruments_by_name(book)
    q = {r["instrument"]: r for r in _rows(book["quotes"])}
    ivs = np.array([r["iv"] for r in q.values() if r["iv"] is not None])
    assert ivs.min() >= 0.15 and ivs.max() <= 3.0 and ivs.size == sum(
        r["kind"] == "option" for r in inst.values())
    # BTC 18DEC26: wings above ATM, puts richer than calls at the same distance
    rows = sorted((r["strike"], q[n]["iv"], q[n]["forward"]) for n, r in inst.items()
                  if n.startswith("BTC-18DEC26-") and n.endswith("-C"))
    f = rows[0][2]
    atm = min(rows, key=lambda x: abs(math.log(x[0] / f)))
    assert rows[0][1] > atm[1] and rows[-1][1] > atm[1]
    assert 0.4 < atm[1] < 0.6
    # forwards: S exp((r + basis) T) above spot and increasing with maturity
    futs = sorted((r["expiry"], q[n]["forward"]) for n, r in inst.items()
                  if r["kind"] == "future" and r["underlying"] == "BTC" and r["settlement"] == "inverse")
    fwds = [x[1] for x in futs]
    assert fwds == sorted(fwds) and 97_000 < fwds[0] < fwds[-1] < 97_000 * 1.1
    t_last = (futs[-1][0] - DEMO_AS_OF).total_seconds() / SECONDS_PER_YEAR
    assert math.log(fwds[-1] / 97_000) / t_last == pytest.approx(0.075, abs=0.01)
    assert q["BTC-PERPETUAL"]["forward"] == pytest.approx(97_000, rel=1e-3)


# -- positions -----------------------------------------------------------------------------------

def _joined(book) -> dict[str, np.ndarray]:
    pos = book["positions"]
    inst = book["instruments"]
    idx = pc.index_in(pos["instrument"], value_set=inst["instrument"]).to_numpy()
    out = {c: inst[c].to_numpy(zero_copy_only=False)[idx] for c in
           ("kind", "settlement", "underlying", "contract_size")}
    out["quantity"] = pos["quantity"].to_numpy()
    out["entry_price"] = pos["entry_price"].to_numpy(zero_copy_only=False).astype(float)
    out["desk"] = pos["desk"].to_numpy(zero_copy_only=False)
    out["expiry"] = inst["expiry"].cast(pa.int64()).to_numpy(zero_copy_only=False)[idx]
    return out


def test_positions_quantities_and_entry_prices(book):
    j = _joined(book)
    q, e, kind = j["quantity"], j["entry_price"], j["kind"]
    assert np.isfinite(q).all() and (q != 0).all()
    fut = np.isin(kind, ["perpetual", "future"])
    assert np.isfinite(e[fut]).all() and (e[fut] > 0).all()
    assert np.isnan(e[~fut]).all()
    # whole contracts for perps and futures; options of BTC in 0.1, others whole
    assert (q[fut] == np.rint(q[fut])).all()
    btc_opt = (kind == "option") & (j["underlying"] == "BTC")
    assert np.allclose(q[btc_opt] * 10, np.rint(q[btc_opt] * 10), atol=1e-9, rtol=0)
    # both signs appear for derivatives
    assert (q[kind == "option"] < 0).any() and (q[kind == "option"] > 0).any()


def test_position_sizes_are_realistic(big_book):
    j = _joined(big_book)
    kind, und, q = j["kind"], j["underlying"], j["quantity"]
    btc_opt = np.abs(q[(kind == "option") & (und == "BTC")])
    assert 0.1 <= np.median(btc_opt) <= 10
    assert np.mean((btc_opt >= 0.1) & (btc_opt <= 50)) > 0.95
    # BTC-PERPETUAL: contracts of $10; median notional between $50k and $5m
    perp = np.abs(q[big_book["positions"]["instrument"].to_numpy(zero_copy_only=False)
                    == "BTC-PERPETUAL"]) * 10.0
    assert 5e4 < np.median(perp) < 5e6
    # entry prices within ~30% of the mark
    fut = np.isin(kind, ["perpetual", "future"])
    spot = {"BTC": 97_000, "ETH": 3_400, "SOL": 190, "XRP": 2.3}
    ref = np.array([spot[u] for u in und[fut]])
    assert np.all(np.abs(np.log(j["entry_price"][fut] / ref)) < 0.35)


def test_desks_books_accounts(big_book):
    pos = big_book["positions"]
    j = _joined(big_book)
    desks = set(pos["desk"].unique().to_pylist())
    assert desks == {"options-mm", "delta-one", "vol-arb", "treasury"}
    for d in desks:
        books = set(pos.filter(pc.equal(pos["desk"], d))["book"].unique().to_pylist())
        assert 2 <= len(books) <= 4, d
        for b in books:
            accts = pos.filter(pc.equal(pos["book"], b))["account"].unique()
            assert 1 <= len(accts) <= 6, b
    kind, desk = j["kind"], j["desk"]
    assert np.mean(kind[desk == "options-mm"] == "option") > 0.6
    assert np.mean(kind[desk == "vol-arb"] == "option") > 0.6
    assert np.mean(np.isin(kind[desk == "delta-one"], ["perpetual", "future"])) > 0.8
    assert np.mean(kind[desk == "treasury"] == "spot") > 0.7
    assert not (kind[desk == "treasury"] == "option").any()
    # USDC cash is held by treasury
    assert ((j["underlying"] == "USDC") & (desk == "treasury")).any()
    # several positions per instrument across accounts
    per_inst = pos.group_by("instrument").aggregate([("account", "count_distinct")])
    assert per_inst.filter(pc.greater(per_inst["account_count_distinct"], 1)).num_rows > 100


def test_popularity_is_skewed_to_short_dated_near_the_money(big_book):
    j = _joined(big_book)
    opt = j["kind"] == "option"
    t = (j["expiry"][opt] / 1e6 - DEMO_AS_OF.timestamp()) / SECONDS_PER_YEAR
    assert np.mean(t < 31 / 365) > 0.5
    inst = big_book["instruments"]
    btc = inst.filter(pc.and_(pc.equal(inst["underlying"], "BTC"), pc.equal(inst["kind"], "option")))
    vc = big_book["positions"]["instrument"].value_counts()
    counts = dict(zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()))
    near = [counts.get(r["instrument"], 0) for r in btc.to_pylist()
            if abs(math.log(r["strike"] / 97_000)) < 0.03]
    far = [counts.get(r["instrument"], 0) for r in btc.to_pylist()
           if abs(math.log(r["strike"] / 97_000)) > 0.4]
    assert np.mean(near) > 5 * np.mean(far)


def test_a_few_expired_options(big_book):
    j = _joined(big_book)
    cut = int(DEMO_AS_OF.timestamp() * 1e6)
    inst = big_book["instruments"]
    exp = inst["expiry"].cast(pa.int64()).to_numpy(zero_copy_only=False)
    expired_inst = np.sum(np.nan_to_num(exp.astype(float), nan=np.inf) <= cut)
    assert 2 <= expired_inst <= 10
    expired_pos = (j["kind"] == "option") & (np.nan_to_num(j["expiry"].astype(float), nan=np.inf) <= cut)
    share = expired_pos.mean()
    assert 0.0002 < share < 0.005, share


# -- summary -------------------------------------------------------------------------------------

def test_universe_summary(book):
    s = demo_universe_summary(book, as_of=DEMO_AS_OF)
    assert s["n_positions"] == N_SMALL
    assert s["n_instruments"] == book["instruments"].num_rows
    assert sum(s["instruments_by_kind"].values()) == s["n_instruments"]
    assert sum(s["positions_by_kind"].values()) == N_SMALL
    assert sum(s["positions_by_desk"].values()) == N_SMALL
    assert s["instruments_by_kind_settlement"]["perpetual/inverse"] == 2
    assert s["instruments_by_kind_settlement"]["perpetual/linear"] == 4
    assert set(s["instruments_by_underlying"]) == {"BTC", "ETH", "SOL", "XRP", "USDC"}
    assert 2 <= s["expired_options"] <= 10
    assert "expired_options" not in demo_universe_summary(book)


# -- files ---------------------------------------------------------------------------------------

def test_write_parquet_is_byte_identical(tmp_path):
    a = write_demo_book(tmp_path / "a", n_positions=N_SMALL, seed=3)
    b = write_demo_book(tmp_path / "b", n_positions=N_SMALL, seed=3)
    assert set(a) == set(INPUT_TABLES)
    for name in INPUT_TABLES:
        assert a[name].name == f"{name}.parquet"
        assert a[name].read_bytes() == b[name].read_bytes(), name
    assert pq.read_metadata(a["positions"]).row_group(0).column(0).compression == "ZSTD"
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("fmt", ["parquet", "csv", "arrow"])
def test_formats_read_back(tmp_path, fmt):
    paths = write_demo_book(tmp_path / fmt, n_positions=500, seed=5, fmt=fmt)
    again = write_demo_book(tmp_path / (fmt + "2"), n_positions=500, seed=5, fmt=fmt)
    tables = make_demo_book(500, seed=5)
    for name, path in paths.items():
        assert path.suffix == "." + fmt
        assert path.read_bytes() == again[name].read_bytes()
        if fmt == "parquet":
            t = pq.read_table(path)
        elif fmt == "arrow":
            with pa.memory_map(str(path)) as src:
                t = pa.ipc.open_file(src).read_all()
        else:
            t = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(
                column_types={f.name: f.type for f in tables[name].schema},
                strings_can_be_null=True))
        assert t.num_rows == tables[name].num_rows
        assert t.schema.names == tables[name].schema.names
        if fmt != "csv":
            assert t.equals(tables[name]), name
        else:
            assert t.cast(tables[name].schema).equals(tables[name]), name


def test_write_rejects_unknown_format(tmp_path):
    with pytest.raises(ValueError):
        write_demo_book(tmp_path, n_positions=10, fmt="xlsx")


# -- validation ------------------------------------------------------------------------------------

def test_demo_book_passes_validation(book, big_book):
    from gpuskew.io.validate import validate_book

    for tables in (book, big_book):
        out = validate_book(tables, {name: f"<demo {name}>" for name in INPUT_TABLES})
        for name in INPUT_TABLES:
            assert out[name].num_rows == tables[name].num_rows, name


def test_simulated_option_fills_are_black76_per_coin():
    """The demo's client fills are priced by the kernels (position_values of one coin, r = 0):
    the same bits as Black-76 per row, with T >= 1e-6 years, the index price without a forward
    quote, vol 0.5 without an iv, and a floor of F * 1e-4."""
    import gpuskew
    from gpuskew.kernels.black76 import black76
    from gpuskew.synthetic.simulate import DemoSimulation

    b = gpuskew.load_book(make_demo_book(1500, seed=3))
    sim = DemoSimulation(start=datetime(2026, 11, 20, 8, tzinfo=timezone.utc))
    sim.step_index = 1
    _, quotes, _ = sim._move_market(b)
    quotes = quotes.set_column(1, "iv", pa.array([None] + quotes["iv"].to_pylist()[1:], pa.float64()))
    kind = pc.take(b.instruments["kind"], pc.index_in(b.positions["instrument"], value_set=b.instruments["instrument"]))
    rows = np.flatnonzero(pc.equal(kind, "option").to_numpy(zero_copy_only=False))
    got = sim._option_prices(b, quotes, rows)
    inst = {r["instrument"]: r for r in b.instruments.to_pylist()}
    q = {r["instrument"]: r for r in quotes.to_pylist()}
    spot = dict(zip(b.underlyings["underlying"].to_pylist(), b.underlyings["spot"].to_pylist()))
    for k, name in enumerate(b.positions["instrument"].take(pa.array(rows)).to_pylist()):
        r, qr = inst[name], q.get(name, {})
        T = max((r["expiry"] - sim.as_of).total_seconds() / SECONDS_PER_YEAR, 1e-6)
        F = qr.get("forward") or spot[r["underlying"]]
        want = max(black76(r["option_type"] == "call", F, r["strike"], T, 0.0, qr.get("iv") or 0.5)[0], F * 1e-4)
        assert got[k] == want, name

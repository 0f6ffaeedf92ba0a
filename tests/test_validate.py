"""Input validation: one test per rule, plus normalisation of types, defaults and tags."""

from __future__ import annotations

import copy
import math
from datetime import date, datetime, timezone
from typing import Any

import pyarrow as pa
import pytest

from gpuskew import schema
from gpuskew.errors import EXIT_INVALID, InvalidInput
from gpuskew.io.validate import RULES, tag_columns, validate_book, validate_table

NAN = float("nan")
INF = float("inf")
EXPIRY = datetime(2026, 12, 27, 8, 0, tzinfo=timezone.utc)

SOURCES = {
    "instruments": "book/instruments.csv",
    "positions": "book/positions.parquet",
    "underlyings": "book/underlyings.arrow",
    "quotes": "book/quotes.csv",
}


def _book() -> dict[str, dict[str, list[Any]]]:
    """A tiny valid book, one instrument of each kind x settlement, as plain column lists."""
    return {
        "instruments": {
            "instrument": ["BTC", "BTC-PERPETUAL", "BTCUSDT", "BTC-27DEC26",
                           "SOL_USDC-27DEC26-200-C", "BTC-27DEC26-100000-C"],
            "underlying": ["BTC", "BTC", "BTC", "BTC", "SOL", "BTC"],
            "kind": ["spot", "perpetual", "perpetual", "future", "option", "option"],
            "settlement": ["linear", "inverse", "linear", "inverse", "linear", "inverse"],
            "option_type": [None, None, None, None, "call", "call"],
            "strike": [None, None, None, None, 200.0, 100_000.0],
            "expiry": [None, None, None, EXPIRY, EXPIRY, EXPIRY],
            "contract_size": [1.0, 10.0, 0.001, 10.0, 10.0, 1.0],
        },
        "positions": {
            "instrument": ["BTC", "BTC-PERPETUAL", "BTCUSDT", "BTC-27DEC26",
                           "SOL_USDC-27DEC26-200-C", "BTC-27DEC26-100000-C"],
            "quantity": [2.5, -10_000.0, 3000.0, 500.0, -40.0, 12.0],
            "entry_price": [None, 94_000.0, 95_500.0, 99_000.0, None, None],
            "desk": ["mm", "mm", "delta1", "delta1", "options", "options"],
        },
        "underlyings": {
            "underlying": ["BTC", "SOL"],
            "spot": [95_000.0, 180.0],
            "rate": [0.04, 0.04],
            "vol": [0.55, 0.8],
            "funding_rate": [0.1, 0.05],
        },
        "quotes": {
            "instrument": ["BTC-27DEC26", "SOL_USDC-27DEC26-200-C", "BTC-27DEC26-100000-C"],
            "iv": [None, 0.85, 0.6],
            "forward": [97_000.0, None, 97_000.0],
        },
    }


TYPES = {c.name: c.type for cols in schema.INPUT_TABLES.values() for c in cols}


def _fits(value: Any, typ: pa.DataType) -> bool:
    if pa.types.is_string(typ):
        return isinstance(value, str)
    if pa.types.is_floating(typ):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, datetime)


def _tables(book: dict[str, dict[str, list[Any]]]) -> dict[str, pa.Table]:
    """Arrow tables of ``book``: schema types where the values fit, else pyarrow's inference."""
    out = {}
    for name, cols in book.items():
        arrays = {}
        for col, values in cols.items():
            typ = TYPES.get(col)
            fits = typ is not None and all(v is None or _fits(v, typ) for v in values)
            arrays[col] = pa.array(values, type=typ if fits else None)
        out[name] = pa.table(arrays)
    return out


@pytest.fixture
def book() -> dict[str, dict[str, list[Any]]]:
    return copy.deepcopy(_book())


def _error(book: dict[str, Any] | dict[str, pa.Table]) -> InvalidInput:
    tables = book if all(isinstance(t, pa.Table) for t in book.values()) else _tables(book)
    with pytest.raises(InvalidInput) as info:
        validate_book(tables, SOURCES)
    return info.value


def _assert_error(err: InvalidInput, table: str, column: str | None, rule: str,
                  rows: list[int] | None = None, values: list[Any] | None = None,
                  n_bad: int | None = None) -> None:
    assert err.source == SOURCES[table], str(err)
    assert err.column == column, str(err)
    assert rule in err.rule, str(err)
    msg = str(err)
    assert SOURCES[table] in msg and rule in msg
    if column:
        assert f"column '{column}'" in msg
    if rows is not None:
        assert err.rows == rows, msg
        if rows:  # counted from 1 in the message (the row a person sees in a spreadsheet)
            assert f" {', '.join(str(r + 1) for r in rows[:5])} (data rows counted from 1" in msg
        assert err.n_bad == (len(rows) if n_bad is None else n_bad)
    if values is not None:
        assert len(err.values) == len(values)
        for got, want in zip(err.values, values):
            assert (isinstance(got, float) and isinstance(want, float) and math.isnan(got) and math.isnan(want)) \
                or got == want, msg
    assert err.exit_code == EXIT_INVALID


# ------------------------------------------------------------------------------------------
# the valid book and its normalisation


def test_valid_book_is_normalised(book):
    out = validate_book(_tables(book), SOURCES)
    assert list(out) == list(schema.INPUT_TABLES)
    for name, cols in schema.INPUT_TABLES.items():
        t = out[name]
        assert t.column_names[: len(cols)] == [c.name for c in cols]
        for c in cols:
            assert t.schema.field(c.name).type == c.type, (name, c.name)
    assert out["positions"].column_names == ["instrument", "quantity", "entry_price", "desk"]
    assert out["positions"].column("desk").to_pylist() == book["positions"]["desk"]
    assert out["instruments"].column("expiry").to_pylist()[3] == EXPIRY
    assert out["instruments"].num_rows == 6 and out["positions"].num_rows == 6
    assert tag_columns(out["positions"]) == ["desk"]


def test_empty_book_is_valid():
    cols = {name: {c.name: pa.array([], c.type) for c in spec if c.required}
            for name, spec in schema.INPUT_TABLES.items()}
    out = validate_book({n: pa.table(c) for n, c in cols.items()}, SOURCES)
    assert all(t.num_rows == 0 for t in out.values())
    assert out["underlyings"].schema.field("rate").type == pa.float64()


def test_empty_book_with_null_typed_columns_is_valid():
    """A header-only CSV gives columns of type null: they cast to their schema types."""
    tables = {name: pa.table({c.name: pa.nulls(0) for c in spec}) for name, spec in schema.INPUT_TABLES.items()}
    out = validate_book(tables, SOURCES)
    assert out["instruments"].schema.field("expiry").type == schema.TIMESTAMP
    assert out["positions"].schema.field("quantity").type == pa.float64()


def test_missing_optional_columns_are_added_and_rate_defaults_to_zero(book):
    del book["underlyings"]["rate"], book["underlyings"]["vol"], book["quotes"]["forward"]
    del book["positions"]["entry_price"]
    out = validate_book(_tables(book), SOURCES)
    assert out["underlyings"].column("rate").to_pylist() == [0.0, 0.0]
    assert out["underlyings"].column("vol").null_count == 2
    assert out["quotes"].column("forward").null_count == 3
    assert out["positions"].column_names == ["instrument", "quantity", "entry_price", "desk"]
    assert out["positions"].column("entry_price").null_count == 6


def test_null_rate_becomes_zero(book):
    book["underlyings"]["rate"] = [None, 0.03]
    out = validate_book(_tables(book), SOURCES)
    assert out["underlyings"].column("rate").to_pylist() == [0.0, 0.03]


def test_extra_columns_kept_in_input_order_and_string_like_normalised(book):
    t = _tables(book)
    pos = t["positions"]
    pos = pos.append_column("book", pa.array(["a", "b", "a", "b", "a", "b"]).dictionary_encode())
    pos = pos.append_column("weight", pa.array([1, 2, 3, 4, 5, 6], pa.int32()))
    pos = pos.append_column("account", pa.array(["x"] * 6, pa.large_string()))
    # schema columns out of order in the input
    pos = pos.select(["desk", "quantity", "book", "instrument", "weight", "account", "entry_price"])
    t["positions"] = pos
    out = validate_book(t, SOURCES)["positions"]
    assert out.column_names == ["instrument", "quantity", "entry_price", "desk", "book", "weight", "account"]
    assert out.schema.field("book").type == pa.dictionary(pa.int32(), pa.string())  # stays encoded
    assert out.schema.field("account").type == pa.string()  # large_string decoded
    assert out.schema.field("weight").type == pa.int32()  # non-string extras untouched
    assert out.column("book").to_pylist() == ["a", "b", "a", "b", "a", "b"]
    assert tag_columns(out) == ["desk", "book", "account"]


def test_integer_and_decimal_numbers_become_float64(book):
    t = _tables(book)
    t["positions"] = t["positions"].set_column(1, "quantity", pa.array([1, -2, 3, 0, 5, 6], pa.int64()))
    out = validate_book(t, SOURCES)
    assert out["positions"].column("quantity").to_pylist() == [1.0, -2.0, 3.0, 0.0, 5.0, 6.0]
    assert out["positions"].schema.field("quantity").type == pa.float64()


def test_zero_quantity_is_allowed(book):
    book["positions"]["quantity"] = [0.0] * 6
    validate_book(_tables(book), SOURCES)


def test_dictionary_and_large_strings_in_known_columns(book):
    t = _tables(book)
    ins = t["instruments"]
    ins = ins.set_column(2, "kind", ins.column("kind").combine_chunks().dictionary_encode())
    ins = ins.set_column(0, "instrument", ins.column("instrument").cast(pa.large_string()))
    t["instruments"] = ins
    out = validate_book(t, SOURCES)["instruments"]
    assert out.schema.field("kind").type == pa.string()
    assert out.schema.field("instrument").type == pa.string()
    assert out.column("kind").to_pylist() == book["instruments"]["kind"]


@pytest.mark.parametrize("expiry", [
    pa.array([None, None, None, EXPIRY, EXPIRY, EXPIRY], pa.timestamp("ns", tz="UTC")),
    pa.array([None, None, None, EXPIRY, EXPIRY, EXPIRY], pa.timestamp("s", tz="UTC")),
    pa.array([None, None, None, EXPIRY, EXPIRY, EXPIRY], pa.timestamp("ms", tz="UTC")).cast(pa.timestamp("ms", tz="Asia/Tokyo")),
    pa.array([None, None, None, EXPIRY.replace(tzinfo=None)] * 1 + [EXPIRY.replace(tzinfo=None)] * 2, pa.timestamp("us")),
    pa.array([None, None, None, "2026-12-27T08:00:00Z", "2026-12-27T10:00:00+02:00", "2026-12-27 08:00:00"]),
    pa.array([None, None, None, "2026-12-27T08:00:00.000000Z", " 2026-12-27T08:00:00Z ", "2026-12-27T08:00:00z"]),
], ids=["ns-utc", "s-utc", "ms-tokyo", "naive-us", "iso-strings", "iso-variants"])
def test_expiry_accepts_any_timestamp_or_iso_string(book, expiry):
    t = _tables(book)
    ins = t["instruments"]
    t["instruments"] = ins.set_column(ins.schema.get_field_index("expiry"), "expiry", expiry)
    out = validate_book(t, SOURCES)["instruments"]
    assert out.schema.field("expiry").type == schema.TIMESTAMP
    assert out.column("expiry").to_pylist() == [None, None, None, EXPIRY, EXPIRY, EXPIRY]


def test_expiry_dates_alone_mean_0800_utc(book):
    t = _tables(book)
    ins = t["instruments"]
    d = date(2026, 12, 27)
    for expiry in (pa.array([None, None, None, d, d, d], pa.date32()), pa.array([None, None, None, "2026-12-27"] + ["2026-12-27"] * 2)):
        t["instruments"] = ins.set_column(ins.schema.get_field_index("expiry"), "expiry", expiry)
        out = validate_book(t, SOURCES)["instruments"]
        assert out.column("expiry").to_pylist()[3:] == [datetime(2026, 12, 27, 8, tzinfo=timezone.utc)] * 3


def test_option_type_and_strike_of_non_options_are_ignored(book):
    book["instruments"]["option_type"][1] = "banana"
    book["instruments"]["strike"][2] = NAN
    book["instruments"]["strike"][0] = -5.0
    validate_book(_tables(book), SOURCES)


def test_unheld_instrument_on_unknown_underlying_is_fine(book):
    ins = book["instruments"]
    for col, v in zip(ins, ["ETH-PERPETUAL", "ETH", "perpetual", "inverse", None, None, None, 10.0]):
        ins[col].append(v)
    validate_book(_tables(book), SOURCES)


def test_unheld_option_without_iv_is_fine(book):
    book["positions"] = {k: v[:4] for k, v in book["positions"].items()}
    book["quotes"]["iv"] = [None, None, None]
    validate_book(_tables(book), SOURCES)


def test_pandas_and_polars_inputs(book):
    pd = pytest.importorskip("pandas")
    pl = pytest.importorskip("polars")
    t = _tables(book)
    frames: dict[str, Any] = {
        "instruments": t["instruments"].to_pandas().set_index(pd.Index(range(10, 16))),
        "positions": pl.from_arrow(t["positions"]).with_columns(pl.col("desk").cast(pl.Categorical)),
        "underlyings": pl.from_arrow(t["underlyings"]),
        "quotes": t["quotes"].to_pandas(),
    }
    out = validate_book(frames, SOURCES)
    assert "__index_level_0__" not in out["instruments"].column_names
    assert out["instruments"].column("expiry").to_pylist()[3] == EXPIRY
    # a categorical tag stays dictionary-encoded (one dictionary); known columns become string
    assert out["positions"].schema.field("desk").type == pa.dictionary(pa.int32(), pa.string())
    assert out["positions"].column("desk").to_pylist() == list(t["positions"].column("desk").to_pylist())
    assert out["positions"].schema.field("instrument").type == pa.string()
    assert tag_columns(out["positions"]) == ["desk"]
    assert out["instruments"].schema.metadata is None


def test_validate_table_alone(book):
    out = validate_table("underlyings", _tables(book)["underlyings"])
    assert out.column_names == ["underlying", "spot", "rate", "vol", "funding_rate"]
    with pytest.raises(InvalidInput, match="<quotes table>"):
        validate_table("quotes", pa.table({"iv": [0.5]}))


# ------------------------------------------------------------------------------------------
# missing tables and columns, types


def test_missing_table(book):
    t = _tables(book)
    del t["quotes"]
    err = _error(t)
    _assert_error(err, "quotes", None, "missing table 'quotes'")


def test_default_source_names_in_memory_tables(book):
    t = _tables(book)
    t["positions"] = t["positions"].drop_columns(["quantity"])
    with pytest.raises(InvalidInput) as info:
        validate_book(t, {})
    assert info.value.source == "<positions table>"
    assert "<positions table>, column 'quantity'" in str(info.value)


@pytest.mark.parametrize("table,column", [(n, c.name) for n, cols in schema.INPUT_TABLES.items()
                                          for c in cols if c.required])
def test_missing_required_column(book, table, column):
    del book[table][column]
    err = _error(book)
    _assert_error(err, table, column, "missing required column", rows=[])
    assert "columns present:" in err.rule


def test_duplicate_column_name(book):
    t = _tables(book)
    t["underlyings"] = pa.Table.from_arrays(
        [t["underlyings"].column(i) for i in (0, 1, 1)], names=["underlying", "spot", "spot"])
    _assert_error(_error(t), "underlyings", "spot", "duplicate column name")


def test_wrong_type_string_where_number_needed(book):
    book["positions"]["quantity"] = ["1", "abc", "2.5e3", "", "-", "7"]
    err = _error(book)
    _assert_error(err, "positions", "quantity", "wrong type: expected number, got string",
                  rows=[1, 3, 4], values=["abc", "", "-"])


def test_wrong_type_numeric_strings_still_rejected(book):
    book["underlyings"]["spot"] = ["95000", "180"]
    err = _error(book)
    _assert_error(err, "underlyings", "spot", "wrong type: expected number, got string", rows=[])


def test_wrong_type_number_where_string_needed(book):
    book["underlyings"]["underlying"] = [1, 2]
    book["instruments"]["underlying"] = [1] * 6
    err = _error(book)
    _assert_error(err, "instruments", "underlying", "wrong type: expected string, got int64")


def test_wrong_type_bool_number(book):
    t = _tables(book)
    t["quotes"] = t["quotes"].set_column(1, "iv", pa.array([None, True, False]))
    _assert_error(_error(t), "quotes", "iv", "wrong type: expected number, got bool")


def test_wrong_type_expiry(book):
    t = _tables(book)
    ins = t["instruments"]
    t["instruments"] = ins.set_column(ins.schema.get_field_index("expiry"), "expiry",
                                      pa.array([None, None, None, 1, 2, 3]))
    _assert_error(_error(t), "instruments", "expiry",
                  "wrong type: expected timestamp, date or ISO-8601 string, got int64")


def test_expiry_not_iso(book):
    book["instruments"]["expiry"] = [None, None, None, "27DEC26", "2026-12-27", "2026-13-01"]
    err = _error(book)
    _assert_error(err, "instruments", "expiry", "not an ISO-8601 date/time", rows=[3, 5],
                  values=["27DEC26", "2026-13-01"])


# ------------------------------------------------------------------------------------------
# required values


@pytest.mark.parametrize("table,column", [(n, c.name) for n, cols in schema.INPUT_TABLES.items()
                                          for c in cols if c.required])
def test_null_in_required_column(book, table, column):
    book[table][column][1] = None
    _assert_error(_error(book), table, column, "required value is missing", rows=[1])


def test_empty_string_in_required_column(book):
    book["instruments"]["underlying"][2] = ""
    _assert_error(_error(book), "instruments", "underlying", "required value is missing",
                  rows=[2])


# ------------------------------------------------------------------------------------------
# instruments


def test_unknown_kind_is_case_sensitive(book):
    book["instruments"]["kind"][2] = "Perpetual"
    book["instruments"]["kind"][5] = "swap"
    err = _error(book)
    _assert_error(err, "instruments", "kind",
                  "unknown kind; expected one of spot, perpetual, future, option",
                  rows=[2, 5], values=["Perpetual", "swap"])


def test_unknown_settlement(book):
    book["instruments"]["settlement"][0] = "quanto"
    _assert_error(_error(book), "instruments", "settlement",
                  "unknown settlement; expected one of linear, inverse", rows=[0], values=["quanto"])


def test_option_needs_option_type(book):
    book["instruments"]["option_type"][5] = None
    _assert_error(_error(book), "instruments", "option_type", "options need an option_type", rows=[5])


def test_option_type_must_be_call_or_put(book):
    book["instruments"]["option_type"][4] = "CALL"
    _assert_error(_error(book), "instruments", "option_type",
                  "unknown option_type; expected one of call, put", rows=[4], values=["CALL"])


def test_option_needs_strike(book):
    book["instruments"]["strike"][4] = None
    _assert_error(_error(book), "instruments", "strike", "options need a strike", rows=[4])


def test_option_needs_expiry(book):
    book["instruments"]["expiry"][5] = None
    _assert_error(_error(book), "instruments", "expiry", "options need an expiry", rows=[5])


def test_future_needs_expiry(book):
    book["instruments"]["expiry"][3] = None
    _assert_error(_error(book), "instruments", "expiry", "futures need an expiry", rows=[3])


def test_spot_cannot_be_inverse(book):
    book["instruments"]["settlement"][0] = "inverse"
    _assert_error(_error(book), "instruments", "settlement", "spot cannot be inverse-settled",
                  rows=[0], values=["inverse"])


@pytest.mark.parametrize("table,column,row,value", [
    ("instruments", "strike", 4, NAN),
    ("instruments", "strike", 5, INF),
    ("instruments", "contract_size", 1, INF),
    ("instruments", "contract_size", 2, NAN),
    ("underlyings", "spot", 0, NAN),
    ("underlyings", "rate", 1, INF),
    ("underlyings", "vol", 0, -INF),
    ("underlyings", "funding_rate", 1, NAN),
    ("quotes", "iv", 1, NAN),
    ("quotes", "forward", 0, INF),
    ("positions", "quantity", 3, NAN),
    ("positions", "entry_price", 1, INF),
])
def test_must_be_finite(book, table, column, row, value):
    book[table][column][row] = value
    _assert_error(_error(book), table, column, "must be finite (no NaN or inf)", rows=[row], values=[value])


@pytest.mark.parametrize("table,column,row,value", [
    ("instruments", "strike", 4, 0.0),
    ("instruments", "strike", 5, -100.0),
    ("instruments", "contract_size", 1, 0.0),
    ("instruments", "contract_size", 0, -1.0),
    ("underlyings", "spot", 1, 0.0),
    ("underlyings", "vol", 0, -0.1),
    ("quotes", "iv", 2, 0.0),
    ("quotes", "forward", 2, -1.0),
    ("positions", "entry_price", 2, 0.0),
])
def test_must_be_positive(book, table, column, row, value):
    book[table][column][row] = value
    _assert_error(_error(book), table, column, "must be > 0", rows=[row], values=[value])


def test_negative_rate_and_funding_are_allowed(book):
    book["underlyings"]["rate"] = [-0.01, 0.0]
    book["underlyings"]["funding_rate"] = [-0.3, None]
    validate_book(_tables(book), SOURCES)


def test_duplicate_instrument(book):
    ins = book["instruments"]
    for col in ins:
        ins[col].append(ins[col][1])
    _assert_error(_error(book), "instruments", "instrument", "duplicate instrument", rows=[1, 6],
                  values=["BTC-PERPETUAL", "BTC-PERPETUAL"])


# ------------------------------------------------------------------------------------------
# underlyings, quotes, positions


def test_duplicate_underlying(book):
    und = book["underlyings"]
    for col in und:
        und[col].append(und[col][0])
    _assert_error(_error(book), "underlyings", "underlying", "duplicate underlying", rows=[0, 2],
                  values=["BTC", "BTC"])


def test_duplicate_quote(book):
    q = book["quotes"]
    for col in q:
        q[col].insert(0, q[col][2])
    _assert_error(_error(book), "quotes", "instrument", "duplicate quote for an instrument",
                  rows=[0, 3])


def test_quote_for_unknown_instrument(book):
    book["quotes"]["instrument"][0] = "ETH-27DEC26"
    _assert_error(_error(book), "quotes", "instrument", "quote for an unknown instrument",
                  rows=[0], values=["ETH-27DEC26"])


def test_position_on_unknown_instrument(book):
    book["positions"]["instrument"][2] = "BTC-PERP"
    _assert_error(_error(book), "positions", "instrument", "position on an unknown instrument",
                  rows=[2], values=["BTC-PERP"])


def test_held_instrument_on_unknown_underlying(book):
    book["underlyings"] = {k: v[:1] for k, v in book["underlyings"].items()}  # SOL removed
    err = _error(book)
    _assert_error(err, "instruments", "underlying", "underlying has no row in underlyings",
                  rows=[4], values=["SOL"])
    assert SOURCES["underlyings"] in err.rule


def test_option_held_without_iv(book):
    book["quotes"]["iv"][2] = None  # BTC option: null iv
    book["positions"]["instrument"].append("BTC-27DEC26-100000-C")
    book["positions"]["quantity"].append(1.0)
    book["positions"]["entry_price"].append(None)
    book["positions"]["desk"].append("x")
    err = _error(book)
    _assert_error(err, "positions", "instrument", "option held without an iv in quotes",
                  rows=[5, 6], values=["BTC-27DEC26-100000-C"] * 2)
    assert SOURCES["quotes"] in err.rule


def test_option_held_without_quote_row(book):
    book["quotes"] = {k: v[:2] for k, v in book["quotes"].items()}
    _assert_error(_error(book), "positions", "instrument", "option held without an iv in quotes",
                  rows=[5])


# ------------------------------------------------------------------------------------------
# reporting and order


def test_first_five_rows_and_total_count(book):
    pos = book["positions"]
    for col in pos:
        pos[col] = pos[col] * 3  # 18 rows
    pos["quantity"] = [NAN if i % 2 else 1.0 for i in range(18)]
    err = _error(book)
    _assert_error(err, "positions", "quantity", "must be finite", rows=[1, 3, 5, 7, 9], n_bad=9)
    assert "rows 2, 4, 6, 8, 10 (data rows counted from 1, first 5 of 9)" in str(err)


def test_tables_are_checked_in_fixed_order(book):
    book["positions"]["quantity"][0] = NAN
    book["quotes"]["iv"][1] = -1.0
    book["underlyings"]["spot"][0] = 0.0
    book["instruments"]["contract_size"][0] = 0.0
    order = []
    for table in ("instruments", "underlyings", "quotes", "positions"):
        err = _error(copy.deepcopy(book))
        order.append(err.source)
        # fix that table and look at the next one
        fixed = _book()[table]
        book[table] = copy.deepcopy(fixed)
    assert order == [SOURCES[t] for t in ("instruments", "underlyings", "quotes", "positions")]


def test_within_table_nulls_before_enums_before_numbers(book):
    ins = book["instruments"]
    ins["contract_size"][0] = NAN
    ins["kind"][1] = "swap"
    ins["instrument"][2] = None
    assert _error(copy.deepcopy(book)).column == "instrument"
    ins["instrument"][2] = "BTCUSDT"
    assert _error(copy.deepcopy(book)).column == "kind"
    ins["kind"][1] = "perpetual"
    assert _error(copy.deepcopy(book)).column == "contract_size"


def test_every_rule_names_an_existing_column():
    for name, rules in RULES.items():
        known = {c.name for c in schema.INPUT_TABLES[name]}
        assert all(r.column in known for r in rules)


def test_dictionary_tags_from_several_chunks_get_one_dictionary(book):
    t = _tables(book)
    pos = t["positions"]
    first = pa.array(["x", "y", "x"]).dictionary_encode()
    second = pa.array(["z", "x", "z"]).dictionary_encode()  # another dictionary, as Parquet row groups have
    pos = pos.append_column("book", pa.chunked_array([first, second]))
    out = validate_book(dict(t, positions=pos), SOURCES)["positions"]
    col = out.column("book")
    assert col.num_chunks == 1 and col.type == pa.dictionary(pa.int32(), pa.string())
    assert col.to_pylist() == ["x", "y", "x", "z", "x", "z"]

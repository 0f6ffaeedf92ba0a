"""Input checks: turn the four raw input tables into normalised, trusted Arrow tables.

:func:`validate_book` checks the tables in a fixed order (instruments, underlyings, quotes,
positions) and, within a table, in a fixed order of rule families:

1. column names: duplicates, missing required columns;
2. types: every known column must be convertible to its :class:`gpuskew.schema.Column` type;
3. nulls (and empty strings) in required columns;
4. the table's rules from the rule tables below (enum strings, per-kind requirements, finite
   numbers, positivity), in table order;
5. uniqueness of the key column;
6. cross-references to the tables already checked.

The first problem found raises one :class:`~gpuskew.errors.InvalidInput` naming the source (file
path, or e.g. ``"<positions table>"``), the column, the first 5 offending 0-based data rows with
their values, the total count, and the rule broken.

Normalisation of a valid table:

* known columns cast to their schema type: strings (``large_string``, ``string_view`` and
  dictionary-encoded strings decoded to ``string``), ``float64`` (integers and decimals converted),
  ``expiry`` to ``timestamp[us, UTC]`` (timestamps of any unit/time zone, naive = UTC; dates;
  ISO-8601 strings);
* missing optional columns added as nulls, except ``underlyings.rate`` which defaults to 0.0
  (nulls in ``rate`` become 0.0 too);
* extra columns are kept, after the schema columns, in input order; dictionary-encoded string
  extra columns become ``dictionary<int32, string>`` with one dictionary (cheap to group by and to
  write), other string-like ones plain ``string``, the rest are left untouched. In ``positions``
  every extra column of string type is a *tag* (see :func:`tag_columns`);
* table-level schema metadata (e.g. pandas' index metadata) is dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpuskew import schema
from gpuskew.errors import InvalidInput
from gpuskew.timeutil import DATE_HOUR_UTC, to_micros

__all__ = ["validate_book", "validate_reference", "validate_positions", "validate_market", "validate_table",
           "tag_columns", "Rule", "TABLE_ORDER", "RULES"]

#: Order in which the tables are validated (cross-references point to earlier tables).
TABLE_ORDER: tuple[str, ...] = ("instruments", "underlyings", "quotes", "positions")

#: Key column that must be unique, and the rule text, per table.
UNIQUE_KEYS: dict[str, tuple[str, str]] = {
    "instruments": ("instrument", "duplicate instrument"),
    "underlyings": ("underlying", "duplicate underlying"),
    "quotes": ("instrument", "duplicate quote for an instrument"),
}

FINITE = "must be finite (no NaN or inf)"
POSITIVE = "must be > 0"
REQUIRED = "required value is missing (null or empty)"

_NUMBER_RE = r"^\s*[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|inf|infinity|nan)\s*$"

Mask = pa.ChunkedArray  # boolean, True where a row breaks a rule (nulls count as False)


# --------------------------------------------------------------------------------------------
# small helpers


def _source(sources: Mapping[str, str], name: str) -> str:
    return sources.get(name) or f"<{name} table>"


def _to_numpy_mask(mask: pa.ChunkedArray | pa.Array | np.ndarray) -> np.ndarray:
    if isinstance(mask, np.ndarray):
        return mask.astype(bool, copy=False)
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


def _raise_rows(source: str, column: str | None, rule: str, mask: Any,
                values: pa.ChunkedArray | pa.Array | None = None) -> None:
    """Raise :class:`InvalidInput` listing the rows where ``mask`` is true (no-op if none)."""
    bad = _to_numpy_mask(mask)
    rows = np.flatnonzero(bad)
    if rows.size == 0:
        return
    shown = rows[:5]
    vals: list[object] = []
    if values is not None:
        vals = values.take(pa.array(shown, pa.int64())).to_pylist()
        if all(v is None for v in vals):
            vals = []
    raise InvalidInput(source=source, column=column, rule=rule, rows=shown.tolist(),
                       n_bad=int(rows.size), values=vals)


def _combined(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def _is_string_like(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        return _is_string_like(t.value_type)
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _type_name(t: pa.DataType) -> str:
    if _is_string_like(t):
        return "string"
    if pa.types.is_boolean(t):
        return "bool"
    return str(t)


#: the type of a dictionary-encoded tag column after validation
TAG_DICTIONARY = pa.dictionary(pa.int32(), pa.string())


def _unified_dictionary(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """A dictionary-encoded string column as one chunk of ``dictionary<int32, string>`` (one
    dictionary for the whole column: chunks read from Parquet row groups each carry their own)."""
    col = pa.chunked_array([c.cast(TAG_DICTIONARY) for c in col.chunks], type=TAG_DICTIONARY)
    col = pa.table({"c": col}).unify_dictionaries().column("c")
    return pa.chunked_array([col.combine_chunks()], type=TAG_DICTIONARY) if col.num_chunks > 1 else col


def is_tag_type(t: pa.DataType) -> bool:
    """True for the types a tag column has after validation: string, or dictionary of string."""
    return pa.types.is_string(t) or (pa.types.is_dictionary(t) and pa.types.is_string(t.value_type))


def _decode_strings(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """A string-like column (string, large_string, string_view, dictionary of those) as ``string``."""
    if pa.types.is_string(col.type):
        return col
    chunks = []
    for chunk in col.chunks:
        if pa.types.is_dictionary(chunk.type):
            chunk = chunk.dictionary.cast(pa.string()).take(chunk.indices)
        chunks.append(chunk.cast(pa.string()))
    return pa.chunked_array(chunks, type=pa.string())


# --------------------------------------------------------------------------------------------
# types and normalisation


def _to_float64(col: pa.ChunkedArray, source: str, name: str) -> pa.ChunkedArray:
    t = col.type
    if pa.types.is_null(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return col.cast(pa.float64())
    if pa.types.is_integer(t):
        return col.cast(pa.float64(), safe=False)  # |n| > 2**53 rounds, as any float would
    rule = f"wrong type: expected number, got {_type_name(t)}"
    if _is_string_like(t):
        strings = _decode_strings(col)
        not_number = pc.invert(pc.match_substring_regex(strings, _NUMBER_RE, ignore_case=True))
        _raise_rows(source, name, rule, not_number, strings)
    raise InvalidInput(source=source, column=name, rule=rule)


def _parse_timestamps(strings: pa.ChunkedArray, source: str, name: str) -> pa.ChunkedArray:
    """ISO-8601 strings (date, or date and time, optional offset; naive = UTC) to timestamp[us, UTC].

    Each distinct string is parsed once (an expiry column holds few distinct values).
    """
    enc = pc.dictionary_encode(_combined(strings))
    micros: list[int | None] = []
    bad_codes: list[int] = []
    for code, text in enumerate(enc.dictionary.to_pylist()):
        try:
            micros.append(to_micros(text))
        except (ValueError, OverflowError, IndexError, InvalidInput):
            micros.append(None)
            bad_codes.append(code)
    if bad_codes:
        codes = enc.indices.to_numpy(zero_copy_only=False)
        valid = _to_numpy_mask(pc.is_valid(enc))
        _raise_rows(source, name, "not an ISO-8601 date/time (e.g. 2026-12-27T08:00:00Z)",
                    valid & np.isin(codes, bad_codes), strings)
    values = pa.array(micros, pa.int64()).cast(schema.TIMESTAMP)
    return pa.chunked_array([values.take(enc.indices)], type=schema.TIMESTAMP)


def _to_timestamp(col: pa.ChunkedArray, source: str, name: str) -> pa.ChunkedArray:
    t = col.type
    if pa.types.is_date(t):  # a date alone means 08:00 UTC (gpuskew.timeutil)
        try:
            midnight = pc.cast(col, options=pc.CastOptions(schema.TIMESTAMP, allow_time_truncate=True))
            hours = pa.scalar(DATE_HOUR_UTC * 3_600_000_000, pa.int64())
            return pc.cast(pc.add(pc.cast(midnight, pa.int64()), hours), schema.TIMESTAMP)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InvalidInput(source=source, column=name, rule=f"timestamp out of range: {exc}") from exc
    if pa.types.is_null(t) or pa.types.is_timestamp(t):
        try:
            return pc.cast(col, options=pc.CastOptions(schema.TIMESTAMP, allow_time_truncate=True))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InvalidInput(source=source, column=name,
                               rule=f"timestamp out of range: {exc}") from exc
    if _is_string_like(t):
        return _parse_timestamps(_decode_strings(col), source, name)
    raise InvalidInput(source=source, column=name,
                       rule=f"wrong type: expected timestamp, date or ISO-8601 string, got {_type_name(t)}")


def _to_string(col: pa.ChunkedArray, source: str, name: str) -> pa.ChunkedArray:
    if pa.types.is_null(col.type):
        return col.cast(pa.string())
    if _is_string_like(col.type):
        return _decode_strings(col)
    raise InvalidInput(source=source, column=name,
                       rule=f"wrong type: expected string, got {_type_name(col.type)}")


def _convert(col: pa.ChunkedArray, spec: schema.Column, source: str) -> pa.ChunkedArray:
    if pa.types.is_string(spec.type):
        return _to_string(col, source, spec.name)
    if pa.types.is_floating(spec.type):
        return _to_float64(col, source, spec.name)
    if pa.types.is_timestamp(spec.type):
        return _to_timestamp(col, source, spec.name)
    raise AssertionError(f"no conversion to {spec.type}")  # pragma: no cover


def _normalise(name: str, table: pa.Table, source: str) -> pa.Table:
    """Column-name and type checks, then the cast of every known column (see module doc)."""
    columns = schema.INPUT_TABLES[name]
    names = table.column_names
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise InvalidInput(source=source, column=n, rule="duplicate column name")
        seen.add(n)
    for spec in columns:
        if spec.required and spec.name not in seen:
            raise InvalidInput(source=source, column=spec.name,
                               rule=f"missing required column (columns present: {', '.join(names) or 'none'})")
    fields: list[pa.Field] = []
    arrays: list[pa.ChunkedArray] = []
    known = {c.name for c in columns}
    for spec in columns:
        if spec.name in seen:
            col = _convert(table.column(spec.name), spec, source)
        else:
            col = pa.chunked_array([pa.nulls(table.num_rows, spec.type)], type=spec.type)
        fields.append(pa.field(spec.name, spec.type))
        arrays.append(col)
    for field in table.schema:
        if field.name in known:
            continue
        col = table.column(field.name)
        if pa.types.is_dictionary(field.type) and _is_string_like(field.type.value_type):
            col = _unified_dictionary(col)
            field = pa.field(field.name, TAG_DICTIONARY, nullable=field.nullable)
        elif _is_string_like(field.type) and not pa.types.is_string(field.type):
            col = _decode_strings(col)
            field = pa.field(field.name, pa.string(), nullable=field.nullable)
        fields.append(field)
        arrays.append(col)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _check_required(table: pa.Table, name: str, source: str) -> None:
    for spec in schema.INPUT_TABLES[name]:
        if not spec.required:
            continue
        col = table.column(spec.name)
        missing = pc.is_null(col)
        if pa.types.is_string(spec.type):
            missing = pc.or_(missing, pc.fill_null(pc.equal(col, ""), False))
        _raise_rows(source, spec.name, REQUIRED, missing)


# --------------------------------------------------------------------------------------------
# rule tables

Check = Callable[[pa.ChunkedArray], Mask]
RowFilter = Callable[[pa.Table], Mask]


@dataclass(frozen=True)
class Rule:
    """One row rule: rows where ``check(table[column])`` is true (within ``when``) break ``rule``."""

    column: str
    rule: str
    check: Check
    when: RowFilter | None = None

    def bad_rows(self, table: pa.Table) -> Mask:
        bad = pc.fill_null(self.check(table.column(self.column)), False)
        if self.when is not None:
            bad = pc.and_(bad, pc.fill_null(self.when(table), False))
        return bad


def _missing(col: pa.ChunkedArray) -> Mask:
    return pc.is_null(col)


def _not_in(allowed: tuple[str, ...]) -> Check:
    def check(col: pa.ChunkedArray) -> Mask:
        value_set = pa.array(list(allowed), pa.string())  # built lazily: pa.array may import pandas
        return pc.and_(pc.is_valid(col), pc.invert(pc.is_in(col, value_set=value_set)))

    return check


def _equals(value: str) -> Check:
    return lambda col: pc.equal(col, value)


def _not_finite(col: pa.ChunkedArray) -> Mask:
    return pc.invert(pc.is_finite(col))  # null stays null -> not flagged


def _not_positive(col: pa.ChunkedArray) -> Mask:
    return pc.less_equal(col, 0.0)


def _kind(kind: str) -> RowFilter:
    return lambda t: pc.equal(t.column("kind"), kind)


def _one_of(allowed: tuple[str, ...]) -> str:
    return ", ".join(allowed)


INSTRUMENT_RULES: tuple[Rule, ...] = (
    Rule("kind", f"unknown kind; expected one of {_one_of(schema.KINDS)}", _not_in(schema.KINDS)),
    Rule("settlement", f"unknown settlement; expected one of {_one_of(schema.SETTLEMENTS)}",
         _not_in(schema.SETTLEMENTS)),
    Rule("option_type", f"options need an option_type ({' or '.join(schema.OPTION_TYPES)})", _missing,
         _kind("option")),
    Rule("option_type", f"unknown option_type; expected one of {_one_of(schema.OPTION_TYPES)}",
         _not_in(schema.OPTION_TYPES), _kind("option")),
    Rule("strike", "options need a strike", _missing, _kind("option")),
    Rule("expiry", "options need an expiry", _missing, _kind("option")),
    Rule("expiry", "futures need an expiry", _missing, _kind("future")),
    Rule("settlement", "spot cannot be inverse-settled", _equals("inverse"), _kind("spot")),
    Rule("strike", FINITE, _not_finite, _kind("option")),
    Rule("contract_size", FINITE, _not_finite),
    Rule("strike", POSITIVE, _not_positive, _kind("option")),
    Rule("contract_size", POSITIVE, _not_positive),
)

UNDERLYING_RULES: tuple[Rule, ...] = (
    Rule("spot", FINITE, _not_finite),
    Rule("rate", FINITE, _not_finite),
    Rule("vol", FINITE, _not_finite),
    Rule("funding_rate", FINITE, _not_finite),
    Rule("spot", POSITIVE, _not_positive),
    Rule("vol", POSITIVE, _not_positive),
)

QUOTE_RULES: tuple[Rule, ...] = (
    Rule("iv", FINITE, _not_finite),
    Rule("forward", FINITE, _not_finite),
    Rule("iv", POSITIVE, _not_positive),
    Rule("forward", POSITIVE, _not_positive),
)

POSITION_RULES: tuple[Rule, ...] = (
    Rule("quantity", FINITE, _not_finite),
    Rule("entry_price", FINITE, _not_finite),
    Rule("entry_price", POSITIVE, _not_positive),
)

#: Row rules per table, checked in order after the type and required-value checks.
RULES: dict[str, tuple[Rule, ...]] = {
    "instruments": INSTRUMENT_RULES,
    "underlyings": UNDERLYING_RULES,
    "quotes": QUOTE_RULES,
    "positions": POSITION_RULES,
}


def _apply_rules(table: pa.Table, rules: tuple[Rule, ...], source: str) -> None:
    for r in rules:
        _raise_rows(source, r.column, r.rule, r.bad_rows(table), table.column(r.column))


def _check_unique(table: pa.Table, column: str, rule: str, source: str) -> None:
    enc = pc.dictionary_encode(_combined(table.column(column)))
    codes = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    counts = np.bincount(codes, minlength=len(enc.dictionary))
    _raise_rows(source, column, rule, counts[codes] > 1, table.column(column))


def _unknown(col: pa.ChunkedArray, known: pa.ChunkedArray) -> Mask:
    return pc.invert(pc.is_in(col, value_set=_combined(known)))


# --------------------------------------------------------------------------------------------
# public API


def validate_table(name: str, table: pa.Table, source: str | None = None) -> pa.Table:
    """Check and normalise one input table on its own (no cross-references to other tables).

    ``name`` is one of :data:`gpuskew.schema.INPUT_TABLES`. Raises :class:`InvalidInput`.
    """
    source = source or f"<{name} table>"
    table = _normalise(name, table, source)
    _check_required(table, name, source)
    if name == "underlyings":
        i = table.schema.get_field_index("rate")
        table = table.set_column(i, table.schema.field(i), pc.fill_null(table.column(i), 0.0))
    _apply_rules(table, RULES[name], source)
    if name in UNIQUE_KEYS:
        column, rule = UNIQUE_KEYS[name]
        _check_unique(table, column, rule, source)
    return table


def validate_book(tables: Mapping[str, Any], sources: Mapping[str, str]) -> dict[str, pa.Table]:
    """Check the four input tables of a book and return them normalised (see module doc).

    ``tables`` maps each name of :data:`gpuskew.schema.INPUT_TABLES` to a :class:`pyarrow.Table`
    (other Arrow-compatible objects are converted with :func:`gpuskew.io.to_arrow_table`);
    ``sources[name]`` is what errors name as the source (file path, or ``"<positions table>"``).
    Raises one :class:`InvalidInput` for the first problem found, in a fixed order.
    Returns the normalised tables, keyed in :data:`gpuskew.schema.INPUT_TABLES` order.
    """
    src = {name: _source(sources, name) for name in schema.INPUT_TABLES}
    raw: dict[str, pa.Table] = {}
    for name in TABLE_ORDER:
        if name not in tables or tables[name] is None:
            raise InvalidInput(source=src[name], column=None, rule=f"missing table '{name}'")
        obj = tables[name]
        if not isinstance(obj, pa.Table):
            from gpuskew.io import to_arrow_table

            obj = to_arrow_table(obj, src[name])
        raw[name] = obj

    out = validate_reference(raw, src)
    out["positions"] = validate_positions(raw["positions"], out["instruments"], out["underlyings"], out["quotes"],
                                          src)
    return {name: out[name] for name in schema.INPUT_TABLES}


def validate_reference(tables: Mapping[str, pa.Table], sources: Mapping[str, str]) -> dict[str, pa.Table]:
    """The first part of :func:`validate_book`: instruments, underlyings and quotes (Arrow tables),
    checked in that order and returned normalised by name."""
    src = {name: _source(sources, name) for name in schema.INPUT_TABLES}
    instruments = validate_table("instruments", tables["instruments"], src["instruments"])
    underlyings, quotes = _market_tables(instruments, tables["underlyings"], tables["quotes"], src)
    return {"instruments": instruments, "underlyings": underlyings, "quotes": quotes}


def validate_positions(positions: pa.Table, instruments: pa.Table, underlyings: pa.Table, quotes: pa.Table,
                       sources: Mapping[str, str]) -> pa.Table:
    """The second part of :func:`validate_book`: a positions table (a whole book's, or one file of a
    partitioned dataset) against validated instruments, underlyings and quotes (the output of
    :func:`validate_reference`). Returns it normalised."""
    src = {name: _source(sources, name) for name in schema.INPUT_TABLES}
    positions = validate_table("positions", positions, src["positions"])
    _check_tag_names(positions, src["positions"])
    _raise_rows(src["positions"], "instrument", "position on an unknown instrument",
                _unknown(positions.column("instrument"), instruments.column("instrument")),
                positions.column("instrument"))
    _check_held_instruments(instruments, underlyings, quotes, positions, src)
    return positions


def _market_tables(instruments: pa.Table, underlyings: Any, quotes: Any,
                   src: Mapping[str, str]) -> tuple[pa.Table, pa.Table]:
    from gpuskew.io.read import to_arrow_table

    if not isinstance(underlyings, pa.Table):
        underlyings = to_arrow_table(underlyings, src["underlyings"])
    if not isinstance(quotes, pa.Table):
        quotes = to_arrow_table(quotes, src["quotes"])
    underlyings = validate_table("underlyings", underlyings, src["underlyings"])
    quotes = validate_table("quotes", quotes, src["quotes"])
    _raise_rows(src["quotes"], "instrument", "quote for an unknown instrument",
                _unknown(quotes.column("instrument"), instruments.column("instrument")),
                quotes.column("instrument"))
    return underlyings, quotes


def validate_market(instruments: pa.Table, positions: pa.Table, underlyings: Any, quotes: Any,
                    sources: Mapping[str, str], held_rows: np.ndarray | None = None) -> tuple[pa.Table, pa.Table]:
    """Check new market tables against a book's validated instruments and positions: the
    underlyings and quotes tables on their own, quotes of known instruments, the market data every
    held instrument needs. Returns the normalised (underlyings, quotes). The positions are not
    checked again (a resident book re-priced under a new market). ``held_rows``: the rows of the
    held instruments when known (a resident book's ``FlatPositions.held_row``): the positions are
    then read only to name the rows of an error."""
    src = {name: _source(sources, name) for name in schema.INPUT_TABLES}
    underlyings, quotes = _market_tables(instruments, underlyings, quotes, src)
    _check_held_instruments(instruments, underlyings, quotes, positions, src, held_rows)
    return underlyings, quotes


def _check_tag_names(positions: pa.Table, source: str) -> None:
    """A tag may not take the name of a column the engine writes (it would collide with it in the
    outputs)."""
    clash = [t for t in schema.POSITIONS.tag_columns(positions) if t in schema.RESERVED_TAG_NAMES]
    if clash:
        raise InvalidInput(source=source, column=clash[0],
                           rule=f"tag column named like a column gpuskew writes; rename it (reserved names: "
                                f"{', '.join(sorted(schema.RESERVED_TAG_NAMES))})")


def _check_held_instruments(instruments: pa.Table, underlyings: pa.Table, quotes: pa.Table,
                            positions: pa.Table, src: Mapping[str, str], held_rows: np.ndarray | None = None) -> None:
    """Instruments held in positions need their underlying's market data, and options an iv.
    ``held_rows``: the rows of the held instruments, if known (else found from the positions)."""
    if held_rows is None:
        held = pc.is_in(instruments.column("instrument"),
                        value_set=pc.unique(_combined(positions.column("instrument"))))
    else:
        mask = np.zeros(instruments.num_rows, dtype=bool)
        mask[held_rows] = True
        held = pa.array(mask)
    _raise_rows(src["instruments"], "underlying",
                f"underlying has no row in underlyings ({src['underlyings']})",
                pc.and_(held, _unknown(instruments.column("underlying"), underlyings.column("underlying"))),
                instruments.column("underlying"))

    quote_row = pc.index_in(instruments.column("instrument"), value_set=_combined(quotes.column("instrument")))
    iv = _combined(quotes.column("iv")).take(_combined(quote_row))
    no_iv = pc.and_(pc.and_(pc.equal(instruments.column("kind"), "option"), pc.is_null(iv)), held)
    options_without_iv = instruments.column("instrument").filter(pc.fill_null(no_iv, False))
    if len(options_without_iv):
        _raise_rows(src["positions"], "instrument", f"option held without an iv in quotes ({src['quotes']})",
                    pc.is_in(positions.column("instrument"), value_set=_combined(options_without_iv)),
                    positions.column("instrument"))


def tag_columns(positions: pa.Table) -> list[str]:
    """Tag columns of a validated positions table: its string columns the positions table does not
    declare (:meth:`gpuskew.schema.TableSpec.tag_columns`)."""
    return schema.POSITIONS.tag_columns(positions)

"""A validated book: positions joined with instruments and market data -> flat columnar arrays.

``load_book`` takes a book folder (instruments, positions, underlyings and quotes as Parquet, CSV or
Arrow IPC files) or a mapping of those four names to Arrow-compatible tables (pyarrow, pandas,
polars), validates them, and returns a :class:`Book`. ``Book.flat()`` gives the struct-of-arrays
view every kernel reads (float64 values, int8 codes, int32 group codes), built once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpuskew import schema
from gpuskew.errors import InvalidInput

#: int64 microseconds standing for "no expiry"
NO_EXPIRY = np.iinfo(np.int64).min


#: the instrument columns per position: properties of FlatPositions gathered from the held
#: instruments' ``h_*`` columns on first use (the kernels read the held columns)
PER_POSITION_COLUMNS = ("kind", "settle", "cp", "csize", "strike", "expiry_us", "S", "fwd", "r", "vol")


@dataclass
class FlatPositions:
    """Struct of arrays, one element per position (units: USD, contracts, years, decimals).

    Per position, besides the fields: ``kind`` (int8 kernels.instruments KIND_* code), ``settle``
    (int8 SETTLE_* code), ``cp`` (int8 +1 call, -1 put, 0 not an option), ``csize`` (float64
    contract_size: coins, or USD for inverse perps/futures), ``strike`` (float64 USD, 0 unless
    option), ``expiry_us`` (int64 microseconds since epoch, NO_EXPIRY if none), ``S`` (float64 index
    price of the underlying, USD), ``fwd`` (float64 quoted forward / perpetual mark, USD, 0 = none),
    ``r`` (float64 rate), ``vol`` (float64 implied vol, 0 unless option): the held instrument's
    value, gathered on first use and kept (a 10^7-position book does not carry ten copies it
    does not read).
    """

    qty: np.ndarray  #: float64 contracts, signed
    entry: np.ndarray  #: float64 entry price, USD (0 = none)
    underlying_code: np.ndarray  #: int32 index into ``underlying_names`` (sorted by name)
    underlying_names: list[str]
    underlying_spot: np.ndarray  #: float64 spot per underlying code
    instrument_index: np.ndarray  #: row of each position's instrument in the instruments table
    #: the held instruments (those with a position), once each: row in the instruments table, and
    #: the same columns as above per held instrument (the kernels price each one once)
    held_row: np.ndarray  #: int64 row in the instruments table
    pos_inst: np.ndarray  #: int64 index of each position's instrument among the held ones
    h_kind: np.ndarray
    h_settle: np.ndarray
    h_cp: np.ndarray
    h_csize: np.ndarray
    h_strike: np.ndarray
    h_expiry_us: np.ndarray
    h_S: np.ndarray
    h_fwd: np.ndarray
    h_r: np.ndarray
    h_vol: np.ndarray
    h_ucode: np.ndarray  #: int32 underlying code of each held instrument
    #: per-position columns gathered so far (not copied by ``dataclasses.replace``: a new market
    #: gathers its own)
    _gathered: dict[str, np.ndarray] = field(init=False, default_factory=dict, repr=False, compare=False)

    def _per_position(self, name: str) -> np.ndarray:
        out = self._gathered.get(name)
        if out is None:
            out = self._gathered[name] = getattr(self, "h_" + name)[self.pos_inst]
        return out

    kind = property(lambda self: self._per_position("kind"))
    settle = property(lambda self: self._per_position("settle"))
    cp = property(lambda self: self._per_position("cp"))
    csize = property(lambda self: self._per_position("csize"))
    strike = property(lambda self: self._per_position("strike"))
    expiry_us = property(lambda self: self._per_position("expiry_us"))
    S = property(lambda self: self._per_position("S"))
    fwd = property(lambda self: self._per_position("fwd"))
    r = property(lambda self: self._per_position("r"))
    vol = property(lambda self: self._per_position("vol"))

    def __post_init__(self) -> None:
        # every kernel argument C-contiguous and writable: numba compiles (and caches) one
        # specialisation per array layout and read-only flag, so the arrays must not depend on
        # where the data came from (Arrow buffers are read-only)
        for name, value in vars(self).items():
            if isinstance(value, np.ndarray) and not (value.flags.c_contiguous and value.flags.writeable):
                setattr(self, name, np.require(value, requirements=("C", "W")))

    def __len__(self) -> int:
        return int(self.qty.shape[0])

    def time_to_expiry(self, as_of_us: int) -> np.ndarray:
        """T in years, ACT/365 in seconds: (expiry - as_of) / 31,536,000 s; 0 where no expiry."""
        return years_to_expiry(self.expiry_us, as_of_us)

    def held_time_to_expiry(self, as_of_us: int) -> np.ndarray:
        """T per held instrument (the same bits as :meth:`time_to_expiry` of its positions)."""
        return years_to_expiry(self.h_expiry_us, as_of_us)


def years_to_expiry(expiry_us: np.ndarray, as_of_us: int) -> np.ndarray:
    """(expiry - as_of) / 31,536,000 s, years (ACT/365 in seconds); 0 where there is no expiry."""
    has = expiry_us != NO_EXPIRY
    T = np.zeros(expiry_us.shape[0], dtype=np.float64)
    T[has] = (expiry_us[has] - as_of_us) / 1e6 / schema.SECONDS_PER_YEAR
    return T


@dataclass
class Book:
    """Validated input tables plus where they came from."""

    instruments: pa.Table
    positions: pa.Table
    underlyings: pa.Table
    quotes: pa.Table
    sources: dict[str, str]
    input_hashes: dict[str, str | None]  #: sha256 per table; None until computed (in-memory tables)
    _flat: FlatPositions | None = field(default=None, repr=False)
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def tags(self) -> tuple[str, ...]:
        """String columns of positions beyond the contract's own: usable with ``group_by``."""
        from gpuskew.io.validate import tag_columns

        return tuple(tag_columns(self.positions))

    def content_hashes(self) -> dict[str, str]:
        """sha256 of each input table's content: the file's bytes for a table read from a file,
        else the table's Arrow IPC bytes (computed on first use, then kept)."""
        out: dict[str, str] = {}
        for name, table in self.tables.items():
            known = self.input_hashes.get(name)
            if known is None:
                known = self.input_hashes[name] = _table_hash(table)
            out[name] = known
        return out

    @property
    def tables(self) -> dict[str, pa.Table]:
        return {"instruments": self.instruments, "positions": self.positions,
                "underlyings": self.underlyings, "quotes": self.quotes}

    def __len__(self) -> int:
        return self.positions.num_rows

    def flat(self) -> FlatPositions:
        """The struct-of-arrays view (built on first use, then kept)."""
        if self._flat is None:
            self._flat = flatten(self)
        return self._flat

    def with_market(self, underlyings: Any, quotes: Any) -> Book:
        """The same positions under new market data (``underlyings`` and ``quotes`` tables).

        Validated like a new book; the flattened static columns, the group codes, the reduction
        plans and the static columns already on a device are shared with this book, so an intraday
        loop re-prices a resident book by moving only the market columns (S, forward, r, vol).
        The new underlyings table must name the same underlyings. A book whose flat view is not
        built yet (new positions) gives a book that builds its own on first use.
        """
        from gpuskew.io.validate import validate_market

        sources = dict(self.sources, underlyings="<underlyings table>", quotes="<quotes table>")
        flat = self._flat
        und, quo = validate_market(self.instruments, self.positions, underlyings, quotes, sources,
                                   held_rows=None if flat is None else flat.held_row)
        new = Book(self.instruments, self.positions, und, quo, sources,
                   dict(self.input_hashes, underlyings=None, quotes=None))
        if flat is None:
            return new  # nothing to share: flatten(new) builds the same columns once, when needed
        if sorted(und["underlying"].to_pylist()) != flat.underlying_names:
            return new  # another set of underlyings: group codes change, rebuild everything
        market: dict[str, Any] = _market_columns(new, flat.held_row, flat.h_ucode,
                                                 flat.h_kind == schema.KINDS.index("option"),
                                                 flat.underlying_names)
        new._flat = replace(flat, **market)
        new._cache = {k: v for k, v in self._cache.items() if k[0] in ("static", "grouping", "plan")}
        return new

    def with_positions(self, positions: pa.Table, instruments: pa.Table | None = None) -> Book:
        """The same market under new positions (and, optionally, an instruments table with new
        listings), built from rows that are already valid (a :class:`gpuskew.core.ledger.PositionLedger`
        table fed by validated fills): nothing is validated again; flat arrays are rebuilt."""
        inst = self.instruments if instruments is None else instruments
        return Book(inst, positions, self.underlyings, self.quotes,
                    dict(self.sources, positions="<positions table>"),
                    dict(self.input_hashes, positions=None, **({} if instruments is None else {"instruments": None})))

    def __repr__(self) -> str:
        tags = ", ".join(self.tags) or "none"
        return (f"<gpuskew.Book: {len(self):,} positions on {self.instruments.num_rows:,} instruments, "
                f"{self.underlyings.num_rows} underlyings; tags: {tags}>")

    def _repr_html_(self) -> str:
        import html

        rows = "".join(f"<tr><th>{html.escape(n)}</th><td>{t.num_rows:,} rows</td>"
                       f"<td>{html.escape(self.sources.get(n, ''))}</td></tr>" for n, t in self.tables.items())
        return (f"<b>gpuskew.Book</b>: {len(self):,} positions; tags: {html.escape(', '.join(self.tags) or 'none')}"
                f"<table>{rows}</table>")


def _codes(values: pa.ChunkedArray, vocabulary: tuple[str, ...]) -> np.ndarray:
    """Index of each string in ``vocabulary`` (-1 for null), as int8."""
    idx = pc.index_in(values, value_set=pa.array(vocabulary))
    return idx.fill_null(-1).to_numpy().astype(np.int8)


def _floats(values: pa.ChunkedArray, default: float = 0.0) -> np.ndarray:
    return values.fill_null(default).to_numpy().astype(np.float64, copy=False)


def _market_columns(book: Book, held_row: np.ndarray, held_ucode: np.ndarray, held_is_option: np.ndarray,
                    names: list[str]) -> dict[str, np.ndarray]:
    """The market columns (S, fwd, r, vol) per held instrument (``h_*``) and the spot per
    underlying code."""
    und, quo = book.underlyings, book.quotes
    und_rank = pc.index_in(und["underlying"], value_set=pa.array(names, pa.string())).to_numpy()
    spot_by_code = np.empty(len(names))
    rate_by_code = np.empty(len(names))
    spot_by_code[und_rank] = _floats(und["spot"])
    rate_by_code[und_rank] = _floats(und["rate"])
    held_names = book.instruments["instrument"].take(pa.array(held_row, pa.int64()))
    q_idx = pc.index_in(held_names, value_set=quo["instrument"]).fill_null(-1).to_numpy()
    iv_q = np.append(_floats(quo["iv"]), 0.0)  # index -1 (no quote) -> the appended 0.0
    fwd_q = np.append(_floats(quo["forward"]), 0.0)
    h = {"h_S": spot_by_code[held_ucode], "h_fwd": fwd_q[q_idx], "h_r": rate_by_code[held_ucode],
         "h_vol": np.where(held_is_option, iv_q[q_idx], 0.0)}
    return {**h, "underlying_spot": spot_by_code}


def flatten(book: Book) -> FlatPositions:
    """Join positions with instruments, underlyings and quotes into flat per-position arrays (and
    the same columns once per held instrument)."""
    from gpuskew.kernels.instruments import CALL, PUT

    inst, pos, und = book.instruments, book.positions, book.underlyings
    # per instrument
    kind = _codes(inst["kind"], schema.KINDS)
    settle = _codes(inst["settlement"], schema.SETTLEMENTS)
    ot = _codes(inst["option_type"], schema.OPTION_TYPES)
    is_opt = kind == schema.KINDS.index("option")
    cp = np.where(is_opt, np.where(ot == 0, CALL, PUT), 0).astype(np.int8)
    strike = np.where(is_opt, _floats(inst["strike"]), 0.0)
    csize = _floats(inst["contract_size"])
    expiry = pc.cast(inst["expiry"], pa.int64()).fill_null(NO_EXPIRY).to_numpy()
    names = sorted(und["underlying"].to_pylist())
    inst_und = pc.index_in(inst["underlying"], value_set=pa.array(names, pa.string()))
    inst_und = inst_und.fill_null(-1).to_numpy().astype(np.int32)
    # per position, and the held instruments
    p = pc.index_in(pos["instrument"], value_set=inst["instrument"]).to_numpy()
    held_row = np.flatnonzero(np.bincount(p, minlength=inst.num_rows)).astype(np.int64)
    remap = np.full(inst.num_rows, -1, dtype=np.int64)
    remap[held_row] = np.arange(held_row.size, dtype=np.int64)
    pos_inst = remap[p]
    h_ucode = inst_und[held_row]
    if len(h_ucode) and h_ucode.min() < 0:  # validation guarantees this cannot happen
        bad = set(held_row[h_ucode < 0].tolist())
        raise InvalidInput(book.sources.get("positions", "positions"), "instrument",
                           "underlying of a held instrument has no market data",
                           rows=np.flatnonzero(np.isin(p, list(bad))).tolist())
    ucode = h_ucode[pos_inst]
    market = _market_columns(book, held_row, h_ucode, is_opt[held_row], names)
    h = {"h_kind": kind[held_row], "h_settle": settle[held_row], "h_cp": cp[held_row],
         "h_csize": csize[held_row], "h_strike": strike[held_row], "h_expiry_us": expiry[held_row]}
    return FlatPositions(
        qty=_floats(pos["quantity"]),
        entry=_floats(pos["entry_price"]) if "entry_price" in pos.column_names else np.zeros(len(p)),
        underlying_code=ucode.astype(np.int32), underlying_names=names, instrument_index=p,
        held_row=held_row, pos_inst=pos_inst, h_ucode=h_ucode.astype(np.int32), **h, **market,
    )


def _table_hash(table: pa.Table) -> str:
    """sha256 of a table's content (its Arrow IPC stream bytes): the same rows give the same hash
    wherever the table came from."""
    import pyarrow.ipc as ipc

    digest = _HashingFile()
    with pa.PythonFile(digest, mode="w") as sink:
        with ipc.new_stream(sink, table.schema.remove_metadata()) as writer:
            writer.write_table(table.replace_schema_metadata(None))
    return "sha256:" + digest.sha256.hexdigest()


class _HashingFile:
    """A write-only file that feeds what is written to sha256 (the IPC bytes are never held whole:
    a 10^7-row positions table would need two copies of 0.7 GiB)."""

    def __init__(self) -> None:
        self.sha256 = hashlib.sha256()
        self.closed = False

    def write(self, data: Any) -> int:
        self.sha256.update(data)
        return memoryview(data).nbytes

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def load_book(source: str | Path | Mapping[str, Any]) -> Book:
    """Read and validate a book.

    ``source`` is a folder holding ``instruments``, ``positions``, ``underlyings`` and ``quotes``
    (each .parquet, .csv, .arrow or .feather; positions may be a folder of Parquet files, a
    partitioned dataset: :mod:`gpuskew.io.dataset`), or a mapping of those names to pyarrow Tables,
    pandas or polars DataFrames. Raises :class:`gpuskew.errors.InvalidInput` on bad input.
    """
    from gpuskew.io import read_book_dir, to_arrow_table
    from gpuskew.io.validate import validate_book

    if isinstance(source, (str, Path)):
        from gpuskew.io.dataset import file_sha256, positions_dataset

        dataset = positions_dataset(Path(source))
        if dataset is not None:
            return load_dataset_book(Path(source), dataset)
        tables, sources = read_book_dir(Path(source))
        hashes: dict[str, str | None] = {name: file_sha256(path) for name, path in sources.items()}
    else:
        missing = [n for n in schema.INPUT_TABLES if n not in source]
        if missing:
            raise InvalidInput("<tables>", None, f"missing table(s): {', '.join(missing)}")
        tables = {n: to_arrow_table(source[n], n) for n in schema.INPUT_TABLES}
        sources = {n: f"<{n} table>" for n in schema.INPUT_TABLES}
        hashes = {n: None for n in schema.INPUT_TABLES}
    valid = validate_book(tables, sources)
    return Book(valid["instruments"], valid["positions"], valid["underlyings"], valid["quotes"],
                sources, hashes)


def read_reference(book_dir: Path) -> tuple[dict[str, pa.Table], dict[str, str], dict[str, str | None]]:
    """The validated instruments, underlyings and quotes of a book folder (every table but the
    positions), the path each was read from and the sha256 of each file."""
    from gpuskew.io import find_table_file, read_table
    from gpuskew.io.dataset import file_sha256
    from gpuskew.io.validate import validate_reference

    raw: dict[str, pa.Table] = {}
    sources: dict[str, str] = {}
    for name in ("instruments", "underlyings", "quotes"):
        path = find_table_file(book_dir, name)
        raw[name] = read_table(path)
        sources[name] = str(path)
    hashes: dict[str, str | None] = {name: file_sha256(path) for name, path in sources.items()}
    return validate_reference(raw, sources), sources, hashes


def concat_positions(parts: list[pa.Table], sources: list[str]) -> pa.Table:
    """Validated positions tables of the files of a dataset as one table (their columns must agree)."""
    if len(parts) == 1:
        return parts[0]
    try:
        return pa.concat_tables(parts, promote_options="permissive")
    except (pa.ArrowException, TypeError) as exc:
        first = parts[0].schema
        for part, source in zip(parts[1:], sources[1:]):
            for f in part.schema:
                i = first.get_field_index(f.name)
                if i >= 0 and first.field(i).type != f.type:
                    raise InvalidInput(source, f.name, f"type {f.type} differs from the first file's "
                                                       f"({first.field(i).type})") from exc
        raise InvalidInput(sources[0], None, f"the files of the positions dataset do not concatenate: {exc}") from exc


def load_dataset_book(book_dir: Path, dataset: Any) -> Book:
    """A book whose positions are a partitioned dataset (:class:`gpuskew.io.dataset.PositionsDataset`),
    read by one process: each file validated in order (the first failing file is named, rows counted
    within it), then the files' rows concatenated in order."""
    from gpuskew.io.dataset import dataset_hash, validate_file

    reference, sources, hashes = read_reference(book_dir)
    sources["positions"] = dataset.source
    parts = [validate_file(f, reference, sources) for f in dataset.files]
    positions = concat_positions(parts, [f.path for f in dataset.files])
    hashes["positions"] = dataset_hash(dataset)
    return Book(reference["instruments"], positions, reference["underlyings"], reference["quotes"],
                {n: sources[n] for n in schema.INPUT_TABLES}, {n: hashes[n] for n in schema.INPUT_TABLES})

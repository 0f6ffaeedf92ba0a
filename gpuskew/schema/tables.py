"""Arrow schemas of every input and output table, with units in field metadata.

The data contract (see README "Data contract"):

* ``instruments``: one row per tradable instrument.
* ``positions``: one row per position; extra string columns are *tags* (desk, book, ...).
* ``underlyings``: market data per underlying (index price, rate, vol, funding).
* ``quotes``: per-instrument market data (option implied vol, optional forward / perp mark).

Units: prices in USD, quantities of the underlying in coins, time in years (ACT/365 in seconds),
vols and rates as annualised decimals.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

#: Valid values of ``instruments.kind``.
KINDS: tuple[str, ...] = ("spot", "perpetual", "future", "option")
#: Valid values of ``instruments.settlement``.
SETTLEMENTS: tuple[str, ...] = ("linear", "inverse")
#: Valid values of ``instruments.option_type``.
OPTION_TYPES: tuple[str, ...] = ("call", "put")
#: Seconds in the ACT/365 year used for every time to expiry.
SECONDS_PER_YEAR: float = 31_536_000.0


def _f(name: str, typ: pa.DataType, unit: str, doc: str, nullable: bool = True) -> pa.Field:
    return pa.field(name, typ, nullable=nullable, metadata={"unit": unit, "doc": doc})


@dataclass(frozen=True)
class Column:
    """One column of an input table: its name, the Arrow type it is cast to, and whether required."""

    name: str
    type: pa.DataType
    required: bool
    unit: str
    doc: str


TIMESTAMP = pa.timestamp("us", tz="UTC")

INSTRUMENT_COLUMNS: tuple[Column, ...] = (
    Column("instrument", pa.string(), True, "", "unique instrument name"),
    Column("underlying", pa.string(), True, "", "underlying name, a row of the underlyings table"),
    Column("kind", pa.string(), True, "", "spot | perpetual | future | option"),
    Column("settlement", pa.string(), True, "", "linear | inverse"),
    Column("option_type", pa.string(), False, "", "call | put; null unless option"),
    Column("strike", pa.float64(), False, "USD", "option strike; null unless option"),
    Column("expiry", TIMESTAMP, False, "UTC", "expiry; null for spot and perpetual"),
    Column("contract_size", pa.float64(), True, "coins or USD",
           "coins per contract (linear, options, spot) or USD per contract (inverse perp/future)"),
)

POSITION_COLUMNS: tuple[Column, ...] = (
    Column("instrument", pa.string(), True, "", "instrument held"),
    Column("quantity", pa.float64(), True, "contracts", "signed number of contracts"),
    Column("entry_price", pa.float64(), False, "USD", "average entry price (perpetuals, futures)"),
)

UNDERLYING_COLUMNS: tuple[Column, ...] = (
    Column("underlying", pa.string(), True, "", "unique underlying name"),
    Column("spot", pa.float64(), True, "USD", "index price S"),
    Column("rate", pa.float64(), False, "1/year", "continuously compounded USD rate r (default 0)"),
    Column("vol", pa.float64(), False, "1/sqrt(year)", "annualised vol of the underlying (targets)"),
    Column("funding_rate", pa.float64(), False, "1/year",
           "annualised perpetual funding rate paid by longs (targets)"),
)

QUOTE_COLUMNS: tuple[Column, ...] = (
    Column("instrument", pa.string(), True, "", "instrument quoted"),
    Column("iv", pa.float64(), False, "1/sqrt(year)", "implied vol (required for every option held)"),
    Column("forward", pa.float64(), False, "USD",
           "forward for the option/future expiry, or the mark price of a perpetual"),
)

#: Input tables by name, in the order they are read and validated.
INPUT_TABLES: dict[str, tuple[Column, ...]] = {
    "instruments": INSTRUMENT_COLUMNS,
    "positions": POSITION_COLUMNS,
    "underlyings": UNDERLYING_COLUMNS,
    "quotes": QUOTE_COLUMNS,
}

#: Per-position output measures, in the row order of the kernels' output array.
#: (name, unit, doc). The order is the contract between kernels/ and gpuskew/.
MEASURES: tuple[tuple[str, str, str], ...] = (
    ("value_usd", "USD", "position value (USD); unrealised P&L for perpetuals/futures with an entry"),
    ("value_coin", "coins", "value_usd / S"),
    ("delta", "coins", "dV/dS, F moving with S"),
    ("delta_usd", "USD", "delta * S"),
    ("delta_pa", "coins", "premium-adjusted delta: delta - V/S for inverse, delta for linear"),
    ("gamma", "coins/USD", "d2V/dS2"),
    ("gamma_1pct", "coins", "gamma * S / 100: change of delta per +1% move"),
    ("vega_usd", "USD", "dV per +1 vol point"),
    ("theta_usd", "USD", "dV per calendar day, F and vol fixed"),
    ("rho_usd", "USD", "dV per +1% rate, F fixed"),
    ("vanna", "coins", "change of delta per +1 vol point"),
    ("volga", "USD", "change of vega_usd per +1 vol point"),
)
MEASURE_NAMES: tuple[str, ...] = tuple(m[0] for m in MEASURES)
N_MEASURES: int = len(MEASURES)

#: Position status codes written by the kernels.
STATUS_OK: int = 0
STATUS_EXPIRED: int = 1
STATUS_NAMES: tuple[str, ...] = ("ok", "expired")


def measure_fields() -> list[pa.Field]:
    """Arrow fields (float64, with unit metadata) of every per-position measure."""
    return [_f(name, pa.float64(), unit, doc) for name, unit, doc in MEASURES]


def with_units(table: pa.Table) -> pa.Table:
    """Attach unit/doc metadata to every known measure or input column of ``table``."""
    known: dict[str, tuple[str, str]] = {n: (u, d) for n, u, d in MEASURES}
    for cols in INPUT_TABLES.values():
        for c in cols:
            known.setdefault(c.name, (c.unit, c.doc))
    known.setdefault("spot", ("USD", "index price S"))
    known.setdefault("forward", ("USD", "forward F used for pricing"))
    known.setdefault("time_to_expiry", ("years", "ACT/365 years to expiry"))
    fields = []
    for field in table.schema:
        if field.name in known and field.metadata is None:
            unit, doc = known[field.name]
            field = field.with_metadata({"unit": unit, "doc": doc})
        fields.append(field)
    return table.cast(pa.schema(fields, metadata=table.schema.metadata))


# ---------------------------------------------------------------------------------------------
# Output tables of a run (beyond positions.parquet = inputs + MEASURES + status).

#: exposures.parquet: one row per group. ``level`` is "underlying" for the per-underlying totals
#: (tag columns null there) or the group_by columns joined by "," (e.g. "desk,book"); then
#: ``underlying``, one string column per group_by tag, and these columns:
EXPOSURE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("spot", "USD", "index price S of the underlying"),
    ("n_positions", "count", "positions in the group"),
    ("n_expired", "count", "expired positions in the group (not priced)"),
) + MEASURES

#: Adherence statuses, from |skew| thresholds (defaults warn 0.8, breach 1.0, critical 1.5).
ADHERENCE_STATUSES: tuple[str, ...] = ("ok", "warn", "breach", "critical")

#: adherence.parquet: one row per group (same keys as exposures: level, underlying, tag columns),
#: after ``as_of`` (timestamp[us, UTC]) and before these columns:
ADHERENCE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("measure", "", "delta measure managed: delta or delta_pa"),
    ("spot", "USD", "index price S"),
    ("actual", "coins", "net delta of the group in the managed measure"),
    ("target", "coins", "target net delta from the target model"),
    ("lower", "coins", "lower band edge = target - half_width_lower"),
    ("upper", "coins", "upper band edge = target + half_width_upper"),
    ("half_width_lower", "coins", "tolerated deviation below target (>= 0)"),
    ("half_width_upper", "coins", "tolerated deviation above target (>= 0)"),
    ("deviation", "coins", "actual - target"),
    ("deviation_usd", "USD", "deviation * S"),
    ("skew", "", "deviation / half-width on its side (signed; |skew| <= 1 inside the band)"),
    ("status", "", "ok | warn | breach | critical"),
    ("target_model", "", "neutral | fixed | base_pct | carry"),
    ("band_model", "", "fixed | var | whalley_wilmott"),
    ("risk_weight_usd", "USD", "weight of the group in the portfolio adherence score"),
    ("reservation_offset_usd", "USD", "Avellaneda-Stoikov reservation price offset -q gamma sigma^2 tau"),
    ("bid_size_mult", "", "bid size multiplier (2 at the lower edge, 1 at target, 0 at the upper)"),
    ("ask_size_mult", "", "ask size multiplier (0 at the lower edge, 1 at target, 2 at the upper)"),
)

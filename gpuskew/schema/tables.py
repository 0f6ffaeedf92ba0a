"""Every table gpuskew reads or writes, declared once (see :mod:`gpuskew.schema.columns`).

Inputs (a book folder):

* ``instruments``: one row per tradable instrument;
* ``positions``: one row per position; extra string columns are *tags* (desk, book, ...);
* ``underlyings``: market data per underlying (index price, rate, vol, funding);
* ``quotes``: per-instrument market data (option implied vol, optional forward / perp mark).

Outputs of a run: ``positions`` (the inputs, the instrument and market context, every measure and
a status), ``exposures`` (sums per group), ``adherence``, ``hedges``, ``alerts``; and the
``report`` table of ``gpuskew report``.

Units: prices in USD, quantities of the underlying in coins, time in years (ACT/365 in seconds),
vols and rates as annualised decimals.
"""

from __future__ import annotations

import pyarrow as pa

from gpuskew.schema.columns import TIMESTAMP, Column, TableSpec, attr, key, measure

#: Valid values of ``instruments.kind``.
KINDS: tuple[str, ...] = ("spot", "perpetual", "future", "option")
#: Valid values of ``instruments.settlement``.
SETTLEMENTS: tuple[str, ...] = ("linear", "inverse")
#: Valid values of ``instruments.option_type``.
OPTION_TYPES: tuple[str, ...] = ("call", "put")
#: Seconds in the ACT/365 year used for every time to expiry.
SECONDS_PER_YEAR: float = 31_536_000.0

# ---------------------------------------------------------------------------------------------
# inputs

INSTRUMENT_COLUMNS: tuple[Column, ...] = (
    Column("instrument", pa.string(), True, "", "unique instrument name", "key"),
    Column("underlying", pa.string(), True, "", "underlying name, a row of the underlyings table"),
    Column("kind", pa.string(), True, "", "spot | perpetual | future | option"),
    Column("settlement", pa.string(), True, "", "linear | inverse"),
    Column("option_type", pa.string(), False, "", "call | put; null unless option"),
    Column("strike", pa.float64(), False, "USD", "option strike; null unless option"),
    Column("expiry", TIMESTAMP, False, "UTC", "expiry (a date alone means 08:00 UTC); null for spot and perpetual"),
    Column("contract_size", pa.float64(), True, "coins or USD",
           "coins per contract (linear, options, spot) or USD per contract (inverse perp/future)"),
)

POSITION_COLUMNS: tuple[Column, ...] = (
    Column("instrument", pa.string(), True, "", "instrument held", "key"),
    Column("quantity", pa.float64(), True, "contracts", "signed number of contracts", "measure"),
    Column("entry_price", pa.float64(), False, "USD", "average entry price (perpetuals, futures)"),
)

UNDERLYING_COLUMNS: tuple[Column, ...] = (
    Column("underlying", pa.string(), True, "", "unique underlying name", "key"),
    Column("spot", pa.float64(), True, "USD", "index price S"),
    Column("rate", pa.float64(), False, "1/year", "continuously compounded USD rate r (default 0)"),
    Column("vol", pa.float64(), False, "1/sqrt(year)", "annualised vol of the underlying (targets)"),
    Column("funding_rate", pa.float64(), False, "1/year",
           "annualised perpetual funding rate paid by longs (targets)"),
)

QUOTE_COLUMNS: tuple[Column, ...] = (
    Column("instrument", pa.string(), True, "", "instrument quoted", "key"),
    Column("iv", pa.float64(), False, "1/sqrt(year)", "implied vol (required for every option held)"),
    Column("forward", pa.float64(), False, "USD",
           "forward for the option/future expiry, or the mark price of a perpetual"),
)

INSTRUMENTS = TableSpec("instruments", INSTRUMENT_COLUMNS, doc="one row per tradable instrument")
POSITIONS = TableSpec("positions", POSITION_COLUMNS, has_tags=True,
                      doc="one row per position; other string columns are tags")
UNDERLYINGS = TableSpec("underlyings", UNDERLYING_COLUMNS, doc="market data per underlying")
QUOTES = TableSpec("quotes", QUOTE_COLUMNS, doc="implied vols and forwards per instrument")

#: Input tables by name, in the order they are read and validated.
INPUT_TABLES: dict[str, tuple[Column, ...]] = {
    "instruments": INSTRUMENT_COLUMNS,
    "positions": POSITION_COLUMNS,
    "underlyings": UNDERLYING_COLUMNS,
    "quotes": QUOTE_COLUMNS,
}
INPUT_SPECS: dict[str, TableSpec] = {"instruments": INSTRUMENTS, "positions": POSITIONS,
                                     "underlyings": UNDERLYINGS, "quotes": QUOTES}

# ---------------------------------------------------------------------------------------------
# per-position measures (the contract between kernels/ and gpuskew/)

#: Per-position output measures, in the row order of the kernels' output array: (name, unit, doc).
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
MEASURE_COLUMNS: tuple[Column, ...] = tuple(measure(n, u, d) for n, u, d in MEASURES)

#: Position status codes written by the kernels.
STATUS_OK: int = 0
STATUS_EXPIRED: int = 1
STATUS_NAMES: tuple[str, ...] = ("ok", "expired")

# ---------------------------------------------------------------------------------------------
# outputs

#: positions.parquet: the input position columns (tags included), the instrument and market
#: context, every measure and the status.
POSITIONS_OUT = TableSpec("positions_out", POSITION_COLUMNS + (
    attr("underlying", pa.string(), "", "underlying of the instrument"),
    attr("kind", pa.string(), "", "spot | perpetual | future | option"),
    attr("settlement", pa.string(), "", "linear | inverse"),
    attr("option_type", pa.string(), "", "call | put; null unless option"),
    attr("strike", pa.float64(), "USD", "option strike"),
    attr("expiry", TIMESTAMP, "UTC", "expiry"),
    attr("contract_size", pa.float64(), "coins or USD", "contract size"),
    attr("spot", pa.float64(), "USD", "index price S"),
    attr("time_to_expiry", pa.float64(), "years", "ACT/365 years to expiry"),
    attr("rate", pa.float64(), "1/year", "USD rate r of the underlying"),
    attr("iv", pa.float64(), "1/sqrt(year)", "implied vol of the option (null unless option)"),
    attr("forward", pa.float64(), "USD", "quoted forward or perpetual mark (null: none quoted; the kernel "
                                         "then uses S, or S exp(r T) for futures and options)"),
) + MEASURE_COLUMNS + (attr("status", pa.string(), "", "ok | expired"),), has_tags=True,
    tags_after="entry_price", doc="positions.parquet")

_GROUP_KEYS: tuple[Column, ...] = (
    key("level", pa.string(), "'underlying' for the per-underlying totals, else the group_by "
                              "tag columns joined by ',' (e.g. 'desk,book')"),
    key("underlying", pa.string(), "underlying of the group"),
)
_AS_OF = key("as_of", TIMESTAMP, "valuation time of the run", "UTC")
#: what the history adds to every table it stores
_STORED = (key("run_id", pa.string(), "id of the run (a hash of its inputs, limits and grouping levels)"),)

#: exposures.parquet: one row per group; tag columns (null where the level does not use them)
#: after ``underlying``.
EXPOSURES = TableSpec("exposures", _GROUP_KEYS + (
    attr("spot", pa.float64(), "USD", "index price S of the underlying"),
    attr("n_positions", pa.int64(), "count", "positions in the group"),
    attr("n_expired", pa.int64(), "count", "expired positions in the group (not priced)"),
) + MEASURE_COLUMNS, has_tags=True, tags_after="underlying", doc="exposures.parquet",
    stored_columns=_STORED)
EXPOSURE_COLUMNS: tuple[tuple[str, str, str], ...] = tuple(
    (c.name, c.unit, c.doc) for c in EXPOSURES.columns[2:])

#: Adherence statuses, from |skew| thresholds (defaults warn 0.8, breach 1.0, critical 1.5).
ADHERENCE_STATUSES: tuple[str, ...] = ("ok", "warn", "breach", "critical")

ADHERENCE = TableSpec("adherence", (_AS_OF,) + _GROUP_KEYS + (
    attr("measure", pa.string(), "", "delta measure managed: delta or delta_pa"),
    attr("spot", pa.float64(), "USD", "index price S"),
    attr("actual", pa.float64(), "coins", "net delta of the group in the managed measure"),
    attr("target", pa.float64(), "coins", "target net delta from the target model"),
    attr("lower", pa.float64(), "coins", "lower band edge = target - half_width_lower"),
    attr("upper", pa.float64(), "coins", "upper band edge = target + half_width_upper"),
    attr("half_width_lower", pa.float64(), "coins", "tolerated deviation below target (>= 0)"),
    attr("half_width_upper", pa.float64(), "coins", "tolerated deviation above target (>= 0)"),
    attr("deviation", pa.float64(), "coins", "actual - target"),
    attr("deviation_usd", pa.float64(), "USD", "deviation * S"),
    attr("skew", pa.float64(), "", "deviation / half-width on its side (signed; |skew| <= 1 inside the band)"),
    attr("status", pa.string(), "", "ok | warn | breach | critical"),
    attr("target_model", pa.string(), "", "neutral | fixed | base_pct | carry"),
    attr("band_model", pa.string(), "", "fixed | var | whalley_wilmott"),
    attr("risk_weight_usd", pa.float64(), "USD", "weight of the group in the portfolio adherence score"),
    attr("reservation_offset_usd", pa.float64(), "USD",
         "Avellaneda-Stoikov reservation price offset -q gamma sigma^2 tau"),
    attr("bid_size_mult", pa.float64(), "", "bid size multiplier (2 at the lower edge, 1 at target, 0 at the upper)"),
    attr("ask_size_mult", pa.float64(), "", "ask size multiplier (0 at the lower edge, 1 at target, 2 at the upper)"),
    attr("effective_status", pa.string(), "", "status after hysteresis against the previous run"),
), has_tags=True, tags_after="underlying", doc="adherence.parquet",
    stored_columns=_STORED)
#: adherence columns after as_of, level, underlying and the tags, before effective_status
ADHERENCE_COLUMNS: tuple[tuple[str, str, str], ...] = tuple(
    (c.name, c.unit, c.doc) for c in ADHERENCE.columns[3:-1])

HEDGES = TableSpec("hedges", (_AS_OF,) + _GROUP_KEYS + (
    attr("hedge_instrument", pa.string(), "", "instrument to trade"),
    attr("kind", pa.string(), "", "spot | perpetual | future"),
    attr("settlement", pa.string(), "", "linear | inverse"),
    attr("mode", pa.string(), "", "to_target | to_band"),
    attr("side", pa.string(), "", "buy | sell"),
    attr("contracts", pa.float64(), "contracts", "signed quantity to trade, a multiple of the lot size"),
    attr("notional_usd", pa.float64(), "USD",
         "|contracts| * contract_size * price (linear, spot) or * contract_size (inverse)"),
    attr("price_usd", pa.float64(), "USD", "price used: the kernel's forward for the instrument"),
    attr("coin_delta", pa.float64(), "coins", "change of the managed delta (coins) the trade makes"),
    attr("pre_trade_delta", pa.float64(), "coins", "group's managed delta before the trade"),
    attr("post_trade_delta", pa.float64(), "coins", "group's managed delta after the trade"),
    attr("post_trade_deviation", pa.float64(), "coins", "post_trade_delta - target"),
    attr("est_cost_usd", pa.float64(), "USD", "fee + spread + impact + funding over the horizon"),
    attr("fee_usd", pa.float64(), "USD", "notional * fee"),
    attr("spread_usd", pa.float64(), "USD", "notional * half_spread"),
    attr("impact_usd", pa.float64(), "USD", "notional * impact"),
    attr("funding_usd", pa.float64(), "USD", "perpetuals: sign * notional * funding_rate * horizon (cost if > 0)"),
    attr("lot_limited", pa.bool_(), "", "lot or minimum size kept the trade from reaching its goal exactly"),
), has_tags=True, tags_after="underlying", doc="hedges.parquet",
    stored_columns=_STORED)
HEDGE_COLUMNS: tuple[tuple[str, str, str], ...] = tuple((c.name, c.unit, c.doc) for c in HEDGES.columns[3:])

ALERTS = TableSpec("alerts", (_AS_OF,) + _GROUP_KEYS + (
    attr("kind", pa.string(), "", "raised | escalated | de-escalated | cleared"),
    attr("status", pa.string(), "", "status after the transition"),
    attr("previous_status", pa.string(), "", "status before"),
    attr("skew", pa.float64(), "", "signed skew"),
    attr("deviation", pa.float64(), "coins", "actual - target"),
    attr("deviation_usd", pa.float64(), "USD", "deviation * S"),
    attr("threshold_name", pa.string(), "", "threshold crossed"),
    attr("threshold_value", pa.float64(), "", "|skew| value of the threshold crossed"),
    attr("threshold_direction", pa.string(), "", "above | below"),
    attr("suggested_action", pa.string(), "", "proposed hedge or quote skew"),
), has_tags=True, tags_after="underlying", doc="the history's alerts dataset",
    stored_columns=_STORED)

REPORT = TableSpec("report", _GROUP_KEYS + (
    attr("n_runs", pa.int64(), "count", "runs in the period where the group was monitored"),
    attr("first_as_of", TIMESTAMP, "UTC", "first run of the group in the period"),
    attr("last_as_of", TIMESTAMP, "UTC", "last run of the group in the period"),
    attr("observed_minutes", pa.float64(), "minutes", "time covered by the group's runs"),
    attr("fraction_in_band", pa.float64(), "", "time with |skew| <= 1 / time observed"),
    attr("breach_count", pa.int64(), "count", "breach episodes (entries into breach or critical)"),
    attr("breach_minutes_total", pa.float64(), "minutes", "time in breach or critical"),
    attr("breach_minutes_longest", pa.float64(), "minutes", "longest breach episode"),
    attr("mean_time_to_recover_minutes", pa.float64(), "minutes",
         "mean time from entering breach to the first run back in band (null if none recovered)"),
    attr("mean_abs_skew", pa.float64(), "", "time-weighted mean |skew|"),
    attr("max_abs_skew", pa.float64(), "", "largest |skew|"),
    attr("worst_status", pa.string(), "", "worst status in the period"),
    attr("last_status", pa.string(), "", "status at the group's last run"),
    attr("hedge_proposals", pa.int64(), "count", "distinct hedge proposals in the period (a proposal "
                                                 "repeated unchanged at consecutive runs counts once)"),
    attr("hedge_contracts_abs", pa.float64(), "contracts", "sum of |contracts| over distinct proposals"),
    attr("hedge_coins_abs", pa.float64(), "coins", "sum of |coin_delta| over distinct proposals"),
    attr("hedge_est_cost_usd", pa.float64(), "USD", "sum of the distinct proposals' estimated cost"),
    attr("hedge_executed_coins_abs", pa.float64(), "coins",
         "coins of delta actually traded in the hedge instruments between runs, where known"),
), has_tags=True, tags_after="underlying", doc="report.parquet")

# ---------------------------------------------------------------------------------------------
# backtests and calibration (gpuskew backtest, gpuskew calibrate)

_POLICY_ID = key("policy_id", pa.string(), "id of a policy: a hash of its values (policies.parquet)")
_PATH = key("path", pa.int64(), "market path number, from 0")

BACKTEST_POLICIES = TableSpec("policies", (
    _POLICY_ID,
    attr("is_current", pa.bool_(), "", "the current limits (--limits), marked on the frontier"),
    attr("label", pa.string(), "", "the policy's axis values, axis=value joined by ', '"),
    key("axis", pa.string(), "a grid axis: the dotted key of the policies file (null: no axis)"),
    attr("value_json", pa.string(), "", "the policy's value on the axis, as JSON"),
    attr("value_number", pa.float64(), "", "the same value when it is a number, else null"),
), doc="policies.parquet: one row per policy and axis")

#: per-path results of a backtest (results.parquet), after the keys
BACKTEST_RESULT_COLUMNS: tuple[Column, ...] = (
    measure("book_pnl_usd", "USD", "book P&L: wealth (value + cash) at the end - at the start"),
    measure("hedge_pnl_usd", "USD", "P&L of the hedge position: sum of h dS"),
    measure("fees_usd", "USD", "fees paid on hedge trades (notional * fee)"),
    measure("spread_usd", "USD", "half spreads paid on hedge trades (notional * half_spread)"),
    measure("impact_usd", "USD", "price impact paid: notional * (impact + slope * notional)"),
    measure("funding_usd", "USD", "funding received on a perpetual hedge (signed: positive funding costs longs)"),
    measure("hedged_pnl_usd", "USD", "book + hedge - fees - spread - impact + funding"),
    measure("trades", "count", "hedge trades"),
    measure("turnover_coins", "coins", "sum of |traded coins|"),
    attr("time_in_band", pa.float64(), "", "fraction of steps with |skew| <= 1 (before the step's trade)"),
    attr("max_abs_skew", pa.float64(), "", "largest |skew| (before trades)"),
    measure("pnl_delta_usd", "USD", "sum of (book delta + hedge) dS"),
    measure("pnl_gamma_usd", "USD", "sum of gamma dS^2 / 2 (book)"),
    measure("pnl_theta_usd", "USD", "sum of theta dt, dt in days (book)"),
    measure("pnl_vega_usd", "USD", "sum of vega dL, dL the ATM vol change in vol points (book)"),
    measure("pnl_residual_usd", "USD", "hedged - (delta + gamma + theta + vega + funding - costs)"),
    attr("final_hedge_coins", pa.float64(), "coins", "hedge position at the end of the path"),
)
BACKTEST_RESULTS = TableSpec("results", (_POLICY_ID,) + _GROUP_KEYS + (_PATH,) + BACKTEST_RESULT_COLUMNS,
                             has_tags=True, tags_after="underlying",
                             doc="results.parquet: one row per policy x group x path")

BACKTEST_SUMMARY = TableSpec("backtest_summary", (_POLICY_ID,) + _GROUP_KEYS + (
    attr("is_current", pa.bool_(), "", "the current limits"),
    attr("hedge_instrument", pa.string(), "", "instrument the policy hedges the group with (null: never trades)"),
    attr("paths", pa.int64(), "count", "paths"),
    attr("mean_hedged_pnl_usd", pa.float64(), "USD", "mean hedged P&L over paths"),
    attr("std_hedged_pnl_usd", pa.float64(), "USD", "sample standard deviation of hedged P&L over paths"),
    attr("es_5pct_usd", pa.float64(), "USD", "expected shortfall: mean of the worst 5% hedged P&L (a P&L)"),
    attr("cost_at_risk_usd", pa.float64(), "USD", "-es_5pct_usd: the tail loss, costs included"),
    attr("ce_usd", pa.float64(), "USD", "certainty equivalent under exponential utility at risk_aversion"),
    attr("mean_cost_usd", pa.float64(), "USD", "mean fees + spread + impact"),
    attr("mean_fees_usd", pa.float64(), "USD", "mean fees"),
    attr("mean_spread_usd", pa.float64(), "USD", "mean half spreads paid"),
    attr("mean_impact_usd", pa.float64(), "USD", "mean impact"),
    attr("mean_funding_usd", pa.float64(), "USD", "mean funding received"),
    attr("mean_book_pnl_usd", pa.float64(), "USD", "mean book P&L"),
    attr("mean_hedge_pnl_usd", pa.float64(), "USD", "mean hedge P&L"),
    attr("mean_pnl_delta_usd", pa.float64(), "USD", "mean delta term"),
    attr("mean_pnl_gamma_usd", pa.float64(), "USD", "mean gamma term"),
    attr("mean_pnl_theta_usd", pa.float64(), "USD", "mean theta term"),
    attr("mean_pnl_vega_usd", pa.float64(), "USD", "mean vega term"),
    attr("mean_pnl_residual_usd", pa.float64(), "USD", "mean residual"),
    attr("mean_time_in_band", pa.float64(), "", "mean fraction of steps in band"),
    attr("mean_trades", pa.float64(), "count", "mean hedge trades per path"),
    attr("mean_turnover_coins", pa.float64(), "coins", "mean turnover per path"),
    attr("mean_max_abs_skew", pa.float64(), "", "mean over paths of the largest |skew|"),
    attr("frontier_rank", pa.int64(), "", "rank on the group's cost-risk frontier by cost (0: dominated)"),
), has_tags=True, tags_after="underlying", doc="summary.parquet: one row per policy x group")

BACKTEST_FRONTIER = TableSpec("frontier", (_POLICY_ID,) + _GROUP_KEYS + (
    attr("frontier_rank", pa.int64(), "", "1 = the cheapest policy of the frontier"),
    attr("is_current", pa.bool_(), "", "the current limits"),
    attr("mean_cost_usd", pa.float64(), "USD", "mean fees + spread + impact"),
    attr("std_hedged_pnl_usd", pa.float64(), "USD", "standard deviation of hedged P&L"),
    attr("mean_hedged_pnl_usd", pa.float64(), "USD", "mean hedged P&L"),
    attr("ce_usd", pa.float64(), "USD", "certainty equivalent"),
    attr("mean_time_in_band", pa.float64(), "", "mean fraction of steps in band"),
    attr("label", pa.string(), "", "the policy's axis values"),
), has_tags=True, tags_after="underlying",
    doc="frontier.parquet: per group, the policies non-dominated in mean cost and std of hedged P&L")

BACKTEST_TRACES = TableSpec("traces", (_POLICY_ID,) + _GROUP_KEYS + (
    _PATH,
    key("step", pa.int64(), "step of the path, from 0"),
    attr("time", TIMESTAMP, "UTC", "time of the step"),
    attr("spot", pa.float64(), "USD", "index price S"),
    attr("net_delta", pa.float64(), "coins", "book delta + hedge, before the step's trade"),
    attr("centre", pa.float64(), "coins", "band centre (target, plus Zakamouline's shift)"),
    attr("lower", pa.float64(), "coins", "lower band edge"),
    attr("upper", pa.float64(), "coins", "upper band edge"),
    attr("hedge_coins", pa.float64(), "coins", "hedge position after the step's trade"),
    attr("hedged_pnl_usd", pa.float64(), "USD", "cumulative hedged P&L to the end of the step"),
    attr("costs_usd", pa.float64(), "USD", "cumulative fees + spread + impact"),
), has_tags=True, tags_after="underlying", doc="traces.parquet: per-step state of the chosen policies")

CALIBRATION_CHOICES = TableSpec("calibration_choices", _GROUP_KEYS + (
    attr("window", pa.int64(), "", "walk-forward window (-1: the whole period)"),
    attr("current_policy_id", pa.string(), "", "policy of the current limits"),
    attr("chosen_policy_id", pa.string(), "", "policy the criterion picks"),
    attr("scale", pa.float64(), "", "the chosen band scale (multiple of the current band parameter)"),
    attr("criterion", pa.string(), "", "ce | cost_at_risk"),
    attr("current_score_usd", pa.float64(), "USD", "criterion value of the current limits"),
    attr("chosen_score_usd", pa.float64(), "USD", "criterion value of the chosen policy"),
    attr("unstable", pa.bool_(), "", "the choice moves more than 2x between walk-forward windows"),
), has_tags=True, tags_after="underlying", doc="choices.parquet of gpuskew calibrate")
# scenario risk and P&L explain (gpuskew scenarios, gpuskew explain)

#: scenarios.parquet: one row per group and scenario of the risk matrix (Deribit's layout).
SCENARIOS = TableSpec("scenarios", _GROUP_KEYS + (
    key("scenario", pa.int32(), "index in Deribit's risk-vector layout: 0-26 the standard table "
                                "(spot move major, vol down/same/up minor), 27+ the extended moves"),
    attr("spot_move", pa.float64(), "", "index move m as a fraction: S' = S (1 + m), every F' = F (1 + m)"),
    attr("vol_case", pa.string(), "", "down | same | up (Deribit's vol shock, per option)"),
    attr("extended", pa.bool_(), "", "an extended move (vol up, weighted)"),
    attr("weight", pa.float64(), "", "1 for the standard table; extended_table_factor * price_range / |move|"),
    measure("pnl_usd", "USD", "full revaluation V' - V summed over the group's positions"),
    measure("pnl_coin", "coins", "change of the group's value in coins, V'/S' - V/S (groups holding "
                                 "coin-settled positions; null otherwise)"),
    measure("pnl_taylor_usd", "USD", "Taylor estimate: delta dS + gamma dS^2/2 + vega dv + vanna dS dv "
                                     "+ volga dv^2/2"),
    attr("worst", pa.bool_(), "", "the group's worst weighted loss (smallest weight * pnl_usd)"),
), has_tags=True, tags_after="underlying", doc="scenarios.parquet")

#: risk_vectors.parquet: per instrument held, Deribit's risk vectors per contract.
RISK_VECTORS = TableSpec("risk_vectors", (
    key("instrument", pa.string(), "instrument held"),
    attr("underlying", pa.string(), "", "underlying of the instrument"),
    attr("kind", pa.string(), "", "spot | perpetual | future | option"),
    attr("settlement", pa.string(), "", "linear | inverse"),
    attr("settlement_currency", pa.string(), "",
         "currency of standard/extended: the underlying's coin for inverse instruments, USD for linear"),
    measure("standard", "settlement currency per contract", "the 27 standard scenario P&L per "
                                                           "contract (Deribit's 'standard' vector)",
            pa.list_(pa.float64())),
    measure("extended", "settlement currency per contract", "the extended scenario P&L per contract, "
                                                           "weighted (Deribit's 'extended' vector)",
            pa.list_(pa.float64())),
    measure("standard_usd", "USD per contract", "the standard vector in USD", pa.list_(pa.float64())),
    measure("extended_usd", "USD per contract", "the extended vector in USD, weighted", pa.list_(pa.float64())),
), doc="risk_vectors.parquet")

_EXPLAIN_TERMS: tuple[Column, ...] = (
    measure("actual", "USD", "V1 - V0: change of the value between the two runs"),
    measure("delta", "USD", "delta0 dS"),
    measure("gamma", "USD", "gamma0 dS^2 / 2"),
    measure("vega", "USD", "vega0 dv (dv in vol points)"),
    measure("theta", "USD", "theta0 dt (dt in days)"),
    measure("vanna", "USD", "vanna0 dS dv"),
    measure("volga", "USD", "volga0 dv^2 / 2"),
    measure("rho", "USD", "rho0 dr (dr in percentage points)"),
    measure("new_trades", "USD", "V1 - V0 of new, closed, resized and expired positions"),
    measure("residual", "USD", "actual minus the other terms (they add up to actual exactly, in this order)"),
)

#: explain.parquet: one row per group, actual = delta + ... + new_trades + residual.
EXPLAIN = TableSpec("explain", _GROUP_KEYS + (
    attr("from_as_of", TIMESTAMP, "UTC", "valuation time of the earlier run"),
    attr("to_as_of", TIMESTAMP, "UTC", "valuation time of the later run"),
    attr("n_matched", pa.int64(), "count", "positions held unchanged in both runs (explained by greeks)"),
    attr("n_changed", pa.int64(), "count", "new, closed, resized or expired positions (new_trades)"),
) + _EXPLAIN_TERMS + (
    attr("residual_flag", pa.bool_(), "", "|residual| above the threshold against |actual|"),
), has_tags=True, tags_after="underlying", doc="explain.parquet")

#: explain_positions.parquet (``--positions``): the same terms per position.
EXPLAIN_POSITIONS = TableSpec("explain_positions", (
    key("instrument", pa.string(), "instrument held"),
    key("occurrence", pa.int32(), "k-th row of this (instrument, tags) key in each run (from 0)"),
    attr("underlying", pa.string(), "", "underlying of the instrument"),
    attr("kind", pa.string(), "", "spot | perpetual | future | option"),
    attr("change", pa.string(), "", "held (unchanged) | new | closed | resized | expired"),
    attr("quantity_from", pa.float64(), "contracts", "quantity in the earlier run (null if new)"),
    attr("quantity_to", pa.float64(), "contracts", "quantity in the later run (null if closed)"),
) + _EXPLAIN_TERMS, has_tags=True, tags_after="instrument", doc="explain_positions.parquet")

#: Every output table, by name.
OUTPUT_SPECS: dict[str, TableSpec] = {spec.name: spec for spec in
                                      (POSITIONS_OUT, EXPOSURES, ADHERENCE, HEDGES, ALERTS, REPORT,
                                       BACKTEST_POLICIES, BACKTEST_RESULTS, BACKTEST_SUMMARY,
                                       BACKTEST_FRONTIER, BACKTEST_TRACES, CALIBRATION_CHOICES,
                                       SCENARIOS, RISK_VECTORS, EXPLAIN, EXPLAIN_POSITIONS)}

#: Names a position tag may not take: every column an output table declares (a tag of that name
#: would collide with it), and the history's own columns.
RESERVED_TAG_NAMES: frozenset[str] = frozenset(
    {name for spec in OUTPUT_SPECS.values() for name in spec.names}
    | {"run_id", "date", "group", "raw_status", "scenario", "policy_id", "path"}
)


def measure_fields() -> list[pa.Field]:
    """Arrow fields (float64, with unit metadata) of every per-position measure."""
    return [c.field() for c in MEASURE_COLUMNS]


def with_units(table: pa.Table, spec: TableSpec | None = None) -> pa.Table:
    """Attach ``unit``/``doc`` metadata to the declared columns of ``table`` (of ``spec``; without
    one, every column any declared table knows by that name) that have none yet."""
    known: dict[str, Column] = {}
    specs = [spec] if spec is not None else [*INPUT_SPECS.values(), *OUTPUT_SPECS.values()]
    for s in specs:
        for c in s.columns:
            known.setdefault(c.name, c)
    fields = []
    for field in table.schema:
        c = known.get(field.name)
        if c is not None and field.metadata is None:
            field = field.with_metadata({"unit": c.unit, "doc": c.doc})
        fields.append(field)
    return table.cast(pa.schema(fields, metadata=table.schema.metadata))


__all__ = [
    "KINDS", "SETTLEMENTS", "OPTION_TYPES", "SECONDS_PER_YEAR", "TIMESTAMP", "Column", "TableSpec",
    "INSTRUMENT_COLUMNS", "POSITION_COLUMNS", "UNDERLYING_COLUMNS", "QUOTE_COLUMNS", "INSTRUMENTS",
    "POSITIONS", "UNDERLYINGS", "QUOTES", "INPUT_TABLES", "INPUT_SPECS", "MEASURES", "MEASURE_NAMES",
    "N_MEASURES", "MEASURE_COLUMNS", "STATUS_OK", "STATUS_EXPIRED", "STATUS_NAMES", "POSITIONS_OUT",
    "EXPOSURES", "EXPOSURE_COLUMNS", "ADHERENCE_STATUSES", "ADHERENCE", "ADHERENCE_COLUMNS", "HEDGES",
    "HEDGE_COLUMNS", "ALERTS", "REPORT", "BACKTEST_POLICIES", "BACKTEST_RESULT_COLUMNS", "BACKTEST_RESULTS",
    "BACKTEST_SUMMARY", "BACKTEST_FRONTIER", "BACKTEST_TRACES", "CALIBRATION_CHOICES", "SCENARIOS",
    "RISK_VECTORS", "EXPLAIN", "EXPLAIN_POSITIONS", "OUTPUT_SPECS", "RESERVED_TAG_NAMES", "measure_fields",
    "with_units",
]

"""Corrective hedges: quantities, lot rounding, instrument choice, costs and sign conventions."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gpuskew.adherence import compute_adherence
from gpuskew.errors import InvalidConfig
from gpuskew.adherence.hedging import HEDGE_COLUMNS, propose_hedges, resolve_hedge_instruments
from gpuskew.policy.limits import load_example_limits, parse_limits
from gpuskew.schema import EXPOSURE_COLUMNS, MEASURE_NAMES, TIMESTAMP

AS_OF = dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.timezone.utc)
S = 100_000.0
F_PERP = 100_050.0
F_FUT = 101_000.0
FUNDING = 0.1


def exposures(rows):
    """Exposures with one tag column (desk); rows give underlying, desk, delta (and spot)."""
    cols = {"level": [], "underlying": [], "desk": []}
    cols.update({c[0]: [] for c in EXPOSURE_COLUMNS})
    for r in rows:
        cols["level"].append("desk")
        cols["underlying"].append(r.get("underlying", "BTC"))
        cols["desk"].append(r.get("desk", "a"))
        cols["spot"].append(r.get("spot", S))
        cols["n_positions"].append(1)
        cols["n_expired"].append(0)
        for m in MEASURE_NAMES:
            cols[m].append(float(r.get(m, r.get("delta", 0.0) if m == "delta_pa" else 0.0)))
    types = {"n_positions": pa.int64(), "n_expired": pa.int64()}
    return pa.table({k: pa.array(v, type=types.get(
        k, pa.string() if k in ("level", "underlying", "desk") else pa.float64()))
        for k, v in cols.items()})


def underlyings(spot=S, funding=FUNDING):
    return pa.table({"underlying": ["BTC", "ETH"], "spot": [spot, 2000.0], "rate": [0.0, 0.0],
                     "vol": [0.5, 0.6], "funding_rate": pa.array([funding, None], pa.float64())})


def instruments():
    exp = lambda y, m, d: dt.datetime(y, m, d, 8, tzinfo=dt.timezone.utc)  # noqa: E731
    rows = [
        ("BTC-PERPETUAL", "perpetual", "inverse", None, None, None, 10.0),
        ("BTC_USDC-PERPETUAL", "perpetual", "linear", None, None, None, 0.001),
        ("BTC", "spot", "linear", None, None, None, 1.0),
        ("BTC-25DEC26", "future", "inverse", None, None, exp(2026, 12, 25), 10.0),
        ("BTC-20NOV26", "future", "inverse", None, None, AS_OF, 10.0),
        ("BTC-25DEC26-100000-C", "option", "inverse", "call", 100_000.0, exp(2026, 12, 25), 1.0),
    ]
    return pa.table({
        "instrument": [r[0] for r in rows], "underlying": ["BTC"] * len(rows),
        "kind": [r[1] for r in rows], "settlement": [r[2] for r in rows],
        "option_type": pa.array([r[3] for r in rows], pa.string()),
        "strike": pa.array([r[4] for r in rows], pa.float64()),
        "expiry": pa.array([r[5] for r in rows], TIMESTAMP),
        "contract_size": [r[6] for r in rows]})


def quotes():
    return pa.table({"instrument": ["BTC-PERPETUAL", "BTC_USDC-PERPETUAL", "BTC-25DEC26"],
                     "iv": pa.array([None, None, None], pa.float64()),
                     "forward": [F_PERP, F_PERP, F_FUT]})


def hi(name, fee=0.0005, half_spread=0.0001, **kw):
    return {"instrument": name, "fee": fee, "half_spread": half_spread, **kw}


def run(rows, limits, ins=True):
    res = compute_adherence(exposures(rows), underlyings(), instruments() if ins else None,
                            quotes(), parse_limits(limits, "h.toml"), AS_OF)
    return res, res.hedges.to_pylist()


def limits_with(band, *his, target=None, hedge=None):
    d = {"band": band}
    if target:
        d["target"] = target
    if hedge:
        d["hedge"] = hedge
    return {"defaults": d, "hedge_instrument": list(his)}


# ---------------------------------------------------------------------------------------------
# hand-computed


def test_inverse_perp_to_target_hand_computed():
    lim = limits_with({"model": "fixed", "coins": 0.5}, hi("BTC-PERPETUAL"),
                      hedge={"mode": "to_target"})
    res, rows = run([dict(delta=1.0)], lim)
    (h,) = rows
    # coin delta per contract = 10 / 100050; need -1 coin -> -10005 contracts
    assert h["hedge_instrument"] == "BTC-PERPETUAL" and h["kind"] == "perpetual"
    assert h["settlement"] == "inverse" and h["mode"] == "to_target" and h["side"] == "sell"
    assert h["contracts"] == -10005.0
    assert h["coin_delta"] == pytest.approx(-1.0, rel=1e-12)
    assert h["notional_usd"] == pytest.approx(100_050.0, rel=1e-15)
    assert h["price_usd"] == F_PERP
    assert h["fee_usd"] == pytest.approx(50.025, rel=1e-12)
    assert h["spread_usd"] == pytest.approx(10.005, rel=1e-12)
    assert h["impact_usd"] == 0.0
    # a short receives positive funding: -100050 * 0.1 * 24/8760
    assert h["funding_usd"] == pytest.approx(-100_050.0 * 0.1 / 365.0, rel=1e-12)
    assert h["est_cost_usd"] == pytest.approx(50.025 + 10.005 - 100_050.0 * 0.1 / 365.0, rel=1e-12)
    assert h["pre_trade_delta"] == 1.0
    assert h["post_trade_delta"] == pytest.approx(0.0, abs=1e-12)
    assert h["post_trade_deviation"] == pytest.approx(0.0, abs=1e-12)
    assert h["lot_limited"] is False and h["level"] == "desk" and h["desk"] == "a"
    assert h["as_of"] == AS_OF


def test_linear_perp_to_band_rounds_away():
    lim = limits_with({"model": "fixed", "coins": 0.5}, hi("BTC_USDC-PERPETUAL"))
    _, rows = run([dict(delta=2.0)], lim)
    (h,) = rows
    # coin delta per contract = 0.001 * F / S = 0.0010005; need -1.5 -> x = -1499.25 -> -1500
    assert h["mode"] == "to_band" and h["contracts"] == -1500.0
    assert h["coin_delta"] == pytest.approx(-1.50075, rel=1e-12)
    assert h["post_trade_delta"] == pytest.approx(0.49925, rel=1e-12)  # inside the band
    assert h["notional_usd"] == pytest.approx(1500 * 0.001 * F_PERP, rel=1e-12)
    assert h["lot_limited"] is False
    # below the band: buy to the lower edge
    _, rows = run([dict(delta=-2.0)], lim)
    assert rows[0]["contracts"] == 1500.0 and rows[0]["side"] == "buy"
    assert rows[0]["post_trade_delta"] == pytest.approx(-0.49925, rel=1e-12)


def test_band_narrower_than_a_lot_is_flagged():
    lim = limits_with({"model": "fixed", "coins": 0.2}, hi("BTC", lot_size=1.0))
    _, rows = run([dict(delta=1.3)], lim)
    (h,) = rows
    # away (-2 BTC) overshoots to -0.7; one lot lands at 0.3, nearer the band: flagged
    assert h["contracts"] == -1.0 and h["post_trade_delta"] == pytest.approx(0.3)
    assert h["lot_limited"] is True


def test_cheapest_instrument_counts_funding():
    his = (hi("BTC-PERPETUAL", fee=0.0005, half_spread=0.0001),
           hi("BTC-25DEC26", fee=0.0006, half_spread=0.0001))
    lim = limits_with({"model": "fixed", "coins": 0.5}, *his, hedge={"mode": "to_target"})
    # a sale: the perp earns funding (0.1/365 = 2.7 bp) -> perp (6 bp - 2.7) beats future (7 bp)
    _, rows = run([dict(delta=1.0)], lim)
    assert rows[0]["hedge_instrument"] == "BTC-PERPETUAL"
    # a purchase: the perp pays funding (6 + 2.7 bp) -> the future (7 bp) is cheaper
    _, rows = run([dict(delta=-1.0)], lim)
    h = rows[0]
    assert h["hedge_instrument"] == "BTC-25DEC26" and h["kind"] == "future"
    assert h["funding_usd"] == 0.0 and h["price_usd"] == F_FUT
    # inverse future: coin delta = 10 / F_FUT per contract
    assert h["contracts"] == round(1.0 / (10.0 / F_FUT))
    assert h["est_cost_usd"] == pytest.approx(h["notional_usd"] * 0.0007, rel=1e-12)


def test_instrument_that_reaches_the_band_beats_a_cheaper_lot_limited_one():
    his = (hi("BTC", fee=0.0, half_spread=0.0, lot_size=1.0),
           hi("BTC-PERPETUAL", fee=0.001, half_spread=0.001))
    lim = limits_with({"model": "fixed", "coins": 0.2}, *his)
    _, rows = run([dict(delta=1.3)], lim)
    assert rows[0]["hedge_instrument"] == "BTC-PERPETUAL" and rows[0]["lot_limited"] is False


def test_min_size_bumps_and_flags():
    lim = limits_with({"model": "fixed", "coins": 1.0},
                      hi("BTC", lot_size=0.0001, min_size=0.01))
    _, rows = run([dict(delta=1.005)], lim)
    h = rows[0]
    assert h["contracts"] == pytest.approx(-0.01, rel=1e-12) and h["lot_limited"] is True
    assert h["notional_usd"] == pytest.approx(0.01 * S)  # spot at the index


def test_which_groups_get_proposals():
    his = (hi("BTC-PERPETUAL"),)
    band = {"model": "fixed", "coins": 1.0}
    rows = [dict(desk="in", delta=0.5), dict(desk="out", delta=3.0),
            dict(desk="eth", underlying="ETH", delta=100.0, spot=2000.0)]
    _, out = run(rows, limits_with(band, *his))
    assert [h["desk"] for h in out] == ["out"]  # in band: none; ETH: no hedge instrument
    lim = limits_with(band, *his)
    lim["group"] = [{"match": {"desk": "in"}, "hedge": {"propose_inside_band": True}},
                    {"match": {"desk": "out"}, "hedge": {"enabled": False}}]
    _, out = run(rows, lim)
    assert [(h["desk"], h["mode"]) for h in out] == [("in", "to_target")]  # inside: to target
    assert out[0]["post_trade_delta"] == pytest.approx(0.0, abs=10.0 / F_PERP)
    # a group restricted to another instrument gets nothing from this one
    lim = limits_with(band, *his, hi("BTC"))
    lim["group"] = [{"match": {"desk": "out"}, "hedge": {"instruments": ["BTC"]}}]
    _, out = run(rows, lim)
    assert [h["hedge_instrument"] for h in out] == ["BTC"]


def test_expired_future_is_not_proposed():
    lim = limits_with({"model": "fixed", "coins": 0.5}, hi("BTC-20NOV26"))
    res, rows = run([dict(delta=2.0)], lim)
    assert rows == [] and res.hedges.schema.names[-len(HEDGE_COLUMNS):] == [
        c[0] for c in HEDGE_COLUMNS]


def test_resolution_errors():
    def resolve(h, ins=True):
        return resolve_hedge_instruments(parse_limits({"hedge_instrument": [h]}, "h.toml"),
                                         instruments() if ins else None, quotes(), AS_OF)

    with pytest.raises(InvalidConfig) as ei:
        resolve(hi("BTC-25DEC26-100000-C"))
    assert ei.value.key == "hedge_instrument[0].instrument" and "option" in ei.value.rule
    with pytest.raises(InvalidConfig) as ei:
        resolve(hi("BTC-PERPETUAL", contract_size=1.0))
    assert ei.value.key == "hedge_instrument[0].contract_size" and "disagrees" in ei.value.rule
    with pytest.raises(InvalidConfig) as ei:
        resolve(hi("XBTUSD", underlying="BTC", kind="perpetual", settlement="inverse"))
    assert ei.value.key == "hedge_instrument[0].contract_size" and "inline" in ei.value.rule
    # inline definition when the table does not have it; spot settles linear by default
    (h,) = resolve(hi("XBT", underlying="BTC", kind="spot", contract_size=1.0), ins=False)
    assert h.settlement == "linear" and math.isnan(h.price)
    (h,) = resolve(hi("BTC-PERPETUAL"))
    assert (h.kind, h.settlement) == ("perpetual", "inverse")
    assert (h.contract_size, h.price) == (10.0, F_PERP)


def test_coin_delta_per_contract_conventions():
    lim = parse_limits({"hedge_instrument": [hi("BTC-PERPETUAL"), hi("BTC_USDC-PERPETUAL"),
                                             hi("BTC"), hi("BTC-25DEC26")]})
    by = {h.name: h for h in resolve_hedge_instruments(lim, instruments(), quotes(), AS_OF)}
    s = np.array([S])
    assert by["BTC-PERPETUAL"].coin_delta_per_contract(s)[0] == 10.0 / F_PERP
    assert by["BTC_USDC-PERPETUAL"].coin_delta_per_contract(s)[0] == pytest.approx(
        0.001 * F_PERP / S, rel=1e-15)
    assert by["BTC"].coin_delta_per_contract(s)[0] == 1.0
    assert by["BTC-25DEC26"].coin_delta_per_contract(s)[0] == 10.0 / F_FUT
    # no quote: the index
    lim = parse_limits({"hedge_instrument": [hi("BTC-PERPETUAL")]})
    (h,) = resolve_hedge_instruments(lim, instruments(), None, AS_OF)
    assert h.coin_delta_per_contract(s)[0] == 10.0 / S


def test_propose_hedges_on_an_adherence_table_directly():
    lim = limits_with({"model": "fixed", "coins": 0.5}, hi("BTC-PERPETUAL"))
    res, rows = run([dict(delta=2.0)], lim)
    again = propose_hedges(res.table, underlyings(), instruments(), quotes(),
                           parse_limits(lim), AS_OF)
    assert again.to_pylist() == rows
    assert again.schema.field("contracts").type == pa.float64()
    assert again.schema.field("lot_limited").type == pa.bool_()
    assert again.schema.field("est_cost_usd").metadata[b"unit"] == b"USD"


# ---------------------------------------------------------------------------------------------
# properties

KINDS = {  # name -> (kind, settlement, contract_size) defined inline (no instruments table)
    "SPOT": ("spot", "linear", 1.0),
    "LPERP": ("perpetual", "linear", 0.001),
    "IPERP": ("perpetual", "inverse", 10.0),
    "IFUT": ("future", "inverse", 100.0),
}
#: inline expiry of the future (a date alone: 08:00 UTC), a year after AS_OF
EXPIRY = {"IFUT": "2027-11-26"}


@st.composite
def scenario(draw):
    name = draw(st.sampled_from(sorted(KINDS)))
    kind, settle, cs = KINDS[name]
    lot = draw(st.sampled_from([1.0, 5.0, 0.1, 0.0001] if kind == "spot" else [1.0, 10.0, 100.0]))
    premium = draw(st.floats(-0.02, 0.02))
    target = draw(st.floats(-20, 20))
    lo = draw(st.floats(0.0, 10.0))
    up = draw(st.floats(0.0, 10.0))
    actual = draw(st.floats(-60, 60))
    mode = draw(st.sampled_from(["to_band", "to_target"]))
    measure = draw(st.sampled_from(["delta", "delta_pa"]))
    return name, kind, settle, cs, lot, premium, target, lo, up, actual, mode, measure


def run_scenario(sc):
    name, kind, settle, cs, lot, premium, target, lo, up, actual, mode, measure = sc
    lim = {"defaults": {"measure": measure,
                        "band": {"model": "fixed", "lower_coins": lo, "upper_coins": up},
                        "target": {"model": "fixed", "coins": target},
                        "hedge": {"mode": mode}},
           "hedge_instrument": [hi(name, underlying="BTC", kind=kind, settlement=settle,
                                   contract_size=cs, lot_size=lot,
                                   **({"expiry": EXPIRY[name]} if name in EXPIRY else {}))]}
    q = pa.table({"instrument": [name], "iv": pa.array([None], pa.float64()),
                  "forward": [S * (1 + premium)]})
    # the managed measure is the one moved: give the other one a different value
    other = "delta_pa" if measure == "delta" else "delta"
    row = {"delta": 0.0, "delta_pa": 0.0}
    row[measure] = actual
    row[other] = actual + 7.0
    res = compute_adherence(exposures([row]), underlyings(), None, q,
                            parse_limits(lim), AS_OF)
    f = S if kind == "spot" else S * (1 + premium)
    per_contract = cs if kind == "spot" else (cs * f / S if settle == "linear" else cs / f)
    return res, lot * per_contract


@settings(max_examples=150, deadline=None)
@given(scenario())
def test_hedge_properties(sc):
    name, kind, settle, cs, lot, premium, target, lo, up, actual, mode, measure = sc
    res, lot_delta = run_scenario(sc)
    lower, upper = target - lo, target + up
    out = actual > upper or actual < lower
    hedges = res.hedges.to_pylist()
    if not out:
        assert hedges == []
        return
    assume(hedges)  # a trade that rounds to zero lots gives no row
    (h,) = hedges
    tol = 1e-9 * max(1.0, lot_delta, abs(actual))
    assert h["pre_trade_delta"] == actual
    # contracts are whole lots, coin delta = contracts * per-contract delta
    assert h["contracts"] / lot == pytest.approx(round(h["contracts"] / lot), abs=1e-6)
    assert h["coin_delta"] == pytest.approx(h["contracts"] * lot_delta / lot, rel=1e-12)
    assert h["post_trade_delta"] == pytest.approx(actual + h["coin_delta"], rel=1e-12, abs=1e-12)
    # sign conventions, long or short, coin- or USD-margined: sell when above, buy when below
    if actual > upper:
        assert h["side"] == "sell" and h["contracts"] < 0 and h["coin_delta"] < 0
    else:
        assert h["side"] == "buy" and h["contracts"] > 0 and h["coin_delta"] > 0
    assert h["est_cost_usd"] == pytest.approx(
        h["fee_usd"] + h["spread_usd"] + h["impact_usd"] + h["funding_usd"], rel=1e-12, abs=1e-9)
    assert h["fee_usd"] >= 0 and h["spread_usd"] >= 0
    if kind == "perpetual":  # long pays positive funding, short receives it
        assert np.sign(h["funding_usd"]) == np.sign(h["contracts"])
    else:
        assert h["funding_usd"] == 0.0
    post = h["post_trade_delta"]
    if mode == "to_band":
        assert h["mode"] == "to_band"
        if upper - lower >= lot_delta * (1 + 1e-9):
            assert not h["lot_limited"]
        if not h["lot_limited"]:
            assert lower - tol <= post <= upper + tol
        # never overshoots by more than the rounding needs
        edge = upper if actual > upper else lower
        assert abs(h["coin_delta"]) <= abs(actual - edge) + lot_delta + tol
    else:
        assert h["mode"] == "to_target"
        assert abs(h["post_trade_deviation"]) <= lot_delta / 2 + tol
        assert h["post_trade_deviation"] == pytest.approx(post - target, abs=1e-9)


def test_example_limits_hedges_on_the_demo_book(demo_adherence):
    _, res = demo_adherence
    h, t = res.hedges, res.table
    cols = ("level", "underlying", "desk", "book")
    keys = list(zip(*(t.column(c).to_pylist() for c in cols)))
    out = {k for k, sk in zip(keys, t.column("skew").to_pylist())
           if abs(sk) > 1 and k[0] != "underlying"}  # totals: monitoring only in the example
    got = set(zip(*(h.column(c).to_pylist() for c in cols)))
    assert out and out <= got
    assert not any(k[0] == "underlying" for k in got)
    limits = load_example_limits()  # the file the fixture used
    for row in h.to_pylist():
        lots = row["contracts"] / limits.hedge_instrument(row["hedge_instrument"]).lot_size
        assert lots == pytest.approx(round(lots), abs=1e-6) and lots != 0


# ---------------------------------------------------------------------------------------------
# the kernel's rules, shared with the backtests


def test_to_target_honours_the_hedge_fraction():
    """hedge.fraction (kernels.policy.trade_coins, the backtests' rule too): a to_target proposal goes
    that fraction of the way, in whole lots."""
    lim = limits_with({"model": "fixed", "coins": 0.5}, hi("BTC", lot_size=0.01),
                      hedge={"mode": "to_target", "fraction": 0.5})
    res, rows = run([dict(delta=4.0)], lim)
    (h,) = rows
    assert h["contracts"] == pytest.approx(-2.0, abs=1e-12) and h["post_trade_delta"] == pytest.approx(2.0)


def test_a_zakamouline_band_takes_its_cost_from_the_cheapest_hedge():
    lim = limits_with({"model": "zakamouline", "risk_aversion": 1e-4}, hi("BTC", fee=0.001, half_spread=0.0005))
    res, _ = run([dict(delta=4.0, gamma=0.002)], lim)
    explicit = limits_with({"model": "zakamouline", "risk_aversion": 1e-4, "cost": 0.0015},
                           hi("BTC", fee=0.001, half_spread=0.0005))
    res2, _ = run([dict(delta=4.0, gamma=0.002)], explicit)
    assert res.table["half_width_upper"].to_pylist() == res2.table["half_width_upper"].to_pylist()
    assert res.table["half_width_upper"][0].as_py() > 0


def test_each_hedge_instruments_forward_is_computed_once_per_proposal(monkeypatch):
    """The forward F of a hedge instrument (its price, the entry of its per-contract deltas, its
    notional) is computed once per instrument per call, by the kernels over every group at once."""
    from gpuskew.adherence.hedging import HedgeInstrument
    from gpuskew.kernels import cpu

    real, calls = cpu.forwards, []
    monkeypatch.setattr(cpu, "forwards", lambda *a: calls.append(a[1].size) or real(*a))
    lim = limits_with({"model": "fixed", "coins": 0.5}, hi("BTC-PERPETUAL"), hi("BTC_USDC-PERPETUAL"),
                      hedge={"mode": "to_target"})
    res, rows = run([dict(delta=1.0, desk="a"), dict(delta=-2.0, desk="b"), dict(delta=0.1, desk="c")], lim)
    assert calls == [3, 3] and len(rows) == 2
    calls.clear()
    h = resolve_hedge_instruments(parse_limits(lim, "h.toml"), instruments(), quotes(), AS_OF, underlyings())[1]
    assert isinstance(h, HedgeInstrument) and h.settlement == "linear"
    s = np.array([[90_000.0, 100_000.0], [110_000.0, 120_000.0]])
    F, d, dpa = h.per_contract(s)
    assert F.shape == d.shape == dpa.shape == s.shape and calls == [4]
    np.testing.assert_array_equal(d, h.coin_delta_per_contract(s))
    np.testing.assert_array_equal(dpa, h.coin_delta_per_contract(s, "delta_pa"))
    np.testing.assert_array_equal(h.notional_usd(np.full(s.shape, 2.0), s), 2.0 * h.contract_size * F)

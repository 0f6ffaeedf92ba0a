"""Adherence per group and the portfolio score, on exposures tables built by hand."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gpuskew.adherence import adherence_score, compute_adherence, finest_level, statuses
from gpuskew.errors import InvalidConfig, InvalidInput
from gpuskew.policy.limits import parse_limits
from gpuskew.schema import ADHERENCE_COLUMNS, EXPOSURE_COLUMNS, MEASURE_NAMES, TIMESTAMP

AS_OF = dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.timezone.utc)
SPOTS = {"BTC": 100_000.0, "ETH": 2_000.0, "USDC": 1.0}
VOLS = {"BTC": 0.5, "ETH": 0.7, "USDC": None}
FUNDING = {"BTC": 0.1, "ETH": 0.05, "USDC": None}


def exposures(rows: list[dict], tags: tuple[str, ...] = ("desk",)) -> pa.Table:
    """An exposures table as the engine writes it: level, underlying, tags, spot, counts, measures.

    Each row gives level, underlying, tag values and any measures (others 0); delta_pa defaults
    to delta, spot to SPOTS[underlying].
    """
    cols: dict[str, list] = {"level": [], "underlying": []}
    cols.update({t: [] for t in tags})
    cols.update({c[0]: [] for c in EXPOSURE_COLUMNS})
    for r in rows:
        u = r["underlying"]
        cols["level"].append(r.get("level", ",".join(tags)))
        cols["underlying"].append(u)
        for t in tags:
            cols[t].append(r.get(t))
        cols["spot"].append(r.get("spot", SPOTS.get(u, 1.0)))
        cols["n_positions"].append(1)
        cols["n_expired"].append(0)
        for m in MEASURE_NAMES:
            v = r.get(m, 0.0)
            if m == "delta_pa":
                v = r.get("delta_pa", r.get("delta", 0.0))
            cols[m].append(float(v))
    types = {"n_positions": pa.int64(), "n_expired": pa.int64()}
    return pa.table({k: pa.array(v, type=types.get(k, pa.string() if k in ("level", "underlying")
                                                   or k in tags else pa.float64()))
                     for k, v in cols.items()})


def underlyings(spots=SPOTS, vols=VOLS, funding=FUNDING) -> pa.Table:
    names = list(spots)
    return pa.table({"underlying": names, "spot": [spots[u] for u in names],
                     "rate": [0.0] * len(names),
                     "vol": pa.array([vols.get(u) for u in names], pa.float64()),
                     "funding_rate": pa.array([funding.get(u) for u in names], pa.float64())})


LIMITS = {
    "defaults": {"band": {"model": "fixed", "coins": 2},
                 "quote": {"risk_aversion": 1e-6, "tau_hours": 1}},
    "underlying": {"ETH": {"band": {"model": "fixed", "lower_coins": 10, "upper_coins": 20}},
                   "USDC": {"enabled": False}},
    "group": [{"match": {"desk": "b"}, "target": {"model": "fixed", "coins": 1}}],
}

ROWS = [
    dict(level="underlying", underlying="BTC", delta=3.0),
    dict(underlying="BTC", desk="a", delta=1.6),
    dict(underlying="BTC", desk="b", delta=3.5),
    dict(underlying="BTC", desk="c", delta=-5.0),
    dict(underlying="ETH", desk="a", delta=-15.0),
    dict(underlying="ETH", desk="b", delta=18.0),
]


def run(rows=ROWS, limits=LIMITS, tags=("desk",), **kw):
    return compute_adherence(exposures(rows, tags), underlyings(), None, None,
                             parse_limits(limits, "test.toml"), AS_OF, **kw)


def test_hand_computed_groups():
    res = run()
    t = res.table.to_pydict()
    assert t["level"] == ["underlying", "desk", "desk", "desk", "desk", "desk"]
    assert t["desk"] == [None, "a", "b", "c", "a", "b"]
    assert t["actual"] == [3.0, 1.6, 3.5, -5.0, -15.0, 18.0]
    assert t["target"] == [0.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    assert t["half_width_lower"] == [2.0, 2.0, 2.0, 2.0, 10.0, 10.0]
    assert t["half_width_upper"] == [2.0, 2.0, 2.0, 2.0, 20.0, 20.0]
    assert t["lower"] == [-2.0, -2.0, -1.0, -2.0, -10.0, -9.0]
    assert t["upper"] == [2.0, 2.0, 3.0, 2.0, 20.0, 21.0]
    assert t["deviation"] == [3.0, 1.6, 2.5, -5.0, -15.0, 17.0]
    np.testing.assert_allclose(t["deviation_usd"], [3e5, 1.6e5, 2.5e5, -5e5, -30_000, 34_000])
    np.testing.assert_allclose(t["skew"], [1.5, 0.8, 1.25, -2.5, -1.5, 0.85], rtol=1e-15)
    # strictly above a threshold: 0.8 is ok, 1.5 is breach
    assert t["status"] == ["breach", "ok", "breach", "critical", "breach", "warn"]
    assert t["measure"] == ["delta"] * 6
    assert t["target_model"] == ["neutral", "neutral", "fixed", "neutral", "neutral", "fixed"]
    assert t["band_model"] == ["fixed"] * 6
    np.testing.assert_allclose(t["risk_weight_usd"], [3e5, 1.6e5, 2.5e5, 5e5, 30_000, 34_000])
    # -q gamma (sigma S)^2 tau: -1.6 * 1e-6 * (0.5 * 1e5)^2 / 8760
    assert t["reservation_offset_usd"][1] == pytest.approx(-4000.0 / 8760.0, rel=1e-14)
    assert t["reservation_offset_usd"][5] == pytest.approx(-17e-6 * 1400.0**2 / 8760.0, rel=1e-14)
    np.testing.assert_allclose(t["bid_size_mult"], [0.0, 0.2, 0.0, 2.0, 2.0, 0.15], atol=1e-15)
    np.testing.assert_allclose(t["ask_size_mult"], [2.0, 1.8, 2.0, 0.0, 0.0, 1.85], atol=1e-15)
    assert set(t["as_of"]) == {AS_OF}
    # score over the finest level ("desk"): sum S min(|d|, w) / sum S |d|
    assert res.score_level == "desk"
    assert res.score == pytest.approx(614_000.0 / 974_000.0, rel=1e-14)
    assert res.worst_status_by_underlying == {"BTC": "critical", "ETH": "breach"}


def test_output_schema():
    res = run()
    names = res.table.column_names
    assert names == ["as_of", "level", "underlying", "desk"] + [c[0] for c in ADHERENCE_COLUMNS]
    sch = res.table.schema
    assert sch.field("as_of").type == TIMESTAMP
    for name, unit, _ in ADHERENCE_COLUMNS:
        f = sch.field(name)
        assert f.metadata[b"unit"].decode() == unit
        want = pa.string() if name in ("measure", "status", "target_model", "band_model") \
            else pa.float64()
        assert f.type == want, name


def test_score_is_one_in_band_and_ignores_coarser_levels():
    rows = [dict(level="underlying", underlying="BTC", delta=50.0),  # far out, coarser level
            dict(underlying="BTC", desk="a", delta=1.8),
            dict(underlying="BTC", desk="b", delta=1.0),  # b's target is 1 coin
            dict(underlying="ETH", desk="a", delta=-10.0)]  # exactly on the lower edge
    res = run(rows)
    assert res.score == 1.0
    assert res.table.column("status").to_pylist() == ["critical", "warn", "ok", "warn"]
    assert run(rows, score_level="underlying").score == pytest.approx(2.0 / 50.0)
    # all deviations zero: score 1
    assert run([dict(underlying="BTC", desk="a", delta=0.0)]).score == 1.0


def test_two_tag_levels_finest_wins():
    rows = [dict(level="desk", underlying="BTC", desk="a", delta=10.0),
            dict(level="desk,book", underlying="BTC", desk="a", book="x", delta=1.0),
            dict(level="desk,book", underlying="BTC", desk="a", book="y", delta=9.0)]
    res = run(rows, tags=("desk", "book"))
    assert res.score_level == "desk,book"
    # x in band (1 of 1), y: min(9, 2) of 9 -> (1 + 2) / (1 + 9)
    assert res.score == pytest.approx(0.3, rel=1e-14)
    assert finest_level(["underlying", "desk", "desk,book", "book"]) == "desk,book"


def test_measure_delta_pa_and_disabled_groups_and_cash_in_base_pct():
    limits = {
        "defaults": {"band": {"model": "fixed", "coins": 5}},
        "underlying": {"USDC": {"enabled": False}},
        "group": [{"match": {"desk": "mm"}, "measure": "delta_pa"},
                  {"match": {"desk": "treasury"},
                   "target": {"model": "base_pct", "share": 0.5}}],
    }
    rows = [dict(underlying="BTC", desk="mm", delta=1.0, delta_pa=-1.5),
            dict(underlying="BTC", desk="treasury", delta=10.0, value_usd=1e6),
            dict(underlying="USDC", desk="treasury", delta=3e6, value_usd=3e6)]
    res = run(rows, limits)
    t = res.table.to_pydict()
    assert t["desk"] == ["mm", "treasury"]  # the USDC row is not monitored
    assert t["measure"] == ["delta_pa", "delta"]
    assert t["actual"] == [-1.5, 10.0]
    # V = 1M of BTC + 3M of USDC cash; 50% of 4M at 100k = 20 BTC
    assert t["target"][1] == pytest.approx(20.0, rel=1e-15)
    assert t["status"] == ["ok", "critical"]


def test_var_band_and_carry_target_through_adherence():
    limits = {"defaults": {"band": {"model": "var", "budget_usd": 1e6, "confidence": 0.99},
                           "target": {"model": "carry", "risk_aversion": 1e-6,
                                      "max_coins": 100}}}
    res = run([dict(underlying="BTC", desk="a", delta=0.0)], limits)
    t = res.table.to_pydict()
    assert t["target"][0] == pytest.approx(-4.0, rel=1e-14)  # -0.1 / (1e-6 * 0.25 * 1e5)
    hw = 1e6 / (2.3263478740408408 * 0.5 * 1e5 * (1 / 365) ** 0.5)
    assert t["half_width_lower"][0] == pytest.approx(hw, rel=1e-12)
    assert t["skew"][0] == pytest.approx(4.0 / hw, rel=1e-12)


def test_missing_vol_is_an_input_error():
    limits = {"defaults": {"band": {"model": "var", "budget_usd": 1e6}}}
    ex = exposures([dict(underlying="BTC", desk="a", delta=1.0)])
    with pytest.raises(InvalidInput) as ei:
        compute_adherence(ex, underlyings(vols={"BTC": None}), None, None, parse_limits(limits),
                          AS_OF)
    assert ei.value.column == "vol" and "BTC" in str(ei.value) and "defaults.band" in str(ei.value)
    # quote skew without a vol: no offset (null), not an error
    limits = {"defaults": {"band": {"model": "fixed", "coins": 1},
                           "quote": {"risk_aversion": 1e-6}}}
    res = compute_adherence(ex, underlyings(vols={"BTC": None}), None, None, parse_limits(limits),
                            AS_OF)
    assert res.table.column("reservation_offset_usd").to_pylist() == [None]


def test_no_quote_risk_aversion_gives_null_offset():
    res = run([dict(underlying="BTC", desk="a", delta=1.0)],
              {"defaults": {"band": {"model": "fixed", "coins": 2}}})
    assert res.table.column("reservation_offset_usd").null_count == 1


def test_whalley_wilmott_cost_from_the_cheapest_allowed_hedge():
    his = [{"instrument": "P", "underlying": "BTC", "kind": "perpetual", "settlement": "inverse",
            "contract_size": 10, "fee": 0.0015, "half_spread": 0.0005},
           {"instrument": "S", "underlying": "BTC", "kind": "spot", "contract_size": 1,
            "fee": 0.001, "half_spread": 0.0005, "impact": 0.0005}]
    base = {"defaults": {"band": {"model": "whalley_wilmott", "risk_aversion": 0.0006}},
            "hedge_instrument": his}
    # gamma such that 3 * 0.002 * S * G^2 / (2 * 0.0006) = 8 with S = 1000 -> H = 2
    rows = [dict(underlying="BTC", desk="a", delta=1.0, gamma=0.04, spot=1000.0)]
    t = run(rows, base).table.to_pydict()
    assert t["half_width_upper"][0] == pytest.approx(2.0, rel=1e-14)
    # restricting the group to the spot (same cost 0.002): same H
    lim = dict(base, group=[{"match": {"desk": "a"}, "hedge": {"instruments": ["S"]}}])
    assert run(rows, lim).table.column("half_width_upper")[0].as_py() == pytest.approx(2.0)
    # no hedge on the underlying and no cost: a config error naming the key
    with pytest.raises(InvalidConfig) as ei:
        run([dict(underlying="ETH", desk="a", delta=1.0, gamma=0.01)], base)
    assert ei.value.key == "defaults.band.cost" and "ETH" in ei.value.rule


def test_statuses_and_score_helpers():
    s = statuses(np.array([0.0, 0.8, 0.81, 1.0, 1.01, 1.5, -1.51, np.inf]), 0.8, 1.0, 1.5)
    assert s.tolist() == ["ok", "ok", "warn", "warn", "breach", "breach", "critical", "critical"]
    assert adherence_score(np.array([]), np.array([]), np.array([]), np.array([])) == 1.0
    # zero width: a deviating group contributes nothing to the numerator
    assert adherence_score(np.array([1.0, 1.0]), np.zeros(2), np.array([0.0, 1.0]),
                           np.ones(2)) == 0.5


def test_empty_exposures():
    res = run([])
    assert res.table.num_rows == 0 and res.hedges.num_rows == 0 and res.score == 1.0
    assert res.worst_status_by_underlying == {}


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.floats(-50, 50), st.floats(0.01, 10), st.floats(0.01, 10),
                          st.floats(-5, 5)), min_size=1, max_size=8))
def test_adherence_properties(groups):
    """Skew sign and size against the band, score in [0, 1], and 1 exactly when all in band."""
    # a position within rounding of a band edge may land on either side of |skew| = 1
    assume(all(min(abs(x - (t - lo)), abs(x - (t + up))) > 1e-9 for x, lo, up, t in groups))
    lim = {"defaults": {"band": {"model": "fixed", "coins": 1}}, "group": []}
    rows = []
    for i, (x, lo, up, tgt) in enumerate(groups):
        lim["group"].append({"match": {"desk": f"d{i}"},
                             "band": {"model": "fixed", "lower_coins": lo, "upper_coins": up},
                             "target": {"model": "fixed", "coins": tgt}})
        rows.append(dict(underlying="BTC", desk=f"d{i}", delta=x))
    res = run(rows, lim)
    t = res.table.to_pydict()
    inside_all = True
    for i, (x, lo, up, tgt) in enumerate(groups):
        inside = t["lower"][i] <= x <= t["upper"][i]
        inside_all &= inside
        assert (abs(t["skew"][i]) <= 1.0) == inside
        assert np.sign(t["skew"][i]) == np.sign(x - tgt) or t["skew"][i] == 0.0
        assert (t["status"][i] in ("breach", "critical")) == (not inside)
        assert t["bid_size_mult"][i] + t["ask_size_mult"][i] == pytest.approx(2.0)
    assert 0.0 <= res.score <= 1.0
    assert (res.score == 1.0) == inside_all or all(d == 0 for d in t["deviation"])


def test_example_limits_on_the_demo_book(demo_adherence):
    """End to end: the engine's exposures of the demo book against the shipped example limits."""
    _, res = demo_adherence
    t = res.table
    assert t.num_rows > 0 and 0.0 <= res.score <= 1.0 and res.score_level == "desk,book"
    assert "USDC" not in set(t.column("underlying").to_pylist())
    assert set(t.column("target_model").to_pylist()) == {"neutral", "fixed", "base_pct", "carry"}
    assert set(t.column("band_model").to_pylist()) == {"fixed", "var", "whalley_wilmott", "zakamouline"}
    assert np.isfinite(t.column("skew").to_numpy()).all()
    assert set(res.worst_status_by_underlying) == {"BTC", "ETH", "SOL", "XRP"}

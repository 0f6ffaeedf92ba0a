"""The limits file: parsing, resolution order, and errors that name the key path."""

from __future__ import annotations

import copy

import pytest

from gpuskew.errors import EXIT_INVALID, InvalidConfig
from gpuskew.policy.limits import (
    BAND_MODELS,
    TARGET_MODELS,
    example_limits_path,
    load_example_limits,
    load_limits,
    parse_limits,
)

BASE = {
    "defaults": {"band": {"model": "fixed", "usd": 100_000}},
    "hedge_instrument": [
        {"instrument": "BTC-PERPETUAL", "underlying": "BTC", "kind": "perpetual",
         "settlement": "inverse", "contract_size": 10, "fee": 0.0005, "half_spread": 0.0001},
    ],
}


def cfg(**sections):
    m = copy.deepcopy(BASE)
    for k, v in sections.items():
        m[k] = v
    return m


# ---------------------------------------------------------------------------------------------
# the shipped example


def test_example_file_parses_and_uses_every_model():
    limits = load_example_limits()
    assert example_limits_path().name == "limits.example.toml"
    text = example_limits_path().read_text()
    for m in TARGET_MODELS + BAND_MODELS:
        assert f'model = "{m}"' in text, m
    names = {h.instrument for h in limits.hedge_instruments}
    assert {"BTC-PERPETUAL", "ETH-PERPETUAL", "BTC_USDC-PERPETUAL", "ETH_USDC-PERPETUAL",
            "SOL_USDC-PERPETUAL", "XRP_USDC-PERPETUAL", "BTC", "ETH", "SOL", "XRP"} <= names
    kinds = {(h.kind, h.settlement) for h in limits.hedge_instruments}
    assert {("spot", "linear"), ("perpetual", "linear"), ("perpetual", "inverse"),
            ("future", "inverse")} <= kinds
    # every desk of the demo book resolves to an enabled policy with a band
    for desk in ("options-mm", "delta-one", "vol-arb", "treasury"):
        for u in ("BTC", "ETH", "SOL", "XRP"):
            p = limits.policy_for({"level": "desk", "underlying": u, "desk": desk})
            assert p.enabled and p.band is not None
    assert not limits.policy_for({"level": "underlying", "underlying": "USDC"}).enabled
    p = limits.policy_for({"level": "desk", "underlying": "BTC", "desk": "options-mm"})
    assert p.measure == "delta_pa" and p.band.model == "whalley_wilmott"
    p = limits.policy_for({"level": "desk", "underlying": "ETH", "desk": "treasury"})
    assert p.target.model == "base_pct" and p.target.share == 0.11


def test_example_hedge_instruments_resolve_against_the_demo_book():
    from gpuskew.synthetic import demo
    from gpuskew.adherence.hedging import resolve_hedge_instruments

    book = demo.make_demo_book(200)
    limits = load_example_limits()
    resolved = resolve_hedge_instruments(limits, book["instruments"], book["quotes"],
                                         demo.DEMO_AS_OF)
    assert {h.name for h in resolved} == {h.instrument for h in limits.hedge_instruments}
    perp = next(h for h in resolved if h.name == "BTC-PERPETUAL")
    assert perp.price > 0  # the demo quotes a perpetual mark


# ---------------------------------------------------------------------------------------------
# resolution order


def test_resolution_order_defaults_underlying_groups():
    m = cfg(
        defaults={"band": {"model": "fixed", "usd": 100_000}, "thresholds": {"warn": 0.7},
                  "quote": {"risk_aversion": 1e-6, "tau_hours": 2}},
        underlying={"BTC": {"band": {"model": "fixed", "coins": 5}, "measure": "delta_pa",
                            "quote": {"tau_hours": 4}}},
        group=[
            {"match": {"desk": "mm", "underlying": "BTC"}, "thresholds": {"critical": 3.0}},
            {"match": {"desk": "mm"}, "band": {"model": "fixed", "coins": 1},
             "thresholds": {"critical": 2.0}},
            {"match": {"desk": ["mm", "arb"]}, "hysteresis": 0.3},
            {"match": {"desk": "mm"}, "hysteresis": 0.2},
        ],
    )
    limits = parse_limits(m, "t.toml")
    eth = limits.policy_for({"level": "desk", "underlying": "ETH", "desk": "other"})
    assert eth.band.lower_usd == 100_000 and eth.measure == "delta"
    assert (eth.thresholds.warn, eth.thresholds.breach, eth.thresholds.critical) == (0.7, 1.0, 1.5)
    assert eth.quote.tau_hours == 2 and eth.hysteresis == 0.1

    btc = limits.policy_for({"level": "desk", "underlying": "BTC", "desk": "other"})
    assert btc.band.lower_coins == 5 and btc.measure == "delta_pa"
    assert btc.quote.risk_aversion == 1e-6 and btc.quote.tau_hours == 4  # merged key by key

    mm_btc = limits.policy_for({"level": "desk", "underlying": "BTC", "desk": "mm"})
    # group[1] (1 key) beats underlying.BTC; group[0] (2 keys) beats group[1] although earlier
    assert mm_btc.band.lower_coins == 1 and mm_btc.thresholds.critical == 3.0
    assert mm_btc.thresholds.warn == 0.7 and mm_btc.measure == "delta_pa"
    # equal specificity: the later entry wins
    assert mm_btc.hysteresis == 0.2
    assert mm_btc.sections == ("defaults", "underlying.BTC", "group[1]", "group[2]", "group[3]",
                               "group[0]")
    arb = limits.policy_for({"level": "desk", "underlying": "ETH", "desk": "arb"})
    assert arb.hysteresis == 0.3
    # a group whose tag is missing (underlying totals) matches no desk entry
    tot = limits.policy_for({"level": "underlying", "underlying": "BTC", "desk": None})
    assert tot.band.lower_coins == 5 and tot.hysteresis == 0.1


def test_target_and_band_tables_replace_whole():
    m = cfg(defaults={"band": {"model": "var", "budget_usd": 1e6, "confidence": 0.95},
                      "target": {"model": "fixed", "coins": 3}},
            group=[{"match": {"desk": "d"}, "band": {"model": "fixed", "coins": 2},
                    "target": {"model": "neutral"}}])
    p = parse_limits(m).policy_for({"level": "desk", "underlying": "BTC", "desk": "d"})
    assert p.band.model == "fixed" and p.band.lower_budget_usd is None
    assert p.target.model == "neutral" and p.target.coins is None
    assert p.band.key == "group[0].band"


def test_builtin_defaults():
    p = parse_limits(cfg()).policy_for({"level": "underlying", "underlying": "BTC"})
    assert p.enabled and p.measure == "delta" and p.target.model == "neutral"
    assert (p.thresholds.warn, p.thresholds.breach, p.thresholds.critical) == (0.8, 1.0, 1.5)
    assert p.hedge.mode == "to_band" and not p.hedge.propose_inside_band
    assert p.hedge.horizon_hours == 24 and p.hedge.instruments is None
    assert p.quote.risk_aversion is None and p.hysteresis == 0.1


def test_asymmetric_and_unit_variants_parse():
    m = cfg(underlying={
        "A": {"band": {"model": "fixed", "lower_coins": 1, "upper_usd": 5000}},
        "B": {"band": {"model": "var", "lower_budget_usd": 1, "upper_budget_usd": 2}},
        "C": {"band": {"model": "whalley_wilmott", "risk_aversion": 1e-6, "cost": 0.001,
                       "floor_usd": 10, "cap_coins": 5}},
        "D": {"target": {"model": "carry", "risk_aversion": 1e-6, "max_usd": 1e6}},
        "E": {"target": {"model": "base_pct", "share": 0.5, "value_scope": "pair",
                         "cash_underlyings": ["USDC"]}},
    })
    lim = parse_limits(m)
    a = lim.policy_for({"level": "underlying", "underlying": "A"}).band
    assert (a.lower_coins, a.upper_coins, a.lower_usd, a.upper_usd) == (1, None, None, 5000)
    b = lim.policy_for({"level": "underlying", "underlying": "B"}).band
    assert (b.lower_budget_usd, b.upper_budget_usd) == (1, 2)
    assert (b.confidence, b.horizon_hours) == (0.99, 24)
    e = lim.policy_for({"level": "underlying", "underlying": "E"}).target
    assert e.cash_underlyings == ("USDC",) and e.value_scope == "pair"


# ---------------------------------------------------------------------------------------------
# errors name the key path


ERROR_CASES = [
    # (mapping, expected key, fragment of the rule)
    (cfg(defaults={"band": {"model": "fixed", "usd": 1}, "mesure": "delta"}),
     "defaults.mesure", "unknown key"),
    (cfg(underlying={"BTC": {"band": {"model": "var", "budget_usd": -5}}}),
     "underlying.BTC.band.budget_usd", "must be > 0"),
    (cfg(underlying={"BTC": {"band": {"model": "var", "budget_us": 5}}}),
     "underlying.BTC.band.budget_us", "unknown key"),
    (cfg(underlying={"BTC": {"band": {"model": "var", "budget_usd": 5, "confidence": 1.5}}}),
     "underlying.BTC.band.confidence", "must be < 1"),
    (cfg(underlying={"BTC": {"band": {"model": "var", "budget_usd": 5, "horizon_hours": 0}}}),
     "underlying.BTC.band.horizon_hours", "must be > 0"),
    (cfg(underlying={"BTC": {"band": {"model": "fixed", "coins": 1, "usd": 2}}}),
     "underlying.BTC.band.lower_coins", "exactly one"),
    (cfg(underlying={"BTC": {"band": {"model": "fixed", "lower_coins": 1}}}),
     "underlying.BTC.band.upper_coins", "exactly one"),
    (cfg(underlying={"BTC": {"band": {"model": "wide"}}}),
     "underlying.BTC.band.model", "must be one of"),
    (cfg(underlying={"BTC": {"band": {"usd": 5}}}),
     "underlying.BTC.band.model", "required"),
    (cfg(underlying={"BTC": {"band": {"model": "whalley_wilmott"}}}),
     "underlying.BTC.band.risk_aversion", "required"),
    (cfg(underlying={"BTC": {"band": {"model": "whalley_wilmott", "risk_aversion": 1e-6,
                                      "floor_coins": 5, "cap_coins": 2}}}),
     "underlying.BTC.band.floor_coins", "must be <="),
    (cfg(underlying={"BTC": {"band": {"model": "fixed", "usd": True}}}),
     "underlying.BTC.band.usd", "must be a number"),
    (cfg(underlying={"BTC": {"band": {"model": "fixed", "usd": "1e5"}}}),
     "underlying.BTC.band.usd", "must be a number"),
    (cfg(defaults={"band": {"model": "fixed", "usd": 1}, "target": {"model": "fixed"}}),
     "defaults.target.coins", "exactly one"),
    (cfg(defaults={"band": {"model": "fixed", "usd": 1},
                   "target": {"model": "carry", "risk_aversion": 1e-6}}),
     "defaults.target.max_coins", "exactly one"),
    (cfg(defaults={"band": {"model": "fixed", "usd": 1},
                   "target": {"model": "carry", "risk_aversion": 0, "max_coins": 1}}),
     "defaults.target.risk_aversion", "must be > 0"),
    (cfg(defaults={"band": {"model": "fixed", "usd": 1},
                   "target": {"model": "base_pct", "share": 1.2}}),
     "defaults.target.share", "must be <= 1"),
    (cfg(defaults={"band": {"model": "fixed", "usd": 1},
                   "target": {"model": "neutral", "coins": 1}}),
     "defaults.target.coins", "unknown key"),
    (cfg(defaults={"band": {"model": "fixed", "usd": 1}, "measure": "gamma"}),
     "defaults.measure", "must be one of"),
    (cfg(defaults={"band": {"model": "fixed", "usd": 1}, "hysteresis": 1.0}),
     "defaults.hysteresis", "must be < 1"),
    (cfg(defaults={"band": {"model": "fixed", "usd": 1}, "thresholds": {"warn": 0}}),
     "defaults.thresholds.warn", "must be > 0"),
    (cfg(group=[{"match": {"desk": "x"}, "thresholds": {"breach": 2.0}}]),
     "group[0].thresholds.breach", "increasing"),
    (cfg(underlying={"ETH": {"thresholds": {"warn": 1.2}}}),
     "underlying.ETH.thresholds.warn", "increasing"),
    (cfg(defaults={"band": {"model": "fixed", "usd": 1}, "hedge": {"mode": "to_edge"}}),
     "defaults.hedge.mode", "must be one of"),
    (cfg(defaults={"band": {"model": "fixed", "usd": 1},
                   "hedge": {"propose_inside_band": "yes"}}),
     "defaults.hedge.propose_inside_band", "true or false"),
    (cfg(group=[{"match": {"desk": "x"}, "hedge": {"instruments": ["ETH-PERPETUAL"]}}]),
     "group[0].hedge.instruments", "not a [[hedge_instrument]]"),
    (cfg(defaults={"band": {"model": "fixed", "usd": 1}, "quote": {"tau": 1}}),
     "defaults.quote.tau", "unknown key"),
    (cfg(group=[{"band": {"model": "fixed", "usd": 1}}]), "group[0].match", "required"),
    (cfg(group=[{"match": {}}]), "group[0].match", "at least one"),
    (cfg(group=[{"match": {"desk": 3}}]), "group[0].match.desk", "list of non-empty strings"),
    (cfg(group=[{"match": {"desk": "x"}, "band": {"model": "fixed", "coins": -1}}]),
     "group[0].band.coins", "must be >= 0"),
    (cfg(hedge_instrument=[{"instrument": "X", "fee": 0.0005}]),
     "hedge_instrument[0].half_spread", "required"),
    (cfg(hedge_instrument=[{"instrument": "X", "fee": 5, "half_spread": 0.0}]),
     "hedge_instrument[0].fee", "must be <= 0.05"),
    (cfg(hedge_instrument=[{"instrument": "X", "fee": 0, "half_spread": 0, "lot_size": 0}]),
     "hedge_instrument[0].lot_size", "must be > 0"),
    (cfg(hedge_instrument=[{"instrument": "X", "fee": 0, "half_spread": 0, "kind": "option"}]),
     "hedge_instrument[0].kind", "must be one of"),
    (cfg(hedge_instrument=[{"instrument": "X", "fee": 0, "half_spread": 0, "lots": 1}]),
     "hedge_instrument[0].lots", "unknown key"),
    (cfg(hedge_instrument=[{"instrument": "X", "fee": 0, "half_spread": 0},
                           {"instrument": "X", "fee": 0, "half_spread": 0}]),
     "hedge_instrument[1].instrument", "duplicate"),
    (cfg(hedge_instrument=[{"instrument": "X", "fee": 0, "half_spread": 0,
                            "expiry": "tomorrow"}]),
     "hedge_instrument[0].expiry", "ISO 8601"),
    (cfg(limit={"x": 1}), "limit", "unknown key"),
    (cfg(group={"match": {"desk": "x"}}), "group", "array of tables"),
]


@pytest.mark.parametrize("mapping,key,rule", ERROR_CASES,
                         ids=[f"{i}-{c[1]}" for i, c in enumerate(ERROR_CASES)])
def test_errors_name_the_key_path(mapping, key, rule):
    with pytest.raises(InvalidConfig) as ei:
        parse_limits(mapping, "limits.toml")
    e = ei.value
    assert e.key == key, str(e)
    assert rule in e.rule, str(e)
    assert e.source == "limits.toml"
    assert e.exit_code == EXIT_INVALID
    assert f"limits.toml: {key} = " in str(e)


def test_error_carries_the_value():
    with pytest.raises(InvalidConfig) as ei:
        parse_limits(cfg(underlying={"BTC": {"band": {"model": "var", "budget_usd": -5}}}), "f")
    assert ei.value.value == -5
    assert str(ei.value) == ("invalid configuration: f: underlying.BTC.band.budget_usd = -5: "
                             "must be > 0")


def test_missing_band_reported_when_a_group_needs_one():
    limits = parse_limits({"underlying": {"BTC": {"band": {"model": "fixed", "coins": 1}}}}, "f")
    assert limits.policy_for({"level": "underlying", "underlying": "BTC"}).band.lower_coins == 1
    with pytest.raises(InvalidConfig) as ei:
        limits.policy_for({"level": "desk", "underlying": "ETH", "desk": "mm"})
    assert ei.value.key == "defaults.band" and "underlying=ETH" in ei.value.rule
    # disabled groups need no band
    limits = parse_limits({"defaults": {"enabled": False},
                           "underlying": {"BTC": {"enabled": True,
                                                  "band": {"model": "fixed", "coins": 1}}}})
    assert not limits.policy_for({"level": "underlying", "underlying": "ETH"}).enabled


def test_load_limits_file_errors(tmp_path):
    p = tmp_path / "limits.toml"
    p.write_text('[defaults]\nband = { model = "fixed", usd = 1 \n')
    with pytest.raises(InvalidConfig) as ei:
        load_limits(p)
    assert ei.value.key == "(file)" and "not valid TOML" in ei.value.rule
    with pytest.raises(InvalidConfig) as ei:
        load_limits(tmp_path / "missing.toml")
    assert "cannot read" in ei.value.rule
    p.write_text('[underlying.BTC]\nband = { model = "var", budget_usd = 0 }\n')
    with pytest.raises(InvalidConfig) as ei:
        load_limits(p)
    assert ei.value.source == str(p) and ei.value.key == "underlying.BTC.band.budget_usd"


def test_load_limits_roundtrip(tmp_path):
    p = tmp_path / "limits.toml"
    p.write_text(
        '[defaults]\nband = { model = "fixed", usd = 1e5 }\n'
        '[[group]]\nmatch = { level = "desk,book", desk = "mm" }\n'
        'target = { model = "fixed", usd = 2_000 }\n'
        '[[hedge_instrument]]\ninstrument = "BTC-27DEC26"\nunderlying = "BTC"\nkind = "future"\n'
        'settlement = "inverse"\ncontract_size = 10\nexpiry = 2026-12-27T08:00:00Z\n'
        'fee = 0.0005\nhalf_spread = 0.0001\nlot_size = 1\nmin_size = 2\n')
    lim = load_limits(p)
    h = lim.hedge_instrument("BTC-27DEC26")
    assert h.expiry.isoformat() == "2026-12-27T08:00:00+00:00" and h.min_size == 2
    assert abs(h.cost_fraction - 0.0006) < 1e-15
    p1 = lim.policy_for({"level": "desk,book", "underlying": "BTC", "desk": "mm", "book": "b"})
    assert p1.target.usd == 2000
    p2 = lim.policy_for({"level": "desk", "underlying": "BTC", "desk": "mm"})
    assert p2.target.model == "neutral"

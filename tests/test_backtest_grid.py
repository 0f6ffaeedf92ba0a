"""Policies files: grid axes, the cartesian product, stable policy ids, validation, TOML round trips,
and the kernel's parameter arrays."""

from __future__ import annotations

import math
import tomllib

import numpy as np
import pytest
from backtest_helpers import bs_book, hedge_entry

from gpuskew.errors import InvalidConfig
from gpuskew.kernels import policy as kp
from gpuskew.policy.grid import expand_policies, kernel_params, load_policies, policy_id, read_toml, to_toml
from gpuskew.policy.limits import example_limits_path, parse_limits


def _base():
    return {"defaults": {"band": {"model": "fixed", "usd": 100_000.0}, "hedge": {"mode": "to_band"}},
            "underlying": {"BTC": {"band": {"model": "var", "budget_usd": 1e6}}},
            "group": [{"match": {"desk": ["a", "b"]}, "hedge": {"instruments": ["BTC"]}}],
            "hedge_instrument": [hedge_entry("spot", fee=0.0005)]}


def test_lists_are_axes_and_the_policies_their_product():
    m = _base()
    m["underlying"]["BTC"]["band"]["budget_usd"] = [1e6, 2e6, 4e6]
    m["defaults"]["hedge"]["mode"] = ["to_band", "to_target"]
    m["defaults"]["band"] = [{"model": "fixed", "usd": 1e5}, {"model": "whalley_wilmott", "risk_aversion": 1e-6}]
    grid = expand_policies(m, "p.toml")
    assert [a.name for a in grid.axes] == ["defaults.band", "defaults.hedge.mode", "underlying.BTC.band.budget_usd"]
    assert len(grid) == 12 and len({p.policy_id for p in grid.policies}) == 12
    last = grid.policies[-1]
    assert last.values == {"defaults.band": {"model": "whalley_wilmott", "risk_aversion": 1e-6},
                           "defaults.hedge.mode": "to_target", "underlying.BTC.band.budget_usd": 4e6}
    # the last axis varies fastest
    assert [p.values["underlying.BTC.band.budget_usd"] for p in grid.policies[:3]] == [1e6, 2e6, 4e6]
    # match lists, hedge.instruments and the arrays of tables are values, not axes
    assert grid.policies[0].limits.groups[0].match == (("desk", ("a", "b")),)


def test_list_valued_keys_are_axes_only_as_lists_of_lists():
    m = _base()
    m["group"][0]["hedge"]["instruments"] = [["BTC"], ["BTC", "BTC_USDC-PERPETUAL"]]
    m["hedge_instrument"].append(hedge_entry("perpetual"))
    grid = expand_policies(m)
    assert [a.name for a in grid.axes] == ["group[0].hedge.instruments"]
    assert [p.limits.policy_for({"level": "desk", "underlying": "BTC", "desk": "a"}).hedge.instruments
            for p in grid.policies] == [("BTC",), ("BTC", "BTC_USDC-PERPETUAL")]


def test_policy_ids_hash_values_not_positions():
    m = _base()
    m["defaults"]["band"]["usd"] = [1e5, 2e5, 3e5]
    ids = {p.values["defaults.band.usd"]: p.policy_id for p in expand_policies(m).policies}
    m["defaults"]["band"]["usd"] = [3e5, 1e5]  # other order, fewer values
    again = {p.values["defaults.band.usd"]: p.policy_id for p in expand_policies(m).policies}
    assert again == {k: ids[k] for k in (3e5, 1e5)}
    # the id of a policy is the id of its plain limits mapping
    single = _base()
    single["defaults"]["band"]["usd"] = 2e5
    assert policy_id(single) == ids[2e5]
    assert len(ids[2e5]) == 12


def test_every_policy_is_validated_naming_the_policy():
    m = _base()
    m["defaults"]["band"]["usd"] = [1e5, -1.0]
    with pytest.raises(InvalidConfig) as err:
        expand_policies(m, "p.toml")
    assert err.value.key == "defaults.band.usd" and "defaults.band.usd=-1" in err.value.source
    m["defaults"]["band"]["usd"] = []
    with pytest.raises(InvalidConfig, match="at least one value"):
        expand_policies(m)
    m["defaults"]["band"]["usd"] = [1e5, 1e5]
    with pytest.raises(InvalidConfig, match="duplicate"):
        expand_policies(m)
    m["defaults"]["band"] = [{"model": "fixed", "usd": [1.0, 2.0]}, {"model": "fixed", "usd": 3.0}]
    with pytest.raises(InvalidConfig, match="nested"):
        expand_policies(m)


def test_each_policy_writes_a_valid_limits_file(tmp_path):
    mapping = read_toml(example_limits_path())
    mapping["underlying"]["BTC"]["band"]["budget_usd"] = [1e6, 5e6]
    grid = expand_policies(mapping)
    for p in grid.policies:
        text = to_toml(p.mapping, "a policy\nof the grid")
        assert text.startswith("# a policy\n# of the grid\n")
        back = tomllib.loads(text)
        assert policy_id(back) == p.policy_id
        parse_limits(back)
    path = tmp_path / "p.toml"
    path.write_text(to_toml(mapping))
    assert len(load_policies(path)) == 2


def test_current_limits_are_marked_or_added():
    m = _base()
    m["defaults"]["band"]["usd"] = [1e5, 2e5]
    grid = expand_policies(m)
    cur = _base()
    cur["defaults"]["band"]["usd"] = 2e5
    marked = grid.with_current(cur)
    assert len(marked) == 2 and [p.is_current for p in marked.policies] == [False, True]
    cur["defaults"]["band"]["usd"] = 7e5
    added = grid.with_current(cur)
    assert len(added) == 3 and added.current.values == {} and added.current.label == "current"


def _resolver(book):
    from gpuskew.backtest.run import hedge_resolver

    return hedge_resolver(book, None)


def test_kernel_params_of_every_band_model():
    book = bs_book()
    m = {"defaults": {"band": [{"model": "fixed", "lower_usd": 50_000.0, "upper_coins": 2.0, "cap_usd": 1e6},
                               {"model": "var", "budget_usd": 1e6, "confidence": 0.95, "horizon_hours": 8},
                               {"model": "whalley_wilmott", "risk_aversion": 1e-6},
                               {"model": "zakamouline", "risk_aversion": 1e-6, "cost": 0.001, "tau_days": 10}],
                      "measure": "delta_pa",
                      "target": {"model": "fixed", "coins": 5.0},
                      "hedge": {"mode": "to_target", "fraction": 0.5, "interval_hours": 1.0}},
         "hedge_instrument": [hedge_entry("perpetual", fee=0.0005, half_spread=0.0001, impact=0.0002)
                              | {"impact_per_million_usd": 0.0003}, hedge_entry("spot", fee=0.001)]}
    grid = expand_policies(m)
    rows = [{"level": "underlying", "underlying": "BTC"}]
    kparams = kernel_params(grid.policies, rows, _resolver(book), step_seconds=60.0, rates=[0.02])
    x = kparams.params[:, 0]
    assert kparams.monitored.all() and len(kparams.targets) == 1
    assert (x[:, kp.P_TARGET] == 0).all() and (x[:, kp.P_MEASURE] == 1).all()
    assert x[:, kp.P_BAND].tolist() == [kp.BAND_FIXED, kp.BAND_VAR, kp.BAND_WHALLEY_WILMOTT, kp.BAND_ZAKAMOULINE]
    assert x[0, kp.P_LO_USD] == 50_000 and x[0, kp.P_UP_COINS] == 2 and x[0, kp.P_CAP_USD] == 1e6
    assert x[0, kp.P_CAP_COINS] == math.inf and x[0, kp.P_LO_COINS] == 0
    assert x[1, kp.P_Z] == pytest.approx(1.6448536, rel=1e-6)
    assert x[1, kp.P_SQRT_H] == pytest.approx(math.sqrt(8 / 8760))
    # lambda of a Whalley-Wilmott band: the cheapest allowed hedge, the perpetual 5 + 1 + 2 bp
    assert x[2, kp.P_COST] == pytest.approx(0.0008) and x[3, kp.P_COST] == 0.001
    assert x[3, kp.P_TAU] == pytest.approx(10 / 365) and x[3, kp.P_RATE] == 0.02
    assert (x[:, kp.P_INTERVAL] == 60).all() and (x[:, kp.P_FRACTION] == 0.5).all()
    assert (x[:, kp.P_MODE] == kp.MODE_TO_TARGET).all() and (x[:, kp.P_FUNDING] == 1).all()
    np.testing.assert_allclose(x[:, kp.P_LOT], 0.001)  # 1 contract of 0.001 BTC
    np.testing.assert_allclose(x[:, kp.P_IMPACT_SLOPE], 3e-10)
    assert kparams.hedge[0][0] == "BTC_USDC-PERPETUAL"


def test_disabled_groups_are_not_monitored_and_disabled_hedges_never_trade():
    book = bs_book()
    m = {"defaults": {"band": {"model": "fixed", "coins": 1.0}, "hedge": {"enabled": [True, False]}},
         "group": [{"match": {"desk": "off"}, "enabled": False}],
         "hedge_instrument": [hedge_entry("spot")]}
    rows = [{"level": "underlying", "underlying": "BTC"}, {"level": "desk", "underlying": "BTC", "desk": "off"}]
    kparams = kernel_params(expand_policies(m).policies, rows, _resolver(book), 60.0, [0.0, 0.0])
    assert kparams.monitored.tolist() == [[True, False], [True, False]]
    assert kparams.params[:, 0, kp.P_ENABLED].tolist() == [1.0, 0.0]
    # no hedge instrument on the underlying: monitored, never trades, one warning
    m["hedge_instrument"] = []
    kparams = kernel_params(expand_policies(m).policies, rows, _resolver(book), 60.0, [0.0, 0.0])
    assert kparams.params[0, 0, kp.P_ENABLED] == 0 and len(kparams.warnings) == 1
    assert np.isfinite(kparams.params[..., kp.P_LOT]).all()


def test_zakamouline_band_in_gpuskew_run_needs_its_cost():
    import gpuskew
    from backtest_helpers import AS_OF

    from gpuskew.adherence import compute_adherence

    book = bs_book()
    exposures = gpuskew.compute(book, as_of=AS_OF, backend="cpu").exposures
    limits = parse_limits({"defaults": {"band": {"model": "zakamouline", "risk_aversion": 1e-6}}})
    with pytest.raises(InvalidConfig) as err:
        compute_adherence(exposures, book.underlyings, book.instruments, book.quotes, limits, AS_OF)
    assert err.value.key == "defaults.band.cost"
    limits = parse_limits({"defaults": {"band": {"model": "zakamouline", "risk_aversion": 1e-6, "cost": 0.001}}})
    adh = compute_adherence(exposures, book.underlyings, book.instruments, book.quotes, limits, AS_OF)
    assert adh.table["band_model"].to_pylist() == ["zakamouline"] and adh.table["half_width_upper"][0].as_py() > 0

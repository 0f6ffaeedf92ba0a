"""gpuskew calibrate: realised vol recovered from a synthetic GBM, band scaling, walk-forward
stability, the proposed limits (valid for gpuskew run), from a market and from a history."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest
from backtest_helpers import AS_OF, bs_tables, hedge_entry
from click.testing import CliRunner

import gpuskew
from gpuskew.adherence import bands
from gpuskew.backtest.calibrate import (band_table, calibrate, realised_vol, scale_band_table, scaled_mapping,
                                        unstable_flags)
from gpuskew.backtest.greeks_path import compute_greeks_path
from gpuskew.cli import main
from gpuskew.policy.grid import to_toml
from gpuskew.policy.limits import BandSpec, load_limits, parse_limits
from gpuskew.synthetic.markets import synthetic_market


def _write_book(folder, tables):
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    for name, t in tables.items():
        pq.write_table(t, folder / f"{name}.parquet")


LIMITS = {"defaults": {"band": {"model": "fixed", "coins": 10.0}, "hedge": {"mode": "to_band"}},
          "group": [{"match": {"desk": "opt"}, "band": {"model": "whalley_wilmott", "risk_aversion": 1e-7}}],
          "hedge_instrument": [hedge_entry("spot", fee=0.0005, half_spread=0.0001, lot_size=0.001)]}


@pytest.fixture(scope="module")
def thirty_days(tmp_path_factory):
    """30 days of one-minute steps of a GBM at 60% vol, a short option book, calibrated."""
    tables = bs_tables(quantity=-200.0, expiry_days=90.0)
    book = gpuskew.load_book(tables)
    market, _ = synthetic_market({"market": {"steps": 30 * 1440, "step_seconds": 60, "paths": 1, "seed": 12},
                                  "underlying": {"BTC": {"model": "gbm", "vol": 0.6}}}, book, AS_OF)
    greeks = compute_greeks_path(book, market, [("desk",)], "cpu", full_every=60)
    from gpuskew.backtest.run import hedge_resolver

    kw = dict(criterion="ce", backend="cpu", risk_aversion=1e-6, resolve_hedges=hedge_resolver(book, market.start))
    cal = calibrate(book, greeks, LIMITS, walk_forward_days=10.0, **kw)
    whole = calibrate(book, greeks, LIMITS, **kw)  # no walk-forward: nothing is held back as unstable
    return tables, book, cal, whole


def test_realised_vol_of_a_gbm_within_3_percent(thirty_days):
    _, _, cal, _ = thirty_days
    est = cal.info["estimates"]["realised_vol"]["BTC"]
    assert est["returns"] == 30 * 1440
    assert est["close_to_close"] == pytest.approx(0.6, rel=0.03)
    assert est["close_to_close_ci_low"] < 0.6 < est["close_to_close_ci_high"]
    assert est["ewma"] == pytest.approx(0.6, rel=0.1)
    # the interval's half-width: z / sqrt(2 n) = 1.96 / sqrt(86400) = 0.67%
    assert est["close_to_close_ci_high"] / est["close_to_close"] - 1 == pytest.approx(1.96 / math.sqrt(86400), rel=1e-3)


def test_realised_vol_estimators_against_numpy():
    rng = np.random.default_rng(2)
    r = rng.normal(0, 0.01, 5000)
    s = 100 * np.exp(np.concatenate([[0.0], np.cumsum(r)]))
    est = realised_vol(s, 3600.0)
    assert est["close_to_close"] == pytest.approx(np.std(r, ddof=1) * math.sqrt(8760), rel=1e-9)
    lam = 0.94 ** (1 / 24)
    w = lam ** np.arange(4999, -1, -1)
    assert est["ewma"] == pytest.approx(math.sqrt(np.sum(w * r * r) / w.sum() * 8760), rel=1e-9)


def test_the_proposal_loads_and_runs_with_gpuskew_run(thirty_days, tmp_path):
    tables, book, _, cal = thirty_days
    assert cal.info["proposed_changes"] >= 1
    path = tmp_path / "limits.proposed.toml"
    path.write_text(cal.proposed_toml)
    limits = load_limits(path)
    assert cal.proposed_toml.startswith("# Proposed by gpuskew calibrate")
    for choice in cal.choices.to_pylist():
        if choice["window"] == -1 and choice["scale"] != 1.0 and not choice["unstable"]:
            row = {k: v for k, v in choice.items() if k in ("level", "underlying", "desk") and v is not None}
            scaled = parse_limits(scaled_mapping(LIMITS, choice["scale"])).policy_for(row).band
            assert limits.policy_for(row).band == scaled
    assert cal.info["proposed_changes"] == sum(1 for c in cal.choices.to_pylist() if c["window"] == -1
                                               and c["scale"] != 1.0 and not c["unstable"])
    _write_book(tmp_path / "book", tables)
    res = CliRunner().invoke(main, ["run", str(tmp_path / "book"), "--limits", str(path), "--out",
                                    str(tmp_path / "run"), "--as-of", "2026-11-20T08:00:00Z", "--group-by", "desk"])
    assert res.exit_code in (0, 3), res.output
    assert "Per group" in cal.diff_text and ("+++ limits.proposed.toml" in cal.diff_text or "(no change)" in cal.diff_text)


def test_walk_forward_windows_and_instability(thirty_days):
    _, _, cal, _ = thirty_days
    assert cal.info["walk_forward"]["windows"] == 3
    windows = sorted({r["window"] for r in cal.choices.to_pylist()})
    assert windows == [-1, 0, 1, 2]
    # windows x groups: x2.5 is a move of more than 2x; NaN (no choice) is skipped
    flags = unstable_flags([[1.0, 0.5, 1.0], [2.5, 0.75, math.nan], [1.0, 1.0, 1.5]], 3)
    assert flags.tolist() == [True, False, False]
    assert unstable_flags([[1.0], [math.nan], [4.0]], 1).tolist() == [True]


@pytest.mark.parametrize("band,kw", [
    ({"model": "fixed", "coins": 4.0}, {}),
    ({"model": "fixed", "lower_usd": 4e5, "upper_coins": 7.0}, {}),
    ({"model": "var", "lower_budget_usd": 1e6, "upper_budget_usd": 2e6}, {"vol": np.array([0.6])}),
    ({"model": "whalley_wilmott", "risk_aversion": 1e-6, "cost": 0.001}, {"gamma": np.array([0.004])}),
])
def test_band_scale_multiplies_the_half_width(band, kw):
    from gpuskew.policy.limits import parse_limits as parse

    spec = parse({"defaults": {"band": band}}).policy_for({"level": "underlying", "underlying": "BTC"}).band
    scaled = parse({"defaults": {"band": scale_band_table(band, 2.5)}}).policy_for(
        {"level": "underlying", "underlying": "BTC"}).band
    lo, up = bands.half_widths(spec, spot=np.array([100_000.0]), **kw)
    lo2, up2 = bands.half_widths(scaled, spot=np.array([100_000.0]), **kw)
    np.testing.assert_allclose([lo2[0], up2[0]], [2.5 * lo[0], 2.5 * up[0]], rtol=1e-12)
    # a resolved spec written back reads as the same spec
    assert parse({"defaults": {"band": band_table(spec)}}).policy_for(
        {"level": "underlying", "underlying": "BTC"}).band == spec


def test_calibrate_from_a_history(tmp_path):
    runner = CliRunner()
    hist = tmp_path / "hist"
    res = runner.invoke(main, ["run", "--demo", "--demo-size", "400", "--demo-steps", "6", "--history", str(hist),
                               "--out", str(tmp_path / "last")])
    assert res.exit_code in (0, 3), res.output
    from gpuskew.policy.limits import example_limits_path

    out = tmp_path / "cal"
    assert runner.invoke(main, ["demo", str(tmp_path / "book"), "--demo-size", "400"]).exit_code == 0
    # the book resolves the hedge instruments (the example's future takes its expiry from it)
    res = runner.invoke(main, ["calibrate", str(tmp_path / "book"), "--history", str(hist), "--limits",
                               str(example_limits_path()), "--out", str(out), "--criterion", "cost_at_risk", "--json"])
    assert res.exit_code == 0, res.output
    line = json.loads(res.stdout.strip().splitlines()[-1])
    assert line["status"] == "ok" and set(line["realised_vol"]) >= {"BTC", "ETH"}
    for name in ("calibration.json", "limits.proposed.toml", "limits.diff", "choices.parquet", "report.html",
                 "summary.json"):
        assert (out / name).exists(), name
    info = json.loads((out / "calibration.json").read_text())
    assert info["criterion"] == "cost_at_risk" and info["period"]["source"].startswith("history:")
    assert pq.read_table(out / "choices.parquet").num_rows > 0
    load_limits(out / "limits.proposed.toml")


def test_calibrate_cli_from_a_synthetic_market_and_its_errors(tmp_path):
    _write_book(tmp_path / "book", bs_tables(quantity=-50.0))
    (tmp_path / "limits.toml").write_text(to_toml(LIMITS))
    (tmp_path / "m.toml").write_text("[market]\nsteps = 120\nstep_seconds = 60\npaths = 4\nseed = 2\n")
    runner = CliRunner()
    base = ["calibrate", str(tmp_path / "book"), "--limits", str(tmp_path / "limits.toml")]
    res = runner.invoke(main, base + ["--synthetic", str(tmp_path / "m.toml"), "--out", str(tmp_path / "c"),
                                      "--as-of", "2026-11-20T08:00:00Z", "--group-by", "desk"])
    assert res.exit_code == 0, res.output
    assert "Per group" in res.stdout and (tmp_path / "c" / "walk_forward.png").exists()
    res = runner.invoke(main, base + ["--out", str(tmp_path / "d")])
    assert res.exit_code == 2 and "exactly one of" in res.output
    res = runner.invoke(main, ["calibrate", "--synthetic", str(tmp_path / "m.toml"), "--limits",
                               str(tmp_path / "limits.toml"), "--out", str(tmp_path / "d")])
    assert res.exit_code == 2 and "BOOK_DIR is required" in res.output
    res = runner.invoke(main, base + ["--synthetic", str(tmp_path / "m.toml"), "--out", str(tmp_path / "d"),
                                      "--walk-forward", "1"])
    assert res.exit_code == 2 and "--walk-forward" in res.stderr
    (tmp_path / "bad.toml").write_text("[defaults]\nband = { model = \"fixed\", coins = -1 }\n")
    res = runner.invoke(main, ["calibrate", str(tmp_path / "book"), "--limits", str(tmp_path / "bad.toml"),
                               "--synthetic", str(tmp_path / "m.toml"), "--out", str(tmp_path / "d")])
    assert res.exit_code == 2 and "defaults.band.coins" in res.stderr
    assert not (tmp_path / "d").exists()


def test_walk_forward_sweeps_each_window_without_a_whole_backtest(monkeypatch):
    """Each window needs its sweep's summary only: one run_backtest (the whole period), no trace
    relaunch or output tables per window; the windows' choices are those of a backtest per window."""
    from gpuskew.backtest import calibrate as cal_mod
    from gpuskew.backtest.run import hedge_resolver, run_backtest
    from gpuskew.backtest.stats import choose

    book = gpuskew.load_book(bs_tables(quantity=-200.0, expiry_days=90.0))
    market, _ = synthetic_market({"market": {"steps": 3 * 144, "step_seconds": 600, "paths": 2, "seed": 5},
                                  "underlying": {"BTC": {"model": "gbm", "vol": 0.6}}}, book, AS_OF)
    greeks = compute_greeks_path(book, market, [("desk",)], "cpu", full_every=12)
    resolve = hedge_resolver(book, market.start)
    calls = []
    monkeypatch.setattr(cal_mod, "run_backtest", lambda *a, **k: calls.append(1) or run_backtest(*a, **k))
    cal = calibrate(book, greeks, LIMITS, walk_forward_days=1.0, backend="cpu", risk_aversion=1e-6,
                    resolve_hedges=resolve)
    assert len(calls) == 1 and cal.info["walk_forward"]["windows"] == 3
    grid = cal_mod.scale_grid(LIMITS, cal_mod.DEFAULT_SCALES, "<limits>")
    cur = next(i for i, p in enumerate(grid.policies) if p.is_current)
    rows = cal.choices.to_pylist()
    for w in range(3):
        a, b = w * 144, (w + 1) * 144
        run = run_backtest(book, grid, market.window(a, b), backend="cpu", risk_aversion=1e-6,
                           greeks=greeks.window(a, b), resolve_hedges=resolve)
        best = choose(run.summary, "ce")
        score = run.summary.values["ce_usd"]
        want = []
        for g in range(best.size):
            if best[g] >= 0 and run.summary.monitored[cur, g] and not score[best[g], g] > score[cur, g]:
                best[g] = cur
            if best[g] >= 0:
                want.append(grid.policies[int(best[g])].policy_id)
        got = [r["chosen_policy_id"] for r in rows if r["window"] == w]
        assert got == want[:len(got)] and got


def test_a_history_whose_runs_have_no_interval_is_refused_before_the_grid(tmp_path, monkeypatch):
    """The interval between runs is checked where it is computed: before the grid divides by it
    (the check used to sit after its use, where it could never fire)."""
    from gpuskew.backtest import history_path
    from gpuskew.errors import InvalidInput

    hist = tmp_path / "hist"
    res = CliRunner().invoke(main, ["run", "--demo", "--demo-size", "200", "--demo-steps", "3", "--history",
                                    str(hist), "--out", str(tmp_path / "last")])
    assert res.exit_code in (0, 3), res.output
    gp, _ = history_path.greeks_from_history(hist)
    assert gp.market.step_seconds > 0 and gp.market.start.tzinfo is not None
    monkeypatch.setattr(history_path.np, "median", lambda a: 0.0)
    with pytest.raises(InvalidInput, match="distinct times"):
        history_path.greeks_from_history(hist)

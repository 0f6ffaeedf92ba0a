"""`gpuskew backtest` from the command line: outputs, --json, exit codes, nothing written on bad input,
byte-identical data files on a rerun."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from gpuskew.cli import main
from gpuskew.policy.limits import example_limits_path

MARKET = """
[market]
steps = 60
step_seconds = 120
paths = 6
seed = 5

[underlying.BTC]
model = "svcj"
iv_vol_of_vol = 0.6

[correlation]
"BTC,ETH" = 0.7

[flow]
rate_per_hour = 6
edge = 0.01
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bt")
    runner = CliRunner()
    res = runner.invoke(main, ["demo", str(d / "book"), "--demo-size", "300", "--demo-seed", "3"])
    assert res.exit_code == 0, res.output
    text = example_limits_path().read_text()
    (d / "current.toml").write_text(text)
    (d / "policies.toml").write_text(text.replace(
        'band = { model = "var", budget_usd = 5_000_000, confidence = 0.99, horizon_hours = 24, floor_coins = 10 }',
        'band = { model = "var", budget_usd = [2_000_000, 5_000_000], confidence = 0.99, horizon_hours = 24, '
        'floor_coins = 10 }').replace(
        'band = { model = "whalley_wilmott", risk_aversion = 1e-9,',
        'band = { model = "whalley_wilmott", risk_aversion = [1e-10, 1e-8],'))
    (d / "market.toml").write_text(MARKET)
    return d


def _run(args):
    return CliRunner().invoke(main, ["backtest", *map(str, args)])


def _args(d, out, *extra):
    return [d / "book", "--policies", d / "policies.toml", "--synthetic", d / "market.toml", "--out", out,
            "--as-of", "2026-11-20T08:00:00Z", *extra]


def test_backtest_writes_every_output_and_one_json_line(files):
    out = files / "out1"
    res = _run(_args(files, out, "--limits", files / "current.toml", "--group-by", "desk", "--json"))
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert summary["status"] == "ok" and summary["policies"] == 5 and summary["paths"] == 6
    assert summary["current_policy_id"] is not None
    names = {p.name for p in out.iterdir()}
    assert {"policies.parquet", "results.parquet", "summary.parquet", "frontier.parquet", "traces.parquet",
            "frontier.png", "attribution.png", "time_in_band.png", "trace.png", "report.html",
            "summary.json"} <= names
    info = json.loads((out / "summary.json").read_text())
    assert info["counts"]["tasks"] == 5 * info["counts"]["groups"] * 6
    assert info["flow"]["fills"] > 0 and "value_rms_usd" in info["greeks_path"]
    results = pq.read_table(out / "results.parquet")
    assert set(results.column("path").to_pylist()) == set(range(6))
    assert {"desk", "book"} <= set(results.column_names)  # --group-by and the limits' levels
    assert results.schema.field("hedged_pnl_usd").metadata[b"unit"] == b"USD"
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4
    policies = pq.read_table(out / "policies.parquet")
    assert sum(policies.column("is_current").to_pylist()) >= 1


def test_rerun_gives_byte_identical_data_files(files):
    a, b = files / "a", files / "b"
    for out in (a, b):
        res = _run(_args(files, out, "--group-by", "desk"))
        assert res.exit_code == 0, res.output
    for name in ("policies.parquet", "results.parquet", "summary.parquet", "frontier.parquet", "traces.parquet"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    c = files / "c"
    assert _run(_args(files, c, "--seed", "6")).exit_code == 0
    assert (a / "results.parquet").read_bytes() != (c / "results.parquet").read_bytes()


@pytest.mark.parametrize("mutate,needle", [
    (lambda d: (d / "bad.toml").write_text("[defaults]\nband = { model = \"fixed\", usd = [1.0, -2.0] }\n"),
     "defaults.band.usd"),
    (lambda d: (d / "bad.toml").write_text("[defaultz]\n"), "unknown key"),
])
def test_bad_policies_exit_2_and_write_nothing(files, mutate, needle):
    mutate(files)
    out = files / "bad-out"
    res = _run([files / "book", "--policies", files / "bad.toml", "--synthetic", files / "market.toml",
                "--out", out])
    assert res.exit_code == 2, res.output
    assert needle in res.stderr
    assert not out.exists()


def test_usage_errors(files):
    out = files / "usage"
    res = _run([files / "book", "--policies", files / "policies.toml", "--out", out])
    assert res.exit_code == 2 and "exactly one of --synthetic" in res.output
    res = _run([files / "book", "--policies", files / "policies.toml", "--out", out, "--synthetic",
                files / "market.toml", "--market", files])
    assert res.exit_code == 2
    (files / "bad-market.toml").write_text("[market]\nsteps = 10\nstep_seconds = 60\npaths = 1\n"
                                           "[underlying.BTC]\nmodel = \"heston\"\n")
    res = _run([files / "book", "--policies", files / "policies.toml", "--out", out, "--synthetic",
                files / "bad-market.toml"])
    assert res.exit_code == 2 and "underlying.BTC.model" in res.stderr
    res = _run(_args(files, out, "--trace", "nonexistent"))
    assert res.exit_code == 2 and "--trace" in res.stderr
    assert not out.exists()


def test_cuda_without_a_device_exits_75(files, monkeypatch):
    monkeypatch.delenv("NUMBA_ENABLE_CUDASIM", raising=False)
    from gpuskew.core import backend

    if backend.probe_cuda()[0]:
        pytest.skip("a CUDA device is usable here")
    res = _run(_args(files, files / "cuda", "--backend", "cuda"))
    assert res.exit_code == 75, res.output
    assert not (files / "cuda").exists()


def test_existing_output_needs_overwrite(files):
    out = files / "again"
    assert _run(_args(files, out)).exit_code == 0
    res = _run(_args(files, out))
    assert res.exit_code == 2 and "--overwrite" in res.stderr
    assert _run(_args(files, out, "--overwrite")).exit_code == 0


def test_a_policy_of_the_grid_runs_with_gpuskew_run(files, tmp_path):
    from gpuskew.policy.grid import load_policies, to_toml

    grid = load_policies(files / "policies.toml")
    path = Path(tmp_path) / "one.toml"
    path.write_text(to_toml(grid.policies[-1].mapping))
    res = CliRunner().invoke(main, ["run", str(files / "book"), "--limits", str(path), "--out", str(tmp_path / "run"),
                                    "--as-of", "2026-11-20T08:00:00Z", "--json"])
    assert res.exit_code in (0, 3), res.output
    assert (tmp_path / "run" / "adherence.parquet").exists()


def test_recorded_market_cut_into_windows(files, tmp_path):
    import pyarrow as pa

    import gpuskew

    book = gpuskew.load_book(files / "book")
    rows = []
    rng = __import__("numpy").random.default_rng(1)
    spots = {r["underlying"]: r["spot"] for r in book.underlyings.to_pylist()}
    for k in range(121):
        ts = f"2026-11-20T{8 + k // 60:02d}:{k % 60:02d}:00Z"
        for u, s in spots.items():
            spots[u] = s * float(1 + 0.001 * rng.standard_normal())
            rows.append({"type": "index", "ts": ts, "underlying": u, "spot": spots[u]})
    folder = tmp_path / "events"
    folder.mkdir()
    pq.write_table(pa.table({k: [r[k] for r in rows] for k in rows[0]}), folder / "index.parquet")
    out = tmp_path / "rec"
    res = _run([files / "book", "--policies", files / "policies.toml", "--market", folder, "--windows", "4",
                "--out", out, "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip())
    assert summary["paths"] == 4 and summary["steps"] == 30
    info = json.loads((out / "summary.json").read_text())
    assert info["market"]["source"].startswith("recorded:") and "4 windows" in info["market"]["source"]
    res = _run([files / "book", "--policies", files / "policies.toml", "--synthetic", files / "market.toml",
                "--windows", "4", "--out", tmp_path / "x"])
    assert res.exit_code == 2 and "--windows" in res.output

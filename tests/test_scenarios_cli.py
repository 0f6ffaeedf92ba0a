"""``gpuskew scenarios`` and the scenarios file: outputs, exit codes, JSON line, validation."""

from __future__ import annotations

import json
import os

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from gpuskew.cli import main
from gpuskew.errors import InvalidConfig
from gpuskew.scenarios import load_scenario_config, parse_scenario_config
from scenario_helpers import AS_OF, every_kind_book

ARGS = ["--as-of", AS_OF.isoformat(), "--group-by", "desk", "--backend", "cpu"]


@pytest.fixture(scope="module")
def book_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("book")
    for name, t in every_kind_book(11).items():
        pq.write_table(t, folder / f"{name}.parquet")
    return folder


def test_scenarios_writes_every_output(book_dir, tmp_path):
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["scenarios", str(book_dir), "--out", str(out), *ARGS, "--report"])
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["heatmap_BTC.png", "heatmap_ETH.png", "risk_vectors.parquet", "scenarios.html",
                     "scenarios.parquet", "summary.json"]
    sc = pq.read_table(out / "scenarios.parquet")
    assert sc.column_names == ["level", "underlying", "desk", "scenario", "spot_move", "vol_case", "extended",
                               "weight", "pnl_usd", "pnl_coin", "pnl_taylor_usd", "worst"]
    assert sc.schema.field("pnl_coin").metadata[b"unit"] == b"coins"
    rv = pq.read_table(out / "risk_vectors.parquet")
    assert {len(v) for v in rv["standard"].to_pylist()} == {27}
    assert {len(v) for v in rv["extended"].to_pylist()} == {8}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["scenarios"] == 35
    assert "estimate" in summary["margin_note"]
    assert summary["parameters"]["BTC"]["price_range"] == 0.16
    html = (out / "scenarios.html").read_text()
    assert "data:image/png;base64" in html and "Worst weighted loss" in html
    assert "BTC: scenario P&L, full revaluation (USD)" in res.stdout
    assert "Worst weighted loss per group" in res.stdout


def test_scenarios_json_line_and_identical_reruns(book_dir, tmp_path):
    runner = CliRunner()
    a = runner.invoke(main, ["scenarios", str(book_dir), "--out", str(tmp_path / "a"), *ARGS, "--json"])
    assert a.exit_code == 0, a.output
    lines = a.stdout.strip().splitlines()
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert doc["status"] == "ok" and doc["scenarios"] == 35 and set(doc["worst"]) == {"BTC", "ETH"}
    assert not (tmp_path / "a" / "scenarios.html").exists()
    b = runner.invoke(main, ["scenarios", str(book_dir), "--out", str(tmp_path / "b"), *ARGS, "--no-report"])
    assert b.exit_code == 0, b.output
    for name in ("scenarios.parquet", "risk_vectors.parquet"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_scenarios_file_applies_per_underlying(book_dir, tmp_path):
    cfg = tmp_path / "s.toml"
    cfg.write_text("[defaults]\nprice_range = 0.1\n[underlying.ETH]\nprice_range = 0.2\n")
    res = CliRunner().invoke(main, ["scenarios", str(book_dir), "--out", str(tmp_path / "o"), *ARGS,
                                    "--scenarios", str(cfg), "--no-report"])
    assert res.exit_code == 0, res.output
    t = pq.read_table(tmp_path / "o" / "scenarios.parquet").to_pylist()
    edge = {r["underlying"]: r["spot_move"] for r in t if r["scenario"] == 26}
    assert edge == {"BTC": 0.1, "ETH": 0.2}


@pytest.mark.parametrize("text,key", [
    ("[defaults]\nprice_range = 1.5\n", "defaults.price_range"),
    ("[defaults]\nprice_rang = 0.1\n", "defaults.price_rang"),
    ("[defaults]\nvolatility_range_down = 0.5\n", "defaults.volatility_range_down"),
    ("[underlying.BTC]\nextended_moves = [0.5, 0.0]\n", "underlying.BTC.extended_moves[1]"),
    ("[underlying.BTC]\nextended_moves = [0.5]\n", "underlying.BTC.extended_moves"),
    ("[defaults]\nmm_factor = \"high\"\n", "defaults.mm_factor"),
    ("[whatever]\n", "whatever"),
    ("price_range = [", "(file)"),  # read_toml's key for a file that does not parse (as limits files)
])
def test_bad_scenarios_file_exit_2_and_nothing_written(book_dir, tmp_path, text, key):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    res = CliRunner().invoke(main, ["scenarios", str(book_dir), "--out", str(tmp_path / "o"), *ARGS,
                                    "--scenarios", str(cfg)])
    assert res.exit_code == 2, res.output
    assert key in res.stderr and str(cfg) in res.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("raw,key", [
    (b"[defaults]\nprice_range = " + b"9" * 400 + b"\n", "defaults.price_range"),  # float() overflows
    (b"[underlying.BTC]\nextended_moves = [0.5, " + b"1" * 400 + b"]\n", "underlying.BTC.extended_moves[1]"),
    (b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n", "(file)"),  # tomllib recursion
    (b"[defaults]\nprice_range = 0.1 # \xff\xfe\n", "(file)"),  # not UTF-8
])
def test_hostile_scenarios_file_exit_2_naming_key_and_file(book_dir, tmp_path, raw, key):
    """A scenarios file is read with the limits files' guards: no OverflowError, RecursionError or
    UnicodeDecodeError (exit 1) but InvalidConfig (exit 2) naming the key and the file."""
    cfg = tmp_path / "hostile.toml"
    cfg.write_bytes(raw)
    with pytest.raises(InvalidConfig) as ei:
        load_scenario_config(cfg)
    assert ei.value.key == key and ei.value.source == str(cfg)
    res = CliRunner().invoke(main, ["scenarios", str(book_dir), "--out", str(tmp_path / "o"), *ARGS,
                                    "--scenarios", str(cfg)])
    assert res.exit_code == 2, res.output
    assert key in res.stderr and str(cfg) in res.stderr
    assert not (tmp_path / "o").exists()


def test_vol_down_range_must_keep_vols_positive():
    with pytest.raises(InvalidConfig, match="30\\^short_term_vega_power"):
        parse_scenario_config({"defaults": {"volatility_range_down": 0.4}})  # 0.4 * 30^0.3 > 1
    parse_scenario_config({"defaults": {"volatility_range_down": 0.36}})  # 0.36 * 2.77 < 1
    assert load_scenario_config(None).defaults.price_range == 0.16


def test_output_exists_and_cuda_unavailable(book_dir, tmp_path):
    runner = CliRunner()
    out = tmp_path / "o"
    assert runner.invoke(main, ["scenarios", str(book_dir), "--out", str(out), *ARGS, "--no-report"]).exit_code == 0
    res = runner.invoke(main, ["scenarios", str(book_dir), "--out", str(out), *ARGS])
    assert res.exit_code == 2 and "--overwrite" in res.stderr
    res = runner.invoke(main, ["scenarios", str(book_dir), "--out", str(out), *ARGS, "--overwrite"])
    assert res.exit_code == 0
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") in ("", "0"):
        from gpuskew.core.backend import probe_cuda

        if not probe_cuda()[0]:
            res = runner.invoke(main, ["scenarios", str(book_dir), "--out", str(tmp_path / "c"),
                                       "--as-of", AS_OF.isoformat(), "--backend", "cuda"])
            assert res.exit_code == 75 and "CUDA" in res.stderr
            assert not (tmp_path / "c").exists()


def test_shipped_example_scenarios_file_is_valid():
    from importlib import resources

    path = resources.files("gpuskew.data").joinpath("scenarios.example.toml")
    cfg = load_scenario_config(str(path))
    assert cfg.defaults == load_scenario_config(None).defaults  # the file's [defaults] are the built-in ones
    assert cfg.for_underlying("ETH").price_range == 0.18
    assert cfg.for_underlying("USDC").extended_table_factor == 0.0

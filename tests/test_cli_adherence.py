"""CLI of the adherence workflow: --limits, --history, --fail-on, --demo-steps and `report`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from gpuskew.cli import main
from gpuskew.history import read_history

LIMITS = """
[defaults]
hysteresis = 0.1
target = { model = "neutral" }
band = { model = "fixed", coins = 100 }
thresholds = { warn = 0.8, breach = 1.0, critical = 1.5 }
hedge = { mode = "to_band" }

[[hedge_instrument]]
instrument = "BTC"
fee = 0.001
half_spread = 0.0005
lot_size = 0.01
"""


def _write_book(folder: Path, btc_qty: float) -> Path:
    """A one-underlying book of spot BTC: net delta = btc_qty coins, exactly."""
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"instrument": ["BTC"], "underlying": ["BTC"], "kind": ["spot"],
                             "settlement": ["linear"], "option_type": pa.array([None], pa.string()),
                             "strike": pa.array([None], pa.float64()),
                             "expiry": pa.array([None], pa.timestamp("us", tz="UTC")),
                             "contract_size": [1.0]}), folder / "instruments.parquet")
    pq.write_table(pa.table({"instrument": ["BTC", "BTC"], "quantity": [btc_qty / 2, btc_qty / 2],
                             "desk": ["a", "a"]}), folder / "positions.parquet")
    pq.write_table(pa.table({"underlying": ["BTC"], "spot": [100_000.0], "rate": [0.0], "vol": [0.5],
                             "funding_rate": [0.1]}), folder / "underlyings.parquet")
    pq.write_table(pa.table({"instrument": pa.array([], pa.string()), "iv": pa.array([], pa.float64()),
                             "forward": pa.array([], pa.float64())}), folder / "quotes.parquet")
    return folder


@pytest.fixture()
def limits_file(tmp_path) -> Path:
    path = tmp_path / "limits.toml"
    path.write_text(LIMITS)
    return path


def _run(args, runner=None):
    return (runner or CliRunner()).invoke(main, [str(a) for a in args])


def test_demo_run_writes_adherence_outputs_and_fail_on_exits_3_after_writing(tmp_path):
    out = tmp_path / "out"
    res = _run(["run", "--demo", "--demo-size", 3000, "--out", out, "--fail-on", "breach", "--json"])
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    worst = summary["worst_status"]
    assert res.exit_code == (3 if any(s in ("breach", "critical") for s in worst.values()) else 0)
    for name in ("positions.parquet", "exposures.parquet", "adherence.parquet", "hedges.parquet",
                 "alerts.jsonl", "summary.json"):
        assert (out / name).exists(), name
    assert summary["alerts"] == len((out / "alerts.jsonl").read_text().splitlines())
    adherence = pq.read_table(out / "adherence.parquet")
    assert {"skew", "status", "effective_status", "bid_size_mult", "reservation_offset_usd"} <= set(adherence.column_names)


def test_fail_on_breach_exit_3_and_ok_exit_0(tmp_path, limits_file):
    book = _write_book(tmp_path / "b", 130.0)  # skew 1.3: breach, not critical
    res = _run(["run", book, "--out", tmp_path / "o1", "--limits", limits_file, "--group-by", "desk",
                "--fail-on", "breach", "--as-of", "2026-11-20T08:00:00Z"])
    assert res.exit_code == 3, res.output
    assert (tmp_path / "o1" / "summary.json").exists()
    res = _run(["run", book, "--out", tmp_path / "o2", "--limits", limits_file, "--group-by", "desk",
                "--fail-on", "critical", "--as-of", "2026-11-20T08:00:00Z"])
    assert res.exit_code == 0, res.output


def test_invalid_limits_exit_2_with_key_path(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[defaults]\nband = { model = "fixed", coins = -1 }\n')
    res = _run(["run", "--demo", "--demo-size", 100, "--out", tmp_path / "o", "--limits", bad])
    assert res.exit_code == 2
    assert "defaults.band" in res.stderr and "-1" in res.stderr
    assert not (tmp_path / "o").exists()


def test_alerts_fire_on_transitions_with_hysteresis_over_a_sequence_of_runs(tmp_path, limits_file):
    history = tmp_path / "history"
    kinds = []
    path = [50.0, 105.0, 97.0, 95.0, 85.0, 50.0]  # skews 0.5, 1.05, 0.97, 0.95, 0.85, 0.5
    for k, qty in enumerate(path):
        book = _write_book(tmp_path / f"b{k}", qty)
        out = tmp_path / f"o{k}"
        res = _run(["run", book, "--out", out, "--limits", limits_file, "--history", history,
                    "--as-of", f"2026-11-20T08:{k:02d}:00Z"])
        assert res.exit_code == 0, res.output
        alerts = [json.loads(line) for line in (out / "alerts.jsonl").read_text().splitlines()]
        kinds.append(sorted((a["kind"], a["status"]) for a in alerts))
    assert kinds[0] == []                                 # 0.5: ok, nothing to say
    assert kinds[1] == [("raised", "breach")]             # 1.05: breach
    assert kinds[2] == [] and kinds[3] == []              # 0.97, 0.95: still breach (hysteresis 0.1)
    assert kinds[4] == [("de-escalated", "warn")]         # 0.85 < 1.0 - 0.1
    assert kinds[5] == [("cleared", "ok")]                # 0.5 < 0.8 - 0.1
    assert read_history(history, "adherence").num_rows == len(path)


def test_rerunning_the_same_run_does_not_double_history(tmp_path, limits_file):
    history = tmp_path / "history"
    book = _write_book(tmp_path / "b", 120.0)
    args = ["run", book, "--limits", limits_file, "--history", history, "--as-of", "2026-11-20T08:00:00Z"]
    assert _run(args + ["--out", tmp_path / "o1"]).exit_code == 0
    assert _run(args + ["--out", tmp_path / "o2"]).exit_code == 0
    assert read_history(history, "adherence").num_rows == 1


def test_two_concurrent_history_appends_lose_nothing(tmp_path, limits_file):
    history = tmp_path / "history"
    procs = []
    for k in range(4):
        book = _write_book(tmp_path / f"b{k}", 10.0 * (k + 1))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "gpuskew.cli", "run", str(book), "--out", str(tmp_path / f"o{k}"),
             "--limits", str(limits_file), "--history", str(history), "--as-of", f"2026-11-20T09:0{k}:00Z"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    adherence = read_history(history, "adherence")
    assert adherence.num_rows == 4
    assert sorted(adherence["actual"].to_pylist()) == [10.0, 20.0, 30.0, 40.0]


def test_demo_steps_and_report(tmp_path):
    history = tmp_path / "history"
    res = _run(["run", "--demo", "--demo-size", 1500, "--demo-steps", 6, "--history", history,
                "--out", tmp_path / "o"])
    assert res.exit_code == 0, res.output
    assert len(set(read_history(history, "adherence")["as_of"].to_pylist())) == 6
    res = _run(["report", "--history", history, "--out", tmp_path / "r", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["runs"] == 6
    html = (tmp_path / "r" / "report.html").read_text()
    assert "data:image/png;base64," in html
    assert (tmp_path / "r" / "report.parquet").exists()


def test_demo_steps_without_history_keep_alert_state_in_memory(tmp_path):
    res = _run(["run", "--demo", "--demo-size", 500, "--demo-steps", 3, "--out", tmp_path / "o", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["as_of"] == "2026-11-20T08:30:00Z" and summary["adherence"]["previous_run_found"]
    assert _run(["run", tmp_path / "o", "--demo-steps", 2, "--out", tmp_path / "o2"]).exit_code == 2


def test_report_on_empty_history_exit_2(tmp_path):
    (tmp_path / "h").mkdir()
    res = _run(["report", "--history", tmp_path / "h", "--out", tmp_path / "r"])
    assert res.exit_code == 2
    assert not (tmp_path / "r").exists()

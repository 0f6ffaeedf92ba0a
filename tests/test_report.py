"""Adherence report: metrics on hand-made histories with known answers, and the report files."""

from __future__ import annotations

import datetime as dt
import json
import math
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gpuskew.errors import InvalidInput
from gpuskew.history import append_run
from gpuskew.io import OutputExists
from gpuskew.reporting.report import build_report, group_metrics, report_table, run_weights
from gpuskew.schema import ADHERENCE_COLUMNS, TIMESTAMP

T0 = dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.timezone.utc)
_STRINGS = {"measure", "status", "target_model", "band_model"}
BTC = ("underlying", "BTC", None)
DESK_A = ("desk", "BTC", "a")
DESK_B = ("desk", "BTC", "b")
ETH = ("underlying", "ETH", None)


def _status(skew: float) -> str:
    a = abs(skew)
    return "critical" if a > 1.5 else "breach" if a > 1.0 else "warn" if a > 0.8 else "ok"


def make_adherence(rows: list[tuple[tuple[str, str, str | None], float]], as_of: dt.datetime,
                   half_width: float = 2.0) -> pa.Table:
    """Adherence rows from (group, skew) pairs; group = (level, underlying, desk). Target 1 coin,
    band target +/- half_width, actual = target + skew * half_width."""
    n = len(rows)
    skews = [s for _, s in rows]
    dev = [s * half_width for s in skews]
    values = {
        "measure": ["delta"] * n, "spot": [100.0] * n, "actual": [1.0 + d for d in dev],
        "target": [1.0] * n, "lower": [1.0 - half_width] * n, "upper": [1.0 + half_width] * n,
        "half_width_lower": [half_width] * n, "half_width_upper": [half_width] * n,
        "deviation": dev, "deviation_usd": [d * 100 for d in dev], "skew": skews,
        "status": [_status(s) for s in skews], "target_model": ["neutral"] * n,
        "band_model": ["fixed"] * n, "risk_weight_usd": [abs(d) * 100 for d in dev],
        "reservation_offset_usd": [0.0] * n, "bid_size_mult": [1.0] * n, "ask_size_mult": [1.0] * n,
    }
    cols = {
        "as_of": pa.array([as_of] * n, type=TIMESTAMP),
        "level": pa.array([g[0] for g, _ in rows], type=pa.string()),
        "underlying": pa.array([g[1] for g, _ in rows], type=pa.string()),
        "desk": pa.array([g[2] for g, _ in rows], type=pa.string()),
    }
    for name, _u, _d in ADHERENCE_COLUMNS:
        cols[name] = pa.array(values[name], type=pa.string() if name in _STRINGS else pa.float64())
    return pa.table(cols)


def make_hedges(rows: list[tuple[tuple[str, str, str | None], float, float, float]],
                as_of: dt.datetime) -> pa.Table:
    """Hedge rows from (group, contracts, coin_delta, est_cost_usd)."""
    n = len(rows)
    return pa.table({
        "as_of": pa.array([as_of] * n, type=TIMESTAMP),
        "level": [g[0] for g, *_ in rows], "underlying": [g[1] for g, *_ in rows],
        "desk": pa.array([g[2] for g, *_ in rows], type=pa.string()),
        "hedge_instrument": ["BTC-PERPETUAL"] * n, "kind": ["perpetual"] * n,
        "settlement": ["inverse"] * n, "mode": ["to_band"] * n,
        "side": ["buy" if c > 0 else "sell" for _, c, _, _ in rows],
        "contracts": [float(c) for _, c, _, _ in rows], "coin_delta": [float(d) for _, _, d, _ in rows],
        "est_cost_usd": [float(x) for *_, x in rows],
    })


# The hand-made history: runs every 10 minutes.
#   BTC total: skew 0.5, 0.9, 1.2, 0.3  -> in band 3 of 4 equal intervals
#   desk a:    skew 1.2, 1.6, 0.5, 1.1  -> breach, critical, ok, breach
#   desk b:    only in runs 2 and 3 (0.1, 0.2)
SKEWS = {BTC: [0.5, 0.9, 1.2, 0.3], DESK_A: [1.2, 1.6, 0.5, 1.1], DESK_B: [None, None, 0.1, 0.2]}
HEDGES = {0: [(DESK_A, 2, 0.2, 1.0)], 1: [(DESK_A, -3, -0.3, 1.5)], 2: [(BTC, -5, -0.5, 3.0)],
          3: [(DESK_A, 4, 0.4, 2.0)]}


def times(n: int = 4, step_minutes: float = 10) -> list[dt.datetime]:
    return [T0 + dt.timedelta(minutes=step_minutes * i) for i in range(n)]


@pytest.fixture
def history(tmp_path):
    root = tmp_path / "history"
    for i, t in enumerate(times()):
        rows = [(g, s[i]) for g, s in SKEWS.items() if s[i] is not None]
        append_run(root, t, {"adherence": make_adherence(rows, t), "hedges": make_hedges(HEDGES[i], t)},
                   run_id=f"run{i}")
    return root


def _row(table: pa.Table, group: tuple) -> dict:
    for r in table.to_pylist():
        if (r["level"], r["underlying"], r["desk"]) == group:
            return r
    raise KeyError(group)


# ---------------------------------------------------------------------------------------------
# metric functions


def test_run_weights_last_run_holds_the_median_interval():
    t = np.array(["2026-01-01T00:00", "2026-01-01T00:10", "2026-01-01T00:40"], dtype="datetime64[us]")
    assert run_weights(t).tolist() == [10.0, 30.0, 20.0]
    assert run_weights(t[:1]).tolist() == [0.0]
    assert run_weights(t[:0]).tolist() == []


def test_group_metrics_known_answers():
    m = group_metrics(np.array([0, 10, 20, 30, 40, 50.0]), np.full(6, 10.0),
                      np.array([0.5, 1.2, 1.3, 0.4, 1.7, 0.2]), np.array([0, 2, 2, 0, 3, 0]))
    assert m["fraction_in_band"] == pytest.approx(0.5)
    assert m["breach_count"] == 2
    assert m["breach_minutes_total"] == 30.0 and m["breach_minutes_longest"] == 20.0
    assert m["mean_time_to_recover_minutes"] == pytest.approx((20 + 10) / 2)
    assert m["mean_abs_skew"] == pytest.approx(np.mean([0.5, 1.2, 1.3, 0.4, 1.7, 0.2]))
    assert m["max_abs_skew"] == 1.7 and m["observed_minutes"] == 60.0


def test_recovery_is_back_in_band_not_just_out_of_breach():
    # breach threshold 1.2 configured: 1.1 is warn (breach over) but still out of band
    m = group_metrics(np.array([0, 10, 20, 30.0]), np.full(4, 10.0), np.array([1.3, 1.1, 0.9, 0.5]),
                      np.array([2, 1, 1, 0]))
    assert m["breach_count"] == 1 and m["breach_minutes_total"] == 10.0
    assert m["mean_time_to_recover_minutes"] == 20.0


def test_unrecovered_breach_has_null_recovery_time():
    m = group_metrics(np.array([0, 10.0]), np.array([10.0, 10.0]), np.array([0.2, -1.4]), np.array([0, 2]))
    assert m["mean_time_to_recover_minutes"] is None
    assert m["breach_count"] == 1 and m["breach_minutes_total"] == 10.0


def test_single_run_falls_back_to_plain_averages():
    m = group_metrics(np.array([0.0]), np.array([0.0]), np.array([1.2]), np.array([2]))
    assert m["fraction_in_band"] == 0.0 and m["mean_abs_skew"] == pytest.approx(1.2)
    assert m["breach_count"] == 1 and m["breach_minutes_total"] == 0.0


# ---------------------------------------------------------------------------------------------
# report table from a history


def test_report_table_known_answers(history):
    from gpuskew.history import read_history

    table = report_table(read_history(history, "adherence"), read_history(history, "hedges"))
    assert table.column_names[:3] == ["level", "underlying", "desk"]
    assert [(r["level"], r["desk"]) for r in table.to_pylist()] == [("underlying", None), ("desk", "a"),
                                                                  ("desk", "b")]
    btc = _row(table, BTC)
    assert btc["n_runs"] == 4 and btc["observed_minutes"] == 40.0
    assert btc["fraction_in_band"] == pytest.approx(0.75)
    assert btc["breach_count"] == 1 and btc["breach_minutes_total"] == 10.0
    assert btc["mean_time_to_recover_minutes"] == 10.0
    assert btc["mean_abs_skew"] == pytest.approx(0.725) and btc["max_abs_skew"] == pytest.approx(1.2)
    assert (btc["worst_status"], btc["last_status"]) == ("breach", "ok")
    assert (btc["hedge_proposals"], btc["hedge_contracts_abs"], btc["hedge_coins_abs"],
            btc["hedge_est_cost_usd"]) == (1, 5.0, 0.5, 3.0)
    a = _row(table, DESK_A)
    assert a["fraction_in_band"] == pytest.approx(0.25)
    assert a["breach_count"] == 2
    assert a["breach_minutes_total"] == 30.0 and a["breach_minutes_longest"] == 20.0
    assert a["mean_time_to_recover_minutes"] == 20.0  # the second breach has not recovered
    assert (a["worst_status"], a["last_status"]) == ("critical", "breach")
    assert a["hedge_proposals"] == 3 and a["hedge_contracts_abs"] == 9.0
    assert a["hedge_coins_abs"] == pytest.approx(0.9) and a["hedge_est_cost_usd"] == 4.5
    b = _row(table, DESK_B)
    assert b["n_runs"] == 2 and b["observed_minutes"] == 20.0 and b["fraction_in_band"] == 1.0
    assert b["breach_count"] == 0 and b["mean_time_to_recover_minutes"] is None
    assert b["hedge_proposals"] == 0 and b["hedge_contracts_abs"] == 0.0
    assert b["first_as_of"] == times()[2]


def test_unequal_intervals_weight_by_time(tmp_path):
    ts = [T0, T0 + dt.timedelta(minutes=10), T0 + dt.timedelta(minutes=40)]
    tables = [make_adherence([(BTC, s)], t) for s, t in zip([2.0, 0.0, 0.0], ts)]
    table = report_table(pa.concat_tables(tables))
    # weights 10, 30, then the median interval 20: out of band 10 of 60 minutes
    assert table.column("fraction_in_band")[0].as_py() == pytest.approx(50 / 60)
    assert table.column("mean_abs_skew")[0].as_py() == pytest.approx(2.0 * 10 / 60)


def test_same_as_of_twice_counts_once(tmp_path):
    root = tmp_path / "h"
    for i, t in enumerate(times(2)):
        append_run(root, t, {"adherence": make_adherence([(BTC, 1.2 if i else 0.1)], t)}, "a")
    append_run(root, T0, {"adherence": make_adherence([(BTC, 0.3)], T0)}, "b")  # same as_of, larger id
    from gpuskew.history import read_history

    table = report_table(read_history(root, "adherence"))
    assert table.column("n_runs")[0].as_py() == 2
    assert table.column("mean_abs_skew")[0].as_py() == pytest.approx((0.3 + 1.2) / 2)


# ---------------------------------------------------------------------------------------------
# build_report: files, filters, errors


def test_build_report_writes_every_file(history, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "report"
    summary = build_report(history, out)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["report.parquet", "report.csv", "delta_BTC.png", "skew_histogram.png",
                            "report.html", "summary.json"])
    assert summary["runs"] == 4 and summary["groups"] == 3
    assert summary["period_start"] == "2026-11-20T08:00:00Z" and summary["period_end"] == "2026-11-20T08:30:00Z"
    assert summary["worst_status_by_underlying"] == {"BTC": "critical"}
    assert summary["breach_count_total"] == 3
    assert summary["median_run_interval_minutes"] == 10.0
    assert json.loads((out / "summary.json").read_text()) == summary
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    table = pq.read_table(out / "report.parquet")
    assert table.num_rows == 3 and table.schema.field("fraction_in_band").metadata[b"unit"] == b""
    assert (out / "report.csv").read_text().splitlines()[0].startswith('"level","underlying","desk"')


def test_html_is_self_contained_and_embeds_the_charts(history, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "report"
    build_report(history, out)
    text = (out / "report.html").read_text()
    images = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == 2  # delta_BTC.png and skew_histogram.png
    import base64

    embedded = {base64.b64decode(i) for i in images}
    assert embedded == {(out / "delta_BTC.png").read_bytes(), (out / "skew_histogram.png").read_bytes()}
    assert "http://" not in text and "https://" not in text and "<script" not in text
    assert '<span class="st st-critical">critical</span>' in text
    assert "75.0%" in text  # the BTC total's fraction in band
    for word in ("in band", "breaches", "mean recovery", "Definitions", "2026-11-20T08:00:00Z"):
        assert word in text
    assert "$" not in text.replace("$$", "")  # every template field substituted


def test_build_report_period_filter(history, tmp_path):
    pytest.importorskip("matplotlib")
    summary = build_report(history, tmp_path / "r", start=times()[1], end="2026-11-20T08:20:00Z")
    assert summary["runs"] == 2
    assert summary["from"] == "2026-11-20T08:10:00Z" and summary["to"] == "2026-11-20T08:20:00Z"
    table = pq.read_table(tmp_path / "r" / "report.parquet")
    assert _row(table, BTC)["fraction_in_band"] == pytest.approx(0.5)  # 0.9 in, 1.2 out


def test_build_report_refuses_to_overwrite_unless_asked(history, tmp_path):
    pytest.importorskip("matplotlib")
    build_report(history, tmp_path / "r")
    with pytest.raises(OutputExists):
        build_report(history, tmp_path / "r")
    build_report(history, tmp_path / "r", overwrite=True)


def test_empty_history_is_invalid_input_naming_the_folder(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidInput) as info:
        build_report(empty, tmp_path / "out")
    assert str(empty) in str(info.value) and info.value.exit_code == 2
    assert not (tmp_path / "out").exists()
    with pytest.raises(InvalidInput, match="no such folder"):
        build_report(tmp_path / "missing", tmp_path / "out")


def test_period_without_runs_is_invalid_input(history, tmp_path):
    with pytest.raises(InvalidInput, match="between 2027-01-01T00:00:00Z and the end"):
        build_report(history, tmp_path / "out", start="2027-01-01T00:00:00Z")


def test_report_with_several_underlyings_and_no_hedges(tmp_path):
    pytest.importorskip("matplotlib")
    root = tmp_path / "h"
    for i, t in enumerate(times(6)):
        rows = [(BTC, math.sin(i)), (ETH, 1.4 * math.cos(i)), (DESK_A, 1.3 * math.sin(i + 1))]
        append_run(root, t, {"adherence": make_adherence(rows, t)}, f"r{i}")
    summary = build_report(root, tmp_path / "out")
    assert {"delta_BTC.png", "delta_ETH.png"} <= set(summary["files"])
    table = pq.read_table(tmp_path / "out" / "report.parquet")
    assert table.column("hedge_proposals").to_pylist() == [0, 0, 0]
    assert table.column("underlying").to_pylist() == ["BTC", "BTC", "ETH"]


def test_report_table_from_in_memory_tables_without_run_ids():
    ts = times(2)
    adherence = pa.concat_tables([make_adherence([(DESK_A, 1.2)], ts[0]), make_adherence([(DESK_A, 0.2)], ts[1])])
    hedges = make_hedges([(DESK_A, -7, -0.7, 2.0)], ts[0])
    row = report_table(adherence, hedges).to_pylist()[0]
    assert (row["hedge_proposals"], row["hedge_contracts_abs"]) == (1, 7.0)
    assert row["fraction_in_band"] == 0.5 and row["mean_time_to_recover_minutes"] == 10.0


def test_overwriting_a_report_removes_the_charts_of_the_earlier_report(tmp_path):
    """A report re-run over an earlier one (--overwrite) leaves no file the new summary.json does
    not list: the chart of an underlying outside the new period goes."""
    pytest.importorskip("matplotlib")
    root = tmp_path / "h"
    for i, t in enumerate(times(4)):
        rows = [(BTC, 0.1 * i)] + ([(ETH, 0.2)] if i < 2 else [])
        append_run(root, t, {"adherence": make_adherence(rows, t)}, f"r{i}")
    out = tmp_path / "out"
    first = build_report(root, out)
    assert "delta_ETH.png" in first["files"] and (out / "delta_ETH.png").is_file()
    (out / "notes.txt").write_text("mine")  # a file no report wrote stays
    second = build_report(root, out, start=times(4)[2], overwrite=True)
    assert "delta_ETH.png" not in second["files"]
    assert sorted(p.name for p in out.iterdir()) == sorted([*second["files"], "notes.txt"])


def test_publish_run_removes_what_the_earlier_summary_listed_only_with_overwrite(tmp_path):
    from gpuskew.io import publish_run
    from gpuskew.io.atomic import listed_outputs

    out = tmp_path / "out"
    (tmp_path / "outside.txt").write_text("keep")

    def text(value):
        return lambda p: p.write_text(value)

    summary = {"files": ["a.txt", "b.txt", "../outside.txt", "/etc/passwd", 3],
               "outputs": {"files": ["c.txt", "summary.json"]}}
    publish_run(out, {"a.txt": text("a"), "b.txt": text("b"), "c.txt": text("c"),
                      "summary.json": text(json.dumps(summary))}, overwrite=False)
    assert listed_outputs(out) == ["a.txt", "b.txt", "c.txt", "summary.json"]
    publish_run(out, {"a.txt": text("a2"), "summary.json": text(json.dumps({"files": ["a.txt"]}))},
                overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "summary.json"]
    assert (tmp_path / "outside.txt").read_text() == "keep"
    (out / "summary.json").write_text("not json")  # an unreadable marker: nothing removed, no error
    publish_run(out, {"d.txt": text("d")}, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "d.txt", "summary.json"]


def test_report_cli_out_follows_the_shared_out_options(history, tmp_path, monkeypatch):
    """`gpuskew report` takes --out/--overwrite from GPUSKEW_OUT/GPUSKEW_OVERWRITE like every command,
    and refuses, before any work, an --out holding a report (without --overwrite) or the filesystem root."""
    pytest.importorskip("matplotlib")
    from click.testing import CliRunner

    from gpuskew.cli import main

    out = tmp_path / "r"
    monkeypatch.setenv("GPUSKEW_OUT", str(out))
    res = CliRunner().invoke(main, ["report", "--history", str(history), "--json"])
    assert res.exit_code == 0, res.output
    assert (out / "summary.json").is_file()
    res = CliRunner().invoke(main, ["report", "--history", str(history), "--json"])
    assert res.exit_code == 2 and "--overwrite" in res.stderr
    monkeypatch.setenv("GPUSKEW_OVERWRITE", "1")
    res = CliRunner().invoke(main, ["report", "--history", str(history), "--json"])
    assert res.exit_code == 0, res.output
    monkeypatch.delenv("GPUSKEW_OVERWRITE")
    res = CliRunner().invoke(main, ["report", "--history", str(history), "--out", "/"])
    assert res.exit_code == 2 and "filesystem root" in res.stderr


def test_pages_share_the_house_style_and_one_set_of_chart_helpers():
    """The scenario page uses reporting.pages (style, matplotlib loader, PNG saver, <img>, file
    names) like the adherence report; the report's old private names stay for the backtest reports."""
    from gpuskew.reporting import pages, report, scenarios_page

    assert (report._matplotlib, report._save_png, report._img, report._safe_name) == (
        pages.matplotlib_figure, pages.save_png, pages.img_tag, pages.safe_name)
    assert scenarios_page.safe_name is pages.safe_name
    assert not any(hasattr(scenarios_page, n) for n in ("_matplotlib", "_img"))
    summary = {"as_of": "2026-11-20T08:00:00Z", "counts": {"positions": 3, "scenarios": 35},
               "backend": {"used": "cpu"}, "margin_note": "an estimate", "version": "0",
               "worst": [{"level": "underlying", "underlying": "BTC", "scenario": "s1", "spot_move": -0.1,
                          "vol_case": "up", "weight": 1.0, "pnl_usd": -5.0}]}
    page = scenarios_page.render_page(summary, [])
    assert pages.house_style() in page and "<td>up</td>" in page and '<td class="num">-5.00</td>' in page

"""Alerts: hysteresis over sequences of runs, transitions only, JSONL output, summaries."""

from __future__ import annotations

import datetime as dt
import json
import math
import random

import pyarrow as pa
import pytest

from gpuskew.adherence.alerts import (alerts_table, dumps_alerts_jsonl, effective_status, evaluate_alerts,
                            summarise_alerts, write_alerts_jsonl)
from gpuskew.schema import ADHERENCE, ALERTS, ADHERENCE_COLUMNS, TIMESTAMP

T0 = dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.timezone.utc)
_STRINGS = {"measure", "status", "target_model", "band_model"}


def _status(skew: float) -> str:
    a = abs(skew)
    return "critical" if a > 1.5 else "breach" if a > 1.0 else "warn" if a > 0.8 else "ok"


def make_adherence(skews: list[float], as_of: dt.datetime = T0,
                   groups: list[tuple[str, str, str | None]] | None = None,
                   half_width: float = 10.0, spot: float = 50_000.0) -> pa.Table:
    """An adherence table (schema.ADHERENCE_COLUMNS) with one group per skew.

    groups: (level, underlying, desk) per row; default one underlying-level group per skew
    (BTC, ETH, SOL, ...). deviation = skew * half_width coins, target 0.
    """
    if groups is None:
        names = ["BTC", "ETH", "SOL", "XRP", "DOGE", "ADA"]
        groups = [("underlying", names[i], None) for i in range(len(skews))]
    n = len(skews)
    dev = [s * half_width for s in skews]
    cols = {
        "as_of": pa.array([as_of] * n, type=TIMESTAMP),
        "level": pa.array([g[0] for g in groups], type=pa.string()),
        "underlying": pa.array([g[1] for g in groups], type=pa.string()),
        "desk": pa.array([g[2] for g in groups], type=pa.string()),
    }
    values = {
        "measure": ["delta"] * n, "spot": [spot] * n, "actual": dev, "target": [0.0] * n,
        "lower": [-half_width] * n, "upper": [half_width] * n,
        "half_width_lower": [half_width] * n, "half_width_upper": [half_width] * n,
        "deviation": dev, "deviation_usd": [d * spot for d in dev], "skew": list(skews),
        "status": [_status(s) for s in skews], "target_model": ["neutral"] * n,
        "band_model": ["fixed"] * n, "risk_weight_usd": [abs(d) * spot for d in dev],
        "reservation_offset_usd": [-3.5 * s for s in skews],
        "bid_size_mult": [min(2.0, max(0.0, 1 - s)) for s in skews],
        "ask_size_mult": [min(2.0, max(0.0, 1 + s)) for s in skews],
    }
    for name, _unit, _doc in ADHERENCE_COLUMNS:
        cols[name] = pa.array(values[name], type=pa.string() if name in _STRINGS else pa.float64())
    return pa.table(cols)


def run_path(skews: list[float], hysteresis: float = 0.1, **kw) -> list[tuple[list[dict], pa.Table]]:
    """Evaluate a sequence of runs of one group, feeding each run's effective table forward."""
    out, previous = [], None
    for i, s in enumerate(skews):
        t = T0 + dt.timedelta(minutes=i)
        alerts, effective = evaluate_alerts(make_adherence([s], t), previous, hysteresis=hysteresis,
                                            as_of=t, **kw)
        out.append((alerts, effective))
        previous = effective
    return out


def kinds(results) -> list[list[tuple[str, str]]]:
    return [[(a["kind"], a["status"]) for a in alerts] for alerts, _ in results]


def effective(results) -> list[str]:
    return [eff.column("effective_status")[0].as_py() for _, eff in results]


# ---------------------------------------------------------------------------------------------
# hysteresis


def test_hysteresis_path_from_the_issue():
    res = run_path([0.5, 1.05, 0.97, 0.95, 0.85, 0.5])
    assert effective(res) == ["ok", "breach", "breach", "breach", "warn", "ok"]
    assert kinds(res) == [[], [("raised", "breach")], [], [], [("de-escalated", "warn")],
                          [("cleared", "ok")]]
    # the raw status at 0.97 is warn: hysteresis holds the breach
    assert res[2][1].column("status")[0].as_py() == "warn"


def test_de_escalation_only_strictly_below_threshold_minus_hysteresis():
    # 0.9 is not below 1.0 - 0.1: still breach; 0.899 is
    assert effective(run_path([1.05, 0.9, 0.899])) == ["breach", "breach", "warn"]


def test_drop_straight_to_ok_clears_in_one_alert():
    res = run_path([1.2, 0.95, 0.3])
    assert kinds(res) == [[("raised", "breach")], [], [("cleared", "ok")]]
    assert res[2][0][0]["previous_status"] == "breach"
    crossed = res[2][0][0]["threshold_crossed"]
    assert crossed == {"name": "warn", "value": 0.7, "direction": "below", "hysteresis": 0.1}


def test_escalation_is_immediate_and_de_escalation_steps_down_levels():
    res = run_path([0.5, 1.6, 1.45, 1.35, 1.2, 0.75, 0.65])
    assert effective(res) == ["ok", "critical", "critical", "breach", "breach", "warn", "ok"]
    assert kinds(res) == [[], [("raised", "critical")], [], [("de-escalated", "breach")], [],
                          [("de-escalated", "warn")], [("cleared", "ok")]]
    up = res[1][0][0]["threshold_crossed"]
    assert up == {"name": "critical", "value": 1.5, "direction": "above"}


def test_escalated_kind_and_negative_skews_are_symmetric():
    res = run_path([-0.85, -1.1, -1.7, -0.92])
    assert kinds(res) == [[("raised", "warn")], [("escalated", "breach")], [("escalated", "critical")],
                          [("de-escalated", "breach")]]


def test_steady_state_repeats_no_alert():
    for level in (0.85, 1.2, 2.0):
        res = run_path([level] * 20)
        assert sum(len(a) for a, _ in res) == 1
    # oscillating inside the hysteresis zone never re-fires
    res = run_path([1.05, 0.95, 1.04, 0.92, 1.08, 0.91, 1.01])
    assert sum(len(a) for a, _ in res) == 1


def test_zero_hysteresis_follows_the_raw_status():
    res = run_path([1.05, 0.97, 1.05], hysteresis=0.0)
    assert effective(res) == ["breach", "warn", "breach"]
    assert kinds(res) == [[("raised", "breach")], [("de-escalated", "warn")], [("escalated", "breach")]]


def test_effective_status_function():
    values = (0.8, 1.0, 1.5)
    assert effective_status(0.95, "breach", values, 0.1) == "breach"
    assert effective_status(0.85, "breach", values, 0.1) == "warn"
    assert effective_status(0.2, None, values, 0.1) == "ok"
    assert effective_status(1.2, "warn", values, 0.1) == "breach"
    assert effective_status(math.nan, "breach", values, 0.1, raw="ok") == "breach"


# ---------------------------------------------------------------------------------------------
# first run, new groups, per-group configuration


def test_without_history_every_group_not_ok_is_raised():
    alerts, eff = evaluate_alerts(make_adherence([0.1, 0.9, 1.2, 1.8]), None)
    assert [(a["group"]["underlying"], a["kind"], a["status"]) for a in alerts] == [
        ("XRP", "raised", "critical"), ("SOL", "raised", "breach"), ("ETH", "raised", "warn")]
    assert eff.column("effective_status").to_pylist() == ["ok", "warn", "breach", "critical"]
    assert eff.column_names[:-1] == make_adherence([0.1]).column_names


def test_group_absent_from_previous_run_counts_as_ok():
    groups1 = [("underlying", "BTC", None)]
    groups2 = [("underlying", "BTC", None), ("desk", "BTC", "mm")]
    prev = evaluate_alerts(make_adherence([1.2], groups=groups1), None)[1]
    alerts, _ = evaluate_alerts(make_adherence([1.2, 1.3], T0 + dt.timedelta(minutes=1), groups2), prev)
    assert [(a["group"], a["kind"]) for a in alerts] == [
        ({"level": "desk", "underlying": "BTC", "desk": "mm"}, "raised")]


def test_previous_with_different_tag_columns_still_matches_groups():
    prev = evaluate_alerts(make_adherence([1.2]), None)[1].drop_columns(["desk"])
    alerts, eff = evaluate_alerts(make_adherence([0.95], T0 + dt.timedelta(minutes=1)), prev,
                                  hysteresis=0.1)
    assert alerts == [] and eff.column("effective_status")[0].as_py() == "breach"


def test_previous_without_effective_status_uses_raw_status():
    prev = make_adherence([1.2])
    alerts, _ = evaluate_alerts(make_adherence([1.25]), prev)
    assert alerts == []


def test_thresholds_per_group_callable_and_mapping():
    groups = [("desk", "BTC", "loose"), ("desk", "BTC", "tight")]

    def thresholds(row):
        return {"warn": 1.6, "breach": 2.0, "critical": 3.0} if row["desk"] == "loose" else {}

    alerts, eff = evaluate_alerts(make_adherence([1.2, 1.2], groups=groups), None, thresholds)
    assert eff.column("effective_status").to_pylist() == ["ok", "breach"]
    assert [a["group"]["desk"] for a in alerts] == ["tight"]
    # a mapping applies to every group, missing keys default; objects with attributes work too
    _, eff = evaluate_alerts(make_adherence([1.2, 1.2], groups=groups), None, {"breach": 1.3})
    assert eff.column("effective_status").to_pylist() == ["warn", "warn"]

    class Thr:
        warn, breach, critical = 0.5, 0.6, 0.7

    _, eff = evaluate_alerts(make_adherence([0.65]), None, lambda row: Thr())
    assert eff.column("effective_status").to_pylist() == ["breach"]


def test_hysteresis_per_group_callable():
    groups = [("desk", "BTC", "a"), ("desk", "BTC", "b")]
    prev = evaluate_alerts(make_adherence([1.1, 1.1], groups=groups), None)[1]
    _, eff = evaluate_alerts(make_adherence([0.95, 0.95], groups=groups), prev,
                             hysteresis=lambda row: 0.0 if row["desk"] == "a" else 0.1)
    assert eff.column("effective_status").to_pylist() == ["warn", "breach"]


def test_nan_skew_keeps_the_tables_status():
    table = make_adherence([1.2])
    table = table.set_column(table.column_names.index("skew"), "skew", pa.array([math.nan]))
    alerts, eff = evaluate_alerts(table, None)
    assert eff.column("effective_status")[0].as_py() == "breach"
    assert alerts[0]["skew"] is None
    json.dumps(alerts, allow_nan=False)


# ---------------------------------------------------------------------------------------------
# alert content


def _hedges(desk: str | None = None) -> pa.Table:
    return pa.table({
        "as_of": pa.array([T0], type=TIMESTAMP), "level": ["underlying"], "underlying": ["BTC"],
        "desk": pa.array([desk], type=pa.string()),
        "hedge_instrument": ["BTC-PERPETUAL"], "kind": ["perpetual"], "settlement": ["inverse"],
        "mode": ["to_band"], "side": ["sell"], "contracts": [-12.3], "coin_delta": [-2.0],
        "pre_trade_delta": [12.0], "post_trade_delta": [10.0], "post_trade_deviation": [10.0],
        "est_cost_usd": [41.2], "fee_usd": [30.0], "spread_usd": [11.2], "impact_usd": [0.0],
        "funding_usd": [0.0], "lot_limited": [False],
    })


def test_alert_object_fields_and_suggested_hedge():
    alerts, _ = evaluate_alerts(make_adherence([1.2]), None, hedges=_hedges(), as_of=T0)
    (a,) = alerts
    assert a["as_of"] == "2026-11-20T08:00:00Z"
    assert a["group"] == {"level": "underlying", "underlying": "BTC"}
    assert (a["kind"], a["status"], a["previous_status"], a["raw_status"]) == ("raised", "breach", "ok", "breach")
    assert a["skew"] == pytest.approx(1.2)
    assert a["deviation"] == pytest.approx(12.0)
    assert a["deviation_usd"] == pytest.approx(600_000.0)
    assert a["threshold_crossed"] == {"name": "breach", "value": 1.0, "direction": "above"}
    assert a["suggested_action"] == "hedge: sell 12.3 BTC-PERPETUAL contracts (to_band), est. cost 41.20 USD"
    json.loads(json.dumps(a, allow_nan=False))


def test_suggested_quote_skew_without_hedge():
    alerts, _ = evaluate_alerts(make_adherence([0.9]), None)
    assert alerts[0]["suggested_action"] == "skew quotes: reservation offset -3.1 USD, bid x0.10 / ask x1.90"
    # a hedge of another group is not used
    groups = [("desk", "BTC", "mm")]
    alerts, _ = evaluate_alerts(make_adherence([1.2], groups=groups), None, hedges=_hedges())
    assert alerts[0]["suggested_action"].startswith("skew quotes:")
    alerts, _ = evaluate_alerts(make_adherence([1.2], groups=groups), None, hedges=_hedges("mm").set_column(
        1, "level", pa.array(["desk"])))
    assert alerts[0]["suggested_action"].startswith("hedge: sell 12.3")


def test_as_of_defaults_to_the_tables_and_accepts_strings():
    t = dt.datetime(2026, 1, 2, 3, 4, 5, 600_000, tzinfo=dt.timezone.utc)
    alerts, _ = evaluate_alerts(make_adherence([1.2], t), None)
    assert alerts[0]["as_of"] == "2026-01-02T03:04:05.600000Z"
    alerts, _ = evaluate_alerts(make_adherence([1.2]), None, as_of="2026-01-02T03:04:05Z")
    assert alerts[0]["as_of"] == "2026-01-02T03:04:05Z"


# ---------------------------------------------------------------------------------------------
# JSONL, table, summary


def _many_alerts() -> list[dict]:
    groups = [("underlying", "BTC", None), ("desk", "BTC", "b"), ("desk", "BTC", "a"),
              ("underlying", "ETH", None), ("desk", "ETH", "a")]
    alerts, _ = evaluate_alerts(make_adherence([1.2, 0.9, 1.7, 1.2, 0.85], groups=groups), None)
    return alerts


def test_write_alerts_jsonl_is_compact_sorted_deterministic_and_atomic(tmp_path):
    alerts = _many_alerts()
    path = tmp_path / "alerts.jsonl"
    write_alerts_jsonl(alerts, path)
    first = path.read_bytes()
    shuffled = alerts[:]
    random.Random(1).shuffle(shuffled)
    write_alerts_jsonl(shuffled, path)
    assert path.read_bytes() == first
    lines = first.decode().splitlines()
    assert len(lines) == 5
    for line in lines:
        obj = json.loads(line)
        assert line == json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    statuses = [json.loads(line)["status"] for line in lines]
    assert statuses == ["critical", "breach", "breach", "warn", "warn"]
    groups = [json.loads(line)["group"] for line in lines]
    assert groups[1]["underlying"] == "BTC" and groups[2]["underlying"] == "ETH"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alerts.jsonl"]  # no temp file left


def test_write_no_alerts_gives_empty_file(tmp_path):
    write_alerts_jsonl([], tmp_path / "alerts.jsonl")
    assert (tmp_path / "alerts.jsonl").read_bytes() == b""
    assert dumps_alerts_jsonl([]) == ""


def test_alerts_table_round_trip():
    alerts = _many_alerts()
    table = alerts_table(alerts)
    assert table.num_rows == 5
    assert ALERTS.group_columns(table) == ["level", "underlying", "desk"]
    assert table.column("threshold_name").to_pylist()[0] == "critical"
    assert table.schema.field("as_of").type == TIMESTAMP
    assert alerts_table([]).num_rows == 0


def test_summarise_alerts():
    assert summarise_alerts([]) == "alerts: none"
    text = summarise_alerts(_many_alerts())
    lines = text.splitlines()
    assert lines[0] == "alerts: 5 (5 raised); now critical 1, breach 2, warn 2"
    assert lines[1].split()[:3] == ["critical", "BTC", "desk=a:"]
    assert lines[-1] == "  ... and 2 more in alerts.jsonl"
    cleared = run_path([1.2, 0.1])[1][0]
    assert "cleared" in summarise_alerts(cleared)

"""The monitor's HTTP side: /metrics parsed with prometheus_client's parser (and promtool where
installed), /api/state, /api/stream, /healthz, escaping of text from inputs; and
``gpuskew run --prom-textfile``."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess

import pytest

from monitor_support import (demo_book, example_limits, free_port, gpuskew_cmd, http_get, monitor_env, start_monitor,
                             stop, wait_for, write_jsonl)

prometheus_client = pytest.importorskip("prometheus_client")
pytest.importorskip("aiohttp")

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

HOSTILE = '<script>alert("x")</script>&"desk'
REQUIRED = {
    "gpuskew_net_delta_coins": "gauge", "gpuskew_target_coins": "gauge", "gpuskew_band_lower_coins": "gauge",
    "gpuskew_band_upper_coins": "gauge", "gpuskew_skew_ratio": "gauge", "gpuskew_status": "gauge",
    "gpuskew_events": "counter", "gpuskew_events_rejected": "counter", "gpuskew_event_to_publish_seconds": "histogram",
    "gpuskew_feed_age_seconds": "gauge", "gpuskew_last_publish_timestamp_seconds": "gauge",
}


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    """A monitor serving HTTP, fed a day with a hostile desk name, left running (following its file)."""
    from gpuskew.core.book import load_book
    from gpuskew.monitor.sample import sample_day
    from gpuskew.synthetic.demo import DEMO_AS_OF

    root = tmp_path_factory.mktemp("http")
    book = demo_book(root / "book", n=600)
    events = sample_day(load_book(book).tables, DEMO_AS_OF, n_events=300, seed=9)
    events.append({"type": "fill", "ts": "2026-11-20T16:00:00Z", "trade_id": "hostile", "instrument": "BTC-PERPETUAL",
                   "quantity": 100000.0, "price": 97000.0, "tags": {"desk": HOSTILE, "book": "b"}})
    events.append("this is not json")
    day = write_jsonl(root / "day.jsonl", events)
    port = free_port()
    log = root / "monitor.log"
    proc = start_monitor(str(book), "--limits", str(example_limits()), "--group-by", "desk", "--source", f"file:{day}",
                         "--state", str(root / "st"), "--http", f"127.0.0.1:{port}", "--backend", "cpu", log=log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_get(base + "/healthz")[0] == 200, 120, what="/healthz ok")
        wait_for(lambda: json.loads(http_get(base + "/api/state")[1])["events"]["applied"].get("fill", 0) > 100, 60,
                 what="events applied")
        wait_for(lambda: b"hostile" in (root / "st" / "journal").joinpath(
            sorted(p.name for p in (root / "st" / "journal").iterdir())[-1]).read_bytes(), 60, what="day journaled")
        yield base, root
    finally:
        assert stop(proc, signal.SIGTERM) == 0, log.read_text()[-2000:]


def test_metrics_parse_and_carry_the_required_families(running):
    base, _ = running
    status, body, headers = http_get(base + "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    for name, kind in REQUIRED.items():
        assert name in families, name
        assert families[name].type == kind, name
    net = families["gpuskew_net_delta_coins"].samples
    assert {s.labels["level"] for s in net} == {"underlying", "desk", "desk,book"}  # the configured levels only
    assert all(set(s.labels) == {"level", "underlying", "group"} for s in net)
    assert any(s.labels["group"] == f"desk={HOSTILE}" for s in net)  # label values escaped by the exposition
    status_values = {s.value for s in families["gpuskew_status"].samples}
    assert status_values <= {0.0, 1.0, 2.0, 3.0}
    events = {s.labels["type"]: s.value for s in families["gpuskew_events"].samples if s.name == "gpuskew_events_total"}
    assert events["fill"] > 100 and events["index"] > 10
    rejected = {s.labels["reason"]: s.value for s in families["gpuskew_events_rejected"].samples
                if s.name == "gpuskew_events_rejected_total"}
    assert rejected["invalid_json"] == 1.0
    count = [s for s in families["gpuskew_event_to_publish_seconds"].samples if s.name.endswith("_count")][0]
    assert count.value >= 300
    ages = {s.labels["source"]: s.value for s in families["gpuskew_feed_age_seconds"].samples}
    assert len(ages) == 1 and list(ages.values())[0] >= 0


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed here")
def test_metrics_pass_promtool(running):
    base, _ = running
    body = http_get(base + "/metrics")[1]
    proc = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
    assert proc.returncode == 0, proc.stderr


def test_api_state_escapes_text_from_inputs_and_carries_the_groups(running):
    base, _ = running
    status, body, headers = http_get(base + "/api/state")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert b"<script" not in body and b"</script" not in body and b"&\"" not in body
    state = json.loads(body)
    desks = {g["group"].get("desk") for u in state["underlyings"] for g in u["groups"]}
    assert HOSTILE in desks  # the text itself survives, escaped in transit
    btc = next(u for u in state["underlyings"] if u["underlying"] == "BTC")
    group = btc["groups"][0]
    assert {"actual", "target", "lower", "upper", "skew", "effective_status", "measure"} <= set(group)
    assert state["as_of"].endswith("Z") and state["positions"]["priced"] > 500
    assert state["feeds"][0]["kind"] == "file" and state["events"]["rejected"]["invalid_json"] == 1


def test_healthz_stream_and_static_assets(running):
    import urllib.request

    base, _ = running
    status, body, _ = http_get(base + "/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"
    with urllib.request.urlopen(base + "/api/stream", timeout=10) as resp:
        assert resp.headers["Content-Type"] == "text/event-stream"
        first = resp.readline().decode()
        data = resp.readline().decode()
        while not data.startswith("data: "):
            data = resp.readline().decode()
    assert first.startswith("event: state")
    assert json.loads(data[len("data: "):])["as_of"]
    status, page, headers = http_get(base + "/")
    assert status == 200 and b"/static/dashboard.js" in page and b"http" not in page.split(b"<body>")[0].replace(
        b"http-equiv", b"")
    assert "script-src 'self'" in headers["Content-Security-Policy"]  # no CDN, no inline script
    for name in ("dashboard.js", "dashboard.css"):
        assert http_get(base + "/static/" + name)[0] == 200
    assert http_get(base + "/static/..%2fservice.py")[0] == 404


def test_run_writes_a_prometheus_textfile(tmp_path):
    book = demo_book(tmp_path / "book", n=300)
    target = tmp_path / "textfile" / "gpuskew.prom"
    target.parent.mkdir()
    proc = subprocess.run(gpuskew_cmd("run", str(book), "--limits", str(example_limits()), "--as-of",
                                      "2026-11-20T08:00:00Z", "--out", str(tmp_path / "out"), "--backend", "cpu",
                                      "--prom-textfile", str(target)), capture_output=True, text=True,
                          env=monitor_env(), timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    families = {f.name: f for f in text_string_to_metric_families(target.read_text())}
    for name in ("gpuskew_net_delta_coins", "gpuskew_status", "gpuskew_skew_ratio", "gpuskew_adherence_score",
                 "gpuskew_last_run_timestamp_seconds"):
        assert name in families
    assert families["gpuskew_last_run_timestamp_seconds"].samples[0].value == 1795161600.0
    assert not list(target.parent.glob(".*tmp*"))  # written atomically: no temporary left

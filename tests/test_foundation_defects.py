"""Regression tests of the defects a new user and an attacker found (foundation issue, item 5).

Each test names the defect it guards; each failed before the fix.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import gpuskew
from gpuskew.cli import main
from gpuskew.history import append_run, committed_runs, read_history
from gpuskew.synthetic.demo import DEMO_AS_OF, make_demo_book, write_demo_book

AS_OF = "2026-11-20T08:00:00Z"
LIMITS = Path(__file__).resolve().parent.parent / "gpuskew" / "data" / "limits.example.toml"


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("book")
    write_demo_book(folder, n_positions=800, seed=3)
    return folder


def run(*args, **kw):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, **kw)
    return result


def _copy(book: Path, to: Path) -> Path:
    shutil.copytree(book, to)
    return to


def _write_limits(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "limits.toml"
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------------------------
# limits and levels


def test_limits_without_group_by_compute_the_levels_they_manage(book, tmp_path):
    res = run("run", book, "--out", tmp_path / "o", "--as-of", AS_OF, "--limits", LIMITS, "--json")
    assert res.exit_code == 0, res.output
    adh = pq.read_table(tmp_path / "o" / "adherence.parquet")
    assert {"underlying", "desk", "desk,book"} <= set(adh["level"].to_pylist())
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["group_by"] == [["desk"], ["desk", "book"]]
    assert summary["adherence"]["unmatched_rules"] == []


def test_a_rule_matching_no_group_warns_and_strict_refuses(book, tmp_path):
    limits = _write_limits(tmp_path, LIMITS.read_text() + '\n[[group]]\nmatch = { desk = "no-such-desk" }\n'
                                                          'band = { model = "fixed", coins = 1 }\n')
    res = run("run", book, "--out", tmp_path / "o", "--as-of", AS_OF, "--limits", limits)
    assert res.exit_code == 0
    assert "matches no group" in res.stderr and "no-such-desk" in res.stderr
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert [u["match"] for u in summary["adherence"]["unmatched_rules"]] == ["desk=no-such-desk"]
    strict = run("run", book, "--out", tmp_path / "o2", "--as-of", AS_OF, "--limits", limits, "--strict")
    assert strict.exit_code == 2 and "matches no group" in strict.stderr
    assert not (tmp_path / "o2").exists()


def test_a_misspelled_match_key_is_an_error(book, tmp_path):
    limits = _write_limits(tmp_path, '[defaults]\nband = { model = "fixed", coins = 1 }\n'
                                     '[[group]]\nmatch = { dsk = "options-mm" }\nenabled = false\n')
    res = run("run", book, "--out", tmp_path / "o", "--as-of", AS_OF, "--limits", limits)
    assert res.exit_code == 2 and "group[0].match.dsk" in res.stderr
    assert not (tmp_path / "o").exists()


def test_levels_must_be_tags(book, tmp_path):
    limits = _write_limits(tmp_path, 'levels = ["desk", "strategy"]\n[defaults]\nband = { model = "fixed", coins = 1 }\n')
    res = run("run", book, "--out", tmp_path / "o", "--as-of", AS_OF, "--limits", limits)
    assert res.exit_code == 2 and "'strategy' is not a tag column" in res.stderr


# ---------------------------------------------------------------------------------------------
# history: published last, all or nothing, keyed on content, retries


def test_a_run_whose_out_fails_leaves_no_trace_in_the_history(book, tmp_path, monkeypatch):
    from gpuskew.session import StepResult

    def fail(self, out_dir, overwrite=False, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(StepResult, "write", fail)
    res = run("run", book, "--out", tmp_path / "o", "--as-of", AS_OF, "--limits", LIMITS,
              "--history", tmp_path / "h")
    assert res.exit_code == 1 and "disk full" in res.stderr
    assert not (tmp_path / "h").exists() or committed_runs(tmp_path / "h") == []


def test_run_id_is_the_content_not_the_path_and_includes_the_levels(book, tmp_path):
    other = _copy(book, tmp_path / "elsewhere")
    h = tmp_path / "h"
    a = run("run", book, "--out", tmp_path / "a", "--as-of", AS_OF, "--history", h, "--json")
    b = run("run", other, "--out", tmp_path / "b", "--as-of", AS_OF, "--history", h, "--json")
    assert a.exit_code == b.exit_code == 0
    assert json.loads(a.stdout)["run_id"] == json.loads(b.stdout)["run_id"]
    assert "already holds run" in b.stderr and len(committed_runs(h)) == 1
    c = run("run", other, "--out", tmp_path / "c", "--as-of", AS_OF, "--history", h, "--group-by", "desk")
    assert c.exit_code == 0 and "already holds" not in c.stderr and len(committed_runs(h)) == 2


def test_a_retry_raises_no_alert_twice(book, tmp_path):
    h = tmp_path / "h"
    args = ["--as-of", AS_OF, "--limits", LIMITS, "--history", h, "--fail-on", "breach", "--json"]
    first = run("run", book, "--out", tmp_path / "a", *args)
    assert first.exit_code == 3
    summary = json.loads(first.stdout)
    assert summary["status"] == "limit_breached" and summary["exit_code"] == 3 and summary["alerts"] > 0
    retry = run("run", book, "--out", tmp_path / "b", *args)  # an Airflow retry after exit 3
    again = json.loads(retry.stdout)
    assert retry.exit_code == 3 and again["alerts"] == 0 and again["alerts_already_raised"] == summary["alerts"]
    assert (tmp_path / "b" / "alerts.jsonl").read_text() == ""
    # the data files are byte-identical
    for name in ("positions.parquet", "exposures.parquet", "adherence.parquet", "hedges.parquet"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


# ---------------------------------------------------------------------------------------------
# --out


def test_out_inside_or_equal_to_the_book_is_refused_before_work(book, tmp_path):
    copy = _copy(book, tmp_path / "book")
    before = (copy / "positions.parquet").read_bytes()
    for out in (copy, copy / "sub"):
        res = run("run", copy, "--out", out, "--overwrite", "--as-of", AS_OF)
        assert res.exit_code == 2 and "book folder" in res.stderr
    assert (copy / "positions.parquet").read_bytes() == before
    assert not (copy / "sub").exists()


def test_out_root_is_refused_and_out_dot_works(book, tmp_path, monkeypatch):
    res = run("run", book, "--out", "/", "--as-of", AS_OF)
    assert res.exit_code == 2 and "filesystem root" in res.stderr
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    res = run("run", book, "--out", ".", "--as-of", AS_OF)
    assert res.exit_code == 0, res.stderr
    assert (work / "summary.json").is_file() and not [p for p in work.iterdir() if p.name.startswith(".")]


def test_publishing_into_an_existing_folder_never_crosses_filesystems(tmp_path, monkeypatch):
    """--out on a mount point: every rename stays inside the output folder."""
    from gpuskew import io as gio
    from gpuskew.io import atomic

    out = tmp_path / "mnt"
    out.mkdir()
    moves = []
    real = os.replace

    def replace(src, dst):
        moves.append((Path(src), Path(dst)))
        return real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    gio.publish_run(out, {"a.json": lambda p: gio.write_json({"x": 1}, p),
                          "summary.json": lambda p: gio.write_json({}, p)}, overwrite=False)
    finals = [(s, d) for s, d in moves if d.parent == out]
    assert [d.name for _, d in finals] == ["a.json", "summary.json"]
    assert all(out in s.parents for s, _ in finals)


# ---------------------------------------------------------------------------------------------
# --json


def test_json_is_one_line_and_its_status_agrees_with_the_exit_code(book, tmp_path):
    res = run("run", book, "--out", tmp_path / "o", "--as-of", AS_OF, "--limits", LIMITS, "--json",
              "--fail-on", "breach")
    lines = res.stdout.splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["status"] == "limit_breached" and res.exit_code == 3
    bad = run("run", tmp_path / "missing", "--out", tmp_path / "o2", "--json")
    assert bad.exit_code == 2
    (line,) = bad.stdout.splitlines()
    assert json.loads(line)["status"] == "error" and json.loads(line)["exit_code"] == 2


# ---------------------------------------------------------------------------------------------
# hostile inputs


def test_group_sums_that_overflow_name_the_group(tmp_path):
    tables = make_demo_book(200, seed=1)
    inst = tables["instruments"]
    spot = pa.table({"instrument": ["BTC", "BTC"], "quantity": [1e303, 1e303], "entry_price": [None, None],
                     "desk": ["x", "x"], "book": ["b", "b"], "account": ["a", "a"]})
    tables["positions"] = pa.concat_tables([tables["positions"].slice(0, 5), spot.cast(tables["positions"].schema)])
    assert "BTC" in inst["instrument"].to_pylist()
    with pytest.raises(gpuskew.InvalidInput, match="sum per group overflows") as info:
        gpuskew.compute(gpuskew.load_book(tables), as_of=DEMO_AS_OF, backend="cpu")
    assert info.value.exit_code == 2


@pytest.mark.parametrize("text,expect", [
    ("x = " + "[" * 100_000 + "]" * 100_000 + "\n", "nested too deeply"),
    ("[defaults]\nband = { model = \"fixed\", coins = " + "9" * 400 + " }\n", "must be finite"),
    ("[defaults]\nband = { model = \"fixed\", coins = 1e308 }\n", "at most 1e+15"),
    ("[defaults]\ntarget = { model = \"fixed\", usd = -1e300 }\nband = { model = \"fixed\", coins = 1 }\n",
     "at most 1e+15"),
])
def test_hostile_limits_files_exit_2_with_a_short_message(book, tmp_path, text, expect):
    res = run("run", book, "--out", tmp_path / "o", "--as-of", AS_OF, "--limits", _write_limits(tmp_path, text))
    assert res.exit_code == 2 and expect in res.stderr, res.stderr[-400:]
    assert len(res.stderr) < 2000 and "Traceback" not in res.stderr


def test_a_folder_named_like_a_table_is_named_as_a_folder(book, tmp_path):
    copy = _copy(book, tmp_path / "b")
    (copy / "positions.parquet").unlink()
    (copy / "positions.parquet").mkdir()
    res = run("run", copy, "--out", tmp_path / "o", "--as-of", AS_OF)
    assert res.exit_code == 2 and "is a folder" in res.stderr


def test_report_ignores_foreign_and_duplicate_files(book, tmp_path):
    h = tmp_path / "h"
    for k in range(2):
        t = f"2026-11-20T0{8 + k}:00:00Z"
        assert run("run", book, "--out", tmp_path / f"o{k}", "--as-of", t, "--limits", LIMITS,
                   "--history", h).exit_code == 0
    part = h / "adherence" / "date=2026-11-20"
    src = sorted(part.glob("run-*.parquet"))[0]
    shutil.copy(src, part / (src.name.rsplit("-", 1)[0] + "-beef.parquet"))  # a duplicate under another id
    pq.write_table(pa.table({"x": [1]}), part / "run-20261120T100000000000Z-foreign.parquet")
    res = run("report", "--history", h, "--out", tmp_path / "r", "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["runs"] == 2
    report = pq.read_table(tmp_path / "r" / "report.parquet")
    assert set(report["n_runs"].to_pylist()) == {2}


def test_report_from_errors_name_from(tmp_path):
    (tmp_path / "h").mkdir()
    res = run("report", "--history", tmp_path / "h", "--out", tmp_path / "r", "--from", "yesterday")
    assert res.exit_code == 2 and "--from" in res.stderr and "--as-of" not in res.stderr


def test_text_from_inputs_never_reaches_the_terminal_raw(tmp_path):
    tables = make_demo_book(300, seed=2)
    pos = tables["positions"]
    desk = [("\x1b]0;pwned\x07" + d) if d == "treasury" else d for d in pos["desk"].to_pylist()]
    tables["positions"] = pos.set_column(pos.schema.get_field_index("desk"), "desk", pa.array(desk))
    folder = tmp_path / "b"
    folder.mkdir()
    for name, table in tables.items():
        pq.write_table(table, folder / f"{name}.parquet")
    res = run("run", folder, "--out", tmp_path / "o", "--as-of", AS_OF, "--group-by", "desk", "--limits", LIMITS)
    assert res.exit_code in (0, 3)
    assert "\x1b" not in res.stdout and "\x07" not in res.stdout and "\x1b" not in res.stderr
    assert "\\x1b]0;pwned\\x07treasury" in res.stdout


def test_implausible_inputs_warn_and_strict_refuses(tmp_path):
    tables = make_demo_book(300, seed=2)
    q = tables["quotes"]
    iv = q["iv"].to_pylist()
    first = next(i for i, v in enumerate(iv) if v is not None)
    iv[first] = 50.0  # percent, not a decimal
    tables["quotes"] = q.set_column(q.schema.get_field_index("iv"), "iv", pa.array(iv, pa.float64()))
    folder = tmp_path / "b"
    folder.mkdir()
    for name, table in tables.items():
        pq.write_table(table, folder / f"{name}.parquet")
    res = run("run", folder, "--out", tmp_path / "o", "--as-of", AS_OF)
    assert res.exit_code == 0 and "implausible input" in res.stderr and f"rows {first + 1}" in res.stderr
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert any("iv above 5" in w for w in summary["warnings"])
    strict = run("run", folder, "--out", tmp_path / "o2", "--as-of", AS_OF, "--strict")
    assert strict.exit_code == 2 and "iv above 5" in strict.stderr and not (tmp_path / "o2").exists()
    loose = run("run", folder, "--out", tmp_path / "o3", "--as-of", AS_OF, "--strict", "--max-iv", "60")
    assert loose.exit_code == 0


def test_tags_named_like_engine_columns_are_refused(tmp_path):
    tables = make_demo_book(100, seed=2)
    tables["positions"] = tables["positions"].rename_columns(
        ["status" if c == "account" else c for c in tables["positions"].column_names])
    with pytest.raises(gpuskew.InvalidInput, match="reserved names: .*status") as info:
        gpuskew.load_book(tables)
    assert info.value.column == "status"


def test_chart_file_names_are_injective():
    from gpuskew.reporting.report import _safe_name

    names = ["A/B", "A_B", "A B", "A~2FB", "Ä", "A.B"]
    assert len({_safe_name(n) for n in names}) == len(names)


def test_a_standing_hedge_proposal_counts_once():
    import datetime as dt

    from gpuskew.reporting.report import report_table
    from gpuskew.schema import ADHERENCE, HEDGES, TIMESTAMP

    t0 = dt.datetime(2026, 11, 20, 8, tzinfo=dt.timezone.utc)
    times = [t0 + dt.timedelta(minutes=15 * k) for k in range(4)]
    adh_cols = [c for c in ADHERENCE.names if c != "effective_status"]
    rows = []
    for t in times:
        rows.append({**{c: None for c in adh_cols}, "as_of": t, "level": "underlying", "underlying": "BTC",
                     "skew": 2.0, "status": "breach", "actual": 3.0, "target": 0.0, "lower": -1.0, "upper": 1.0})
    adherence = pa.Table.from_pylist(rows, schema=ADHERENCE.arrow_schema(columns=adh_cols))
    hedge = {c: None for c in HEDGES.names}
    hedges = pa.Table.from_pylist(
        [{**hedge, "as_of": t, "level": "underlying", "underlying": "BTC", "hedge_instrument": "BTC-PERPETUAL",
          "side": "sell", "contracts": -c, "coin_delta": -c / 10, "est_cost_usd": 1.0}
         for t, c in zip(times, [100.0, 100.0, 120.0, 100.0])], schema=HEDGES.arrow_schema())
    row = report_table(adherence, hedges).to_pylist()[0]
    assert row["hedge_proposals"] == 1 and row["hedge_contracts_abs"] == 120.0
    # a gap (a run without the proposal) starts a new one
    row = report_table(adherence, hedges.filter(pa.array([True, False, True, True]))).to_pylist()[0]
    assert row["hedge_proposals"] == 2
    assert TIMESTAMP == adherence.schema.field("as_of").type


# ---------------------------------------------------------------------------------------------
# CLI consistency and the Python API


def test_demo_options_are_the_same_on_run_and_demo(tmp_path):
    assert run("demo", tmp_path / "b", "--demo-size", 50, "--demo-seed", 4).exit_code == 0
    assert run("run", "--demo", "--demo-size", 50, "--demo-seed", 4, "--out", tmp_path / "o").exit_code == 0


def test_config_keys_are_option_names_for_every_command(book, tmp_path):
    cfg = tmp_path / "gpuskew.toml"
    cfg.write_text(f'json = true\nbackend = "cpu"\n[run]\nout = "{tmp_path / "o"}"\nlimits = "{LIMITS}"\n'
                   f'as-of = "{AS_OF}"\n[report]\nout = "{tmp_path / "r"}"\nhistory = "{tmp_path / "h"}"\n')
    res = run("run", book, "--config", cfg, "--history", tmp_path / "h")
    assert res.exit_code == 0, res.stderr
    assert len(res.stdout.splitlines()) == 1 and (tmp_path / "o" / "adherence.parquet").is_file()
    res = run("report", "--config", cfg)
    assert res.exit_code == 0 and json.loads(res.stdout)["runs"] == 1
    cfg.write_text("[run]\nout_dirr = 'x'\n")
    res = run("run", book, "--config", cfg)
    assert res.exit_code == 2 and "unknown key run.out_dirr" in res.output


def test_terminal_tables_show_the_books_own_tags(tmp_path):
    tables = make_demo_book(200, seed=2)
    tables["positions"] = tables["positions"].rename_columns(
        ["strategy" if c == "book" else c for c in tables["positions"].column_names])
    folder = tmp_path / "b"
    folder.mkdir()
    for name, table in tables.items():
        pq.write_table(table, folder / f"{name}.parquet")
    limits = _write_limits(tmp_path, 'levels = ["desk,strategy"]\n[defaults]\nband = { model = "fixed", coins = 1 }\n')
    res = run("run", folder, "--out", tmp_path / "o", "--as-of", AS_OF, "--limits", limits)
    assert res.exit_code == 0
    adherence_table = res.stdout.split("Skew adherence")[1]
    assert "strategy" in adherence_table.splitlines()[1]


def test_python_api_accepts_a_mapping_and_has_short_reprs():
    tables = make_demo_book(300, seed=2)
    result = gpuskew.compute(tables, as_of=DEMO_AS_OF, backend="cpu", group_by="desk")
    assert result.exposures.num_rows > 0
    book = gpuskew.load_book(tables)
    assert len(repr(book)) < 200 and len(repr(result)) < 200
    assert "<table>" in book._repr_html_() and "<table>" in result._repr_html_()


def test_a_hedge_lands_where_it_says_for_an_unquoted_future(tmp_path):
    """Hedge sizing uses the kernel's forward (S e^{rT} for an unquoted future): book the proposed
    hedge and the group's delta is the proposal's post-trade delta."""
    from gpuskew.policy.limits import parse_limits
    from gpuskew.session import Session

    tables = make_demo_book(400, seed=5)
    future = next(r for r in tables["instruments"].to_pylist()
                  if r["kind"] == "future" and r["settlement"] == "linear" and r["underlying"] == "BTC")
    q = tables["quotes"]
    tables["quotes"] = q.filter(pa.compute.not_equal(q["instrument"], future["instrument"]))
    limits = parse_limits({"defaults": {"band": {"model": "fixed", "coins": 0.5}, "hedge": {"mode": "to_target"}},
                           "hedge_instrument": [{"instrument": future["instrument"], "fee": 0.0005,
                                                 "half_spread": 0.0001, "lot_size": 1e-9}]})
    book = gpuskew.load_book(tables)
    step = Session(book, limits, "cpu").step(DEMO_AS_OF)
    hedge = step.hedges.filter(pa.compute.equal(step.hedges["level"], "underlying")).to_pylist()
    hedge = [h for h in hedge if h["underlying"] == "BTC"][0]
    pos = tables["positions"]
    fill = pa.table({"instrument": [future["instrument"]], "quantity": [hedge["contracts"]],
                     "entry_price": [hedge["price_usd"]], "desk": ["hedge"], "book": ["h"], "account": ["h"]})
    tables["positions"] = pa.concat_tables([pos, fill.cast(pos.schema)])
    after = gpuskew.compute(tables, as_of=DEMO_AS_OF, backend="cpu")
    btc = [r for r in after.exposures.to_pylist() if r["level"] == "underlying" and r["underlying"] == "BTC"][0]
    assert btc["delta"] == pytest.approx(hedge["post_trade_delta"], rel=1e-9, abs=1e-6)
    spot = [r for r in tables["underlyings"].to_pylist() if r["underlying"] == "BTC"][0]
    T = (future["expiry"] - DEMO_AS_OF).total_seconds() / 31_536_000
    assert hedge["price_usd"] == pytest.approx(spot["spot"] * math.exp(spot["rate"] * T), rel=1e-12)


def test_the_same_date_means_the_same_time_in_instruments_and_limits(tmp_path):
    from gpuskew.adherence.hedging import resolve_hedge_instruments
    from gpuskew.policy.limits import parse_limits

    tables = make_demo_book(200, seed=2)
    inst = tables["instruments"]
    future = next(r for r in inst.to_pylist() if r["kind"] == "future")
    day = future["expiry"].date().isoformat()
    exp = [day if r["instrument"] == future["instrument"] else (r["expiry"].isoformat() if r["expiry"] else None)
           for r in inst.to_pylist()]
    tables["instruments"] = inst.set_column(inst.schema.get_field_index("expiry"), "expiry", pa.array(exp))
    book = gpuskew.load_book(tables)
    limits = parse_limits({"hedge_instrument": [{"instrument": future["instrument"], "fee": 0.0, "half_spread": 0.0,
                                                 "expiry": day}]})
    (h,) = resolve_hedge_instruments(limits, book.instruments, book.quotes, DEMO_AS_OF)
    assert h.expiry.hour == 8 and h.expiry == book.instruments.filter(
        pa.compute.equal(book.instruments["instrument"], future["instrument"]))["expiry"][0].as_py()

"""P&L explain between two runs: the exact identity, zero residual for a linear book, a residual
of third order for options, the perpetual/future entry rule, new/closed/resized/expired trades,
and the ``gpuskew explain`` command."""

from __future__ import annotations

import json
import math
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import gpuskew
from gpuskew.cli import main
from gpuskew.scenarios.explain import TERMS, explain_tables
from scenario_helpers import AS_OF, UNDERLYINGS, every_kind_book, tables

LATER = AS_OF + timedelta(hours=6)


def _positions(tabs, as_of=AS_OF):
    return gpuskew.compute(gpuskew.load_book(tabs), as_of=as_of, backend="cpu").positions


def _moved(tabs, spot=1.0, iv=0.0, rate=0.0, fwd=1.0):
    """The same book under another market: spots x ``spot``, ivs + ``iv``, rates + ``rate``,
    quoted forwards x ``fwd``."""
    u, q = tabs["underlyings"], tabs["quotes"]
    u = u.set_column(u.column_names.index("spot"), "spot", pc.multiply(u["spot"], spot))
    u = u.set_column(u.column_names.index("rate"), "rate", pc.add(u["rate"], rate))
    q = q.set_column(q.column_names.index("iv"), "iv", pc.add(q["iv"], iv))
    q = q.set_column(q.column_names.index("forward"), "forward", pc.multiply(q["forward"], fwd))
    return dict(tabs, underlyings=u, quotes=q)


def _sum_in_order(table: pa.Table, order) -> np.ndarray:
    s = np.zeros(table.num_rows)
    for c in order:
        s = s + table[c].to_numpy()
    return s


def _assert_identity(table: pa.Table) -> None:
    actual = table["actual"].to_numpy()
    np.testing.assert_array_equal(_sum_in_order(table, TERMS), actual)  # left to right
    np.testing.assert_array_equal(_sum_in_order(table, TERMS[::-1]), actual)  # and in any other order
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(_sum_in_order(table, [TERMS[k] for k in rng.permutation(len(TERMS))]), actual)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_terms_plus_residual_equal_actual_exactly(seed):
    tabs = every_kind_book(seed)
    before = _positions(tabs)
    after_tabs = _moved(tabs, spot=1.031, iv=0.02, rate=0.001, fwd=1.02)
    pos = after_tabs["positions"]
    q = pos["quantity"].to_numpy().copy()
    q[2] *= 2.0  # resized
    keep = np.ones(pos.num_rows, dtype=bool)
    keep[5] = False  # closed
    pos = pos.set_column(1, "quantity", pa.array(q)).filter(pa.array(keep))
    new = pos.slice(7, 1).set_column(pos.column_names.index("desk"), "desk", pa.array(["new-desk"]))
    after_tabs["positions"] = pa.concat_tables([pos, new])
    after = _positions(after_tabs, LATER)
    groups, rows = explain_tables(before, after, AS_OF, LATER, [("desk",), ("desk", "book")])
    _assert_identity(rows)
    _assert_identity(groups)
    change = rows["change"].to_pylist()
    assert change.count("resized") == 1 and change.count("closed") == 1 and change.count("new") == 1
    # every group's actual is the sum of its positions' (to rounding): nothing lost between levels
    under = groups.filter(pc.equal(groups["level"], "underlying"))
    for row in under.to_pylist():
        mine = rows.filter(pc.equal(rows["underlying"], row["underlying"]))
        assert row["actual"] == pytest.approx(float(np.sum(mine["actual"].to_numpy())), rel=1e-12, abs=1e-6)
        assert row["n_changed"] + row["n_matched"] == mine.num_rows


def test_new_closed_resized_and_expired_go_to_new_trades():
    tabs = every_kind_book(3)
    before = _positions(tabs)
    pos = tabs["positions"]
    q = pos["quantity"].to_numpy().copy()
    q[0] += 1.0
    moved = dict(tabs, positions=pos.set_column(1, "quantity", pa.array(q)).slice(0, pos.num_rows - 1))
    # a day later some short-dated options have expired
    after = _positions(moved, AS_OF + timedelta(days=1))
    _, rows = explain_tables(before, after, AS_OF, AS_OF + timedelta(days=1), [])
    for row in rows.to_pylist():
        if row["change"] == "held":
            assert row["new_trades"] == 0.0
        else:
            assert row["new_trades"] == row["actual"]
            assert all(row[t] == 0.0 for t in TERMS[:7])
    change = rows["change"].to_pylist()
    assert change.count("closed") == 1 and change.count("resized") == 1 and change.count("expired") >= 1
    b0 = before.to_pylist()
    closed = rows.filter(pc.equal(rows["change"], "closed")).to_pylist()[0]
    assert closed["actual"] == pytest.approx(-b0[-1]["value_usd"], rel=1e-12, abs=1e-9)


def _linear_book(rate=0.0):
    S = UNDERLYINGS["BTC"]["spot"]
    exp = AS_OF + timedelta(days=40)
    inst = [dict(instrument="BTC", underlying="BTC", kind="spot", settlement="linear"),
            dict(instrument="PL", underlying="BTC", kind="perpetual", settlement="linear", contract_size=0.001),
            dict(instrument="PI", underlying="BTC", kind="perpetual", settlement="inverse", contract_size=10.0),
            dict(instrument="FL", underlying="BTC", kind="future", settlement="linear", expiry=exp),
            dict(instrument="FI", underlying="BTC", kind="future", settlement="inverse", expiry=exp, contract_size=10.0)]
    inst = [{**dict(option_type=None, strike=None, expiry=None, contract_size=1.0), **r} for r in inst]
    pos = [dict(instrument="BTC", quantity=3.5, entry_price=None, desk="a"),
           dict(instrument="PL", quantity=-2500.0, entry_price=None, desk="a"),
           dict(instrument="PL", quantity=800.0, entry_price=95_000.0, desk="b"),
           dict(instrument="PI", quantity=-40_000.0, entry_price=None, desk="a"),
           dict(instrument="PI", quantity=12_000.0, entry_price=99_000.0, desk="b"),
           dict(instrument="FL", quantity=1.7, entry_price=None, desk="a"),
           dict(instrument="FI", quantity=-9_000.0, entry_price=101_000.0, desk="b"),
           dict(instrument="FI", quantity=5_000.0, entry_price=None, desk="a")]
    quo = [dict(instrument="PI", iv=None, forward=S * 1.0003)]
    return tables(inst, pos, quo, {"BTC": dict(spot=S, rate=rate)})


@pytest.mark.parametrize("move", [-0.12, -0.01, 0.004, 0.07])
def test_linear_book_residual_is_zero_to_rounding(move):
    tabs = _linear_book()
    before = _positions(tabs)
    after = _positions(_moved(tabs, spot=1 + move, fwd=1 + move), LATER)
    groups, rows = explain_tables(before, after, AS_OF, LATER, [("desk",)])
    actual = np.abs(rows["actual"].to_numpy())
    assert (np.abs(rows["residual"].to_numpy()) <= 1e-10 * actual + 1e-8).all(), rows.to_pandas()
    g = np.abs(groups["actual"].to_numpy())
    assert (np.abs(groups["residual"].to_numpy()) <= 1e-10 * g + 1e-8).all()
    assert not any(groups["residual_flag"].to_pylist())
    assert set(rows["change"].to_pylist()) == {"held"}
    # the perpetual / future held without an entry price: V1 = n (F1 - F0), explained by delta
    pl = rows.filter(pc.and_(pc.equal(rows["instrument"], "PL"), pc.equal(rows["desk"], "a"))).to_pylist()[0]
    S = UNDERLYINGS["BTC"]["spot"]
    assert pl["actual"] == pytest.approx(-2500 * 0.001 * S * move, rel=1e-12)
    pi = rows.filter(pc.and_(pc.equal(rows["instrument"], "PI"), pc.equal(rows["desk"], "a"))).to_pylist()[0]
    F0 = S * 1.0003
    F1 = F0 * (1 + move)
    assert pi["actual"] == pytest.approx(S * (1 + move) * -400_000 * (1 / F0 - 1 / F1), rel=1e-12)


def _option_book(K=105_000.0, days=45, vol=0.6, call=True):
    exp = AS_OF + timedelta(days=days)
    inst = [dict(instrument="O", underlying="BTC", kind="option", settlement="inverse",
                 option_type="call" if call else "put", strike=K, expiry=exp, contract_size=1.0)]
    return tables(inst, [dict(instrument="O", quantity=10.0, entry_price=None, desk="a")],
                  [dict(instrument="O", iv=vol, forward=None)], {"BTC": dict(spot=97_000.0, rate=0.03)})


@pytest.mark.parametrize("K,call", [(120_000.0, True), (85_000.0, False), (97_000.0, True)])
def test_option_residual_shrinks_like_the_cube_of_the_move(K, call):
    tabs = _option_book(K=K, call=call)
    before = _positions(tabs)
    res = []
    for h in (0.02, 0.01, 0.005):
        after = _positions(_moved(tabs, spot=1 + h, iv=2 * h, rate=0.5 * h * 0.01), AS_OF)
        _, rows = explain_tables(before, after, AS_OF, AS_OF, [])
        r = rows.to_pylist()[0]
        assert r["change"] == "held"
        res.append(abs(r["residual"]))
        assert abs(r["residual"]) < 0.05 * sum(abs(r[t]) for t in TERMS[:7])
    q = [res[0] / res[1], res[1] / res[2]]
    assert all(6.5 < x < 9.5 for x in q), (res, q)


def test_theta_term_explains_the_passage_of_time():
    tabs = _option_book(days=200)
    before = _positions(tabs)
    after = _positions(tabs, AS_OF + timedelta(hours=12))
    _, rows = explain_tables(before, after, AS_OF, AS_OF + timedelta(hours=12), [])
    r = rows.to_pylist()[0]
    assert r["theta"] == pytest.approx(before["theta_usd"][0].as_py() * 0.5, rel=1e-15)
    assert abs(r["residual"]) < 0.01 * abs(r["actual"])


def test_duplicate_keys_match_in_order():
    tabs = _linear_book()
    pos = tabs["positions"]
    tabs["positions"] = pa.concat_tables([pos, pos.slice(1, 1)])  # PL desk a twice
    before = _positions(tabs)
    after = _positions(_moved(tabs, spot=1.01, fwd=1.01), LATER)
    _, rows = explain_tables(before, after, AS_OF, LATER, [])
    dup = rows.filter(pc.and_(pc.equal(rows["instrument"], "PL"), pc.equal(rows["desk"], "a")))
    assert sorted(dup["occurrence"].to_pylist()) == [0, 1]
    assert set(dup["change"].to_pylist()) == {"held"}


# ---------------------------------------------------------------------------------------------
# the command


def _write_book(tabs, folder):
    folder.mkdir(parents=True, exist_ok=True)
    for name, t in tabs.items():
        pq.write_table(t, folder / f"{name}.parquet")


@pytest.fixture()
def two_runs(tmp_path):
    runner = CliRunner()
    tabs = every_kind_book(9)
    _write_book(tabs, tmp_path / "b0")
    _write_book(_moved(tabs, spot=1.02, iv=0.01, fwd=1.02), tmp_path / "b1")
    for k, when in ((0, AS_OF), (1, LATER)):
        res = runner.invoke(main, ["run", str(tmp_path / f"b{k}"), "--out", str(tmp_path / f"r{k}"),
                                   "--as-of", when.isoformat(), "--group-by", "desk"])
        assert res.exit_code == 0, res.output
    return tmp_path


def test_cli_explain_writes_tables_and_one_json_line(two_runs):
    out = two_runs / "e"
    res = CliRunner().invoke(main, ["explain", str(two_runs / "r0"), str(two_runs / "r1"), "--out", str(out),
                                    "--positions", "--json"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert doc["status"] == "ok" and doc["groups"] > 0 and set(doc["totals"]) == {"BTC", "ETH"}
    groups = pq.read_table(out / "explain.parquet")
    assert set(groups["level"].to_pylist()) == {"underlying", "desk"}
    assert groups.schema.field("delta").metadata[b"unit"] == b"USD"
    _assert_identity(groups)
    _assert_identity(pq.read_table(out / "explain_positions.parquet"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["held"] == pq.read_table(two_runs / "r0" / "positions.parquet").num_rows
    # the same inputs give the same bytes
    res2 = CliRunner().invoke(main, ["explain", str(two_runs / "r0"), str(two_runs / "r1"), "--out",
                                     str(two_runs / "e2"), "--positions"])
    assert res2.exit_code == 0, res2.output
    for name in ("explain.parquet", "explain_positions.parquet"):
        assert (out / name).read_bytes() == (two_runs / "e2" / name).read_bytes()
    assert "P&L explain per group" in res2.stdout


def test_cli_explain_group_by_and_errors(two_runs):
    runner = CliRunner()
    res = runner.invoke(main, ["explain", str(two_runs / "r0"), str(two_runs / "r1"), "--out",
                               str(two_runs / "e"), "--group-by", "desk,book"])
    assert res.exit_code == 0, res.output
    assert "desk,book" in set(pq.read_table(two_runs / "e" / "explain.parquet")["level"].to_pylist())
    # the later run first
    res = runner.invoke(main, ["explain", str(two_runs / "r1"), str(two_runs / "r0"), "--out", str(two_runs / "x")])
    assert res.exit_code == 2 and "before the earlier" in res.stderr
    assert not (two_runs / "x").exists()
    # an unknown tag
    res = runner.invoke(main, ["explain", str(two_runs / "r0"), str(two_runs / "r1"), "--out", str(two_runs / "x"),
                               "--group-by", "nope"])
    assert res.exit_code == 2 and "nope" in res.stderr
    # a run folder written without iv / rate / forward (older gpuskew)
    old = two_runs / "old"
    old.mkdir()
    (old / "summary.json").write_text((two_runs / "r0" / "summary.json").read_text())
    pq.write_table(pq.read_table(two_runs / "r0" / "positions.parquet").drop(["iv", "rate", "forward"]),
                   old / "positions.parquet")
    res = runner.invoke(main, ["explain", str(old), str(two_runs / "r1"), "--out", str(two_runs / "x")])
    assert res.exit_code == 2 and "rate" in res.stderr and "positions.parquet" in res.stderr
    assert not (two_runs / "x").exists()
    # not a run folder
    res = runner.invoke(main, ["explain", str(two_runs / "b0"), str(two_runs / "r1"), "--out", str(two_runs / "x")])
    assert res.exit_code == 2 and "summary.json" in res.stderr


# ---------------------------------------------------------------------------------------------
# the history and the report


def test_report_daily_explain_matches_the_run_folders(tmp_path):
    from gpuskew.scenarios.explain import explain_runs

    runner = CliRunner()
    limits = tmp_path / "limits.toml"
    limits.write_text('[defaults]\nband = { model = "fixed", usd = 1000000 }\n')
    tabs = every_kind_book(12)
    _write_book(tabs, tmp_path / "b0")
    _write_book(_moved(tabs, spot=0.985, iv=-0.01, fwd=0.985), tmp_path / "b1")
    for k, when in ((0, AS_OF), (1, LATER)):
        res = runner.invoke(main, ["run", str(tmp_path / f"b{k}"), "--out", str(tmp_path / f"r{k}"), "--as-of",
                                   when.isoformat(), "--group-by", "desk", "--history", str(tmp_path / "h"),
                                   "--limits", str(limits)])
        assert res.exit_code == 0, res.output
    assert (tmp_path / "h" / "explain_inputs").is_dir()
    res = runner.invoke(main, ["report", "--history", str(tmp_path / "h"), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    daily = pq.read_table(tmp_path / "rep" / "explain_daily.parquet")
    _assert_identity(daily)
    assert "Daily P&amp;L explain" in (tmp_path / "rep" / "report.html").read_text()
    per_position = explain_runs(tmp_path / "r0", tmp_path / "r1").groups
    under = {r["underlying"]: r for r in per_position.filter(pc.equal(per_position["level"], "underlying")).to_pylist()}
    assert sorted(under) == sorted(daily["underlying"].to_pylist())
    for row in daily.to_pylist():
        want = under[row["underlying"]]
        assert row["pairs"] == 1
        for c in ("actual", *TERMS):
            # cells sum the greeks before the move multiplies them: equal to rounding
            assert row[c] == pytest.approx(want[c], rel=1e-9, abs=1e-6), c


def test_report_without_explain_inputs_says_so(tmp_path):
    from gpuskew.reporting.explain_section import daily_explain, explain_html

    assert "Needs two or more runs" in explain_html(None)
    (tmp_path / "h").mkdir()
    assert daily_explain(tmp_path / "h") is None


def test_cli_explain_reads_arrow_positions_and_refuses_none(tmp_path):
    runner = CliRunner()
    tabs = _linear_book()
    _write_book(tabs, tmp_path / "b0")
    _write_book(_moved(tabs, spot=1.01, fwd=1.01), tmp_path / "b1")
    for k, when, fmt in ((0, AS_OF, "arrow"), (1, LATER, "parquet"), (2, LATER, "none")):
        res = runner.invoke(main, ["run", str(tmp_path / f"b{min(k, 1)}"), "--out", str(tmp_path / f"r{k}"),
                                   "--as-of", when.isoformat(), "--positions", fmt])
        assert res.exit_code == 0, res.output
    assert (tmp_path / "r0" / "positions.arrow").is_file()
    res = runner.invoke(main, ["explain", str(tmp_path / "r0"), str(tmp_path / "r1"), "--out", str(tmp_path / "e"),
                               "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["flagged"] == 0
    res = runner.invoke(main, ["explain", str(tmp_path / "r0"), str(tmp_path / "r2"), "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "--positions none" in res.stderr


def test_an_unreadable_positions_file_of_a_run_folder_names_the_file(tmp_path):
    """A run folder's positions are read by gpuskew.io.read_table: a corrupt file is an
    InvalidInput naming it (exit 2), as every other input."""
    import json as _json

    from gpuskew.errors import InvalidInput
    from gpuskew.scenarios.explain import load_run

    (tmp_path / "summary.json").write_text(_json.dumps({"as_of": "2026-11-20T08:00:00Z", "group_by": []}))
    for name in ("positions.parquet", "positions.arrow"):
        (tmp_path / name).write_bytes(b"not a table")
        with pytest.raises(InvalidInput) as err:
            load_run(tmp_path)
        assert err.value.source == str(tmp_path / name)
        (tmp_path / name).unlink()


def test_explain_requires_the_columns_the_history_keeps():
    """One list: explain's required columns are the history's explain_inputs columns."""
    from gpuskew.core.explain_inputs import CONTEXT, SUMMED
    from gpuskew.scenarios.explain import REQUIRED_COLUMNS

    assert sorted(REQUIRED_COLUMNS) == sorted({"instrument", *SUMMED, *CONTEXT})
    assert len(set(REQUIRED_COLUMNS)) == len(REQUIRED_COLUMNS)

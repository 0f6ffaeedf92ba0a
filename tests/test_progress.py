"""The stage progress bar of `gpuskew run` (gpuskew.progress)."""

from __future__ import annotations

import io
import re

from click.testing import CliRunner

from gpuskew.cli import main
from gpuskew.cli.progress import STAGE_LABELS, STEP_STAGES, ProgressBar, run_stages


def test_run_stages():
    assert run_stages(demo=False, adherence=False) == [*STEP_STAGES, "write"]
    assert run_stages(demo=True, adherence=True, steps=2) == (
        ["demo"] + [*STEP_STAGES, "adherence"] * 2 + ["write"])
    assert set(run_stages(True, True)) <= set(STAGE_LABELS)


def test_bar_redraws_in_place_names_the_running_stage_and_ends_with_a_newline():
    out = io.StringIO()
    stages = run_stages(demo=False, adherence=True)
    bar = ProgressBar(stages, enabled=True, stream=out)
    assert out.getvalue().endswith(f"0/{len(stages)}  0.0 s  {STAGE_LABELS['load']}...")
    bar("load")
    bar("prepare")
    text = out.getvalue()
    assert text.count("\rgpuskew [") == 3 and "\n" not in text
    assert f"2/{len(stages)}" in text.split("\r")[-1]
    assert text.rstrip(" ").endswith(f"{STAGE_LABELS['to_device']}...")
    for stage in stages[2:]:
        bar(stage)
    last = out.getvalue().split("\r")[-1]
    assert re.fullmatch(rf"gpuskew \[#{{24}}\] {len(stages)}/{len(stages)}  \d+\.\d s  done *\n", last)
    assert "\033" not in out.getvalue()  # no terminal escape codes


def test_unknown_or_repeated_stage_is_ignored_and_clear_erases_the_line():
    out = io.StringIO()
    bar = ProgressBar(["load", "write"], enabled=True, stream=out)
    bar("load")
    bar("load")  # no second "load" pending
    bar("nonsense")
    assert bar.done == 1
    drawn = out.getvalue().split("\r")[-1]
    bar.clear()
    assert out.getvalue().endswith("\r" + " " * len(drawn) + "\r")  # blanks the whole bar
    written = out.getvalue()
    bar.clear()  # nothing drawn: nothing written
    assert out.getvalue() == written


def test_disabled_bar_writes_nothing():
    out = io.StringIO()
    bar = ProgressBar(run_stages(True, True), enabled=False, stream=out)
    for stage in run_stages(True, True):
        bar(stage)
    bar.clear()
    assert out.getvalue() == ""


def test_cli_draws_no_bar_when_stderr_is_not_a_terminal(tmp_path):
    result = CliRunner().invoke(main, ["run", "--demo", "--demo-size", "200", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "gpuskew [" not in result.output and "\r" not in result.output


def test_cli_on_a_terminal_draws_the_bar_and_clears_it_before_an_error(tmp_path, monkeypatch):
    import gpuskew.cli.demo as cli_demo
    import gpuskew.cli.run as cli_run

    monkeypatch.setattr(cli_run, "stderr_is_tty", lambda: True)
    ok = CliRunner().invoke(main, ["run", "--demo", "--demo-size", "200", "--out", str(tmp_path / "o")])
    assert ok.exit_code == 0, ok.output
    assert "building the demo book..." in ok.output and "9/9" in ok.output
    assert re.search(r"9/9  \d+\.\d s  done *\n", ok.output)

    book = tmp_path / "book"
    assert CliRunner().invoke(main, ["demo", str(book), "--demo-size", "50"]).exit_code == 0
    (book / "quotes.parquet").write_bytes(b"not parquet")
    bad = CliRunner().invoke(main, ["run", str(book), "--out", str(tmp_path / "o2")])
    assert bad.exit_code == 2
    assert re.search(r"\r +\rgpuskew: error:", bad.output)  # the bar's line blanked first


def test_demo_command_on_a_terminal_shows_the_bar(tmp_path, monkeypatch):
    import gpuskew.cli.demo as cli_demo
    import gpuskew.cli.run as cli_run

    monkeypatch.setattr(cli_demo, "stderr_is_tty", lambda: True)
    result = CliRunner().invoke(main, ["demo", str(tmp_path / "book"), "--demo-size", "100"])
    assert result.exit_code == 0, result.output
    assert "0/2  0.0 s  building the demo book..." in result.output
    assert "1/2" in result.output and "writing outputs..." in result.output and "2/2" in result.output

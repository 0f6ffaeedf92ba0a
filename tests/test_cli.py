"""CLI: exit codes, outputs, atomic publication, --json, configuration precedence."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from gpuskew.cli import main
from gpuskew.synthetic.demo import write_demo_book


@pytest.fixture()
def runner():
    return CliRunner()


@pytest.fixture(scope="module")
def book_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("book")
    write_demo_book(folder, n_positions=600, seed=3)
    return folder


def _last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def test_run_writes_outputs_and_json_summary(runner, book_dir, tmp_path):
    out = tmp_path / "out"
    res = runner.invoke(main, ["run", str(book_dir), "--out", str(out), "--as-of", "2026-11-20T08:00:00Z",
                               "--group-by", "desk", "--group-by", "desk,book", "--json"])
    assert res.exit_code == 0, res.output
    summary = _last_json(res.stdout)
    assert summary["status"] == "ok" and summary["positions"] == 600
    assert sorted(p.name for p in out.iterdir()) == ["exposures.parquet", "positions.parquet", "summary.json"]
    exposures = pq.read_table(out / "exposures.parquet")
    assert set(exposures["level"].to_pylist()) == {"underlying", "desk", "desk,book"}
    positions = pq.read_table(out / "positions.parquet")
    assert positions.num_rows == 600
    assert {"desk", "book", "account", "quantity", "delta", "delta_pa", "status"} <= set(positions.column_names)
    assert positions.schema.field("delta").metadata[b"unit"] == b"coins"
    full = json.loads((out / "summary.json").read_text())
    assert full["backend"]["used"] == "cpu" and full["inputs"]["positions"]["hash"].startswith("sha256:")
    # --json: stdout is exactly one JSON object on one line (| jq works), no tables
    assert res.stdout.count("\n") == 1 and "Net exposure per underlying" not in res.stdout
    tables = runner.invoke(main, ["run", str(book_dir), "--out", str(tmp_path / "o2"), "--as-of",
                                  "2026-11-20T08:00:00Z", "--group-by", "desk"])
    assert tables.exit_code == 0 and "Net exposure per underlying" in tables.stdout


def test_rerun_gives_byte_identical_data_files(runner, book_dir, tmp_path):
    args = ["run", str(book_dir), "--as-of", "2026-11-20T08:00:00Z", "--group-by", "desk"]
    assert runner.invoke(main, args + ["--out", str(tmp_path / "a")]).exit_code == 0
    assert runner.invoke(main, args + ["--out", str(tmp_path / "b")]).exit_code == 0
    for name in ("positions.parquet", "exposures.parquet"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_existing_output_needs_overwrite(runner, book_dir, tmp_path):
    args = ["run", str(book_dir), "--out", str(tmp_path), "--as-of", "2026-11-20T08:00:00Z"]
    assert runner.invoke(main, args).exit_code == 0
    res = runner.invoke(main, args)
    assert res.exit_code == 2 and "--overwrite" in res.stderr
    assert runner.invoke(main, args + ["--overwrite"]).exit_code == 0


def test_invalid_input_exit_2_names_file_column_rows_and_nothing_written(runner, book_dir, tmp_path):
    import pyarrow as pa

    bad = tmp_path / "bad"
    bad.mkdir()
    for f in book_dir.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    und = pq.read_table(bad / "underlyings.parquet")
    spot = und["spot"].to_pylist()
    spot[1] = -5.0
    und = und.set_column(und.column_names.index("spot"), "spot", pa.array(spot))
    pq.write_table(und, bad / "underlyings.parquet")
    out = tmp_path / "out"
    res = runner.invoke(main, ["run", str(bad), "--out", str(out)])
    assert res.exit_code == 2
    assert "underlyings.parquet" in res.stderr and "spot" in res.stderr and "1" in res.stderr
    assert "Traceback" not in res.output
    assert not out.exists()


def test_corrupt_file_exit_2(runner, book_dir, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in book_dir.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    (bad / "quotes.parquet").write_bytes(b"not a parquet file")
    res = runner.invoke(main, ["run", str(bad), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and "quotes.parquet" in res.stderr


def test_usage_errors_exit_2(runner, tmp_path):
    assert runner.invoke(main, ["run", "--out", str(tmp_path / "o")]).exit_code == 2  # no book, no --demo
    assert runner.invoke(main, ["run", "--demo", "--out", str(tmp_path / "o"), "--backend", "gpu"]).exit_code == 2
    res = runner.invoke(main, ["run", "--demo", "--demo-size", "50", "--out", str(tmp_path / "o"),
                               "--group-by", "nope"])
    assert res.exit_code == 2 and "nope" in res.stderr
    res = runner.invoke(main, ["run", "--demo", "--demo-size", "50", "--out", str(tmp_path / "o"),
                               "--as-of", "yesterday"])
    assert res.exit_code == 2 and "as-of" in res.stderr


def test_cuda_requested_without_device_exit_75(runner, tmp_path, monkeypatch):
    monkeypatch.delenv("NUMBA_ENABLE_CUDASIM", raising=False)
    from gpuskew.core import backend

    monkeypatch.setattr(backend, "probe_cuda", lambda: (False, "no device here"))
    res = runner.invoke(main, ["run", "--demo", "--demo-size", "50", "--out", str(tmp_path / "o"),
                               "--backend", "cuda"])
    assert res.exit_code == 75
    assert "no device here" in res.stderr and "gpuskew[cuda12]" in res.stderr
    assert not (tmp_path / "o").exists()


def test_runtime_error_exit_1(runner, tmp_path, monkeypatch):
    import gpuskew.session as risk_runner

    def boom(*a, **k):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(risk_runner, "compute", boom)
    res = runner.invoke(main, ["run", "--demo", "--demo-size", "50", "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "kaboom" in res.stderr


def test_env_and_config_precedence(runner, tmp_path):
    cfg = tmp_path / "gpuskew.toml"
    cfg.write_text('[run]\nbackend = "cuda"\ndemo_size = 40\n')
    # config says cuda, env says cpu, flag absent -> env wins over config
    res = runner.invoke(main, ["run", "--demo", "--out", str(tmp_path / "o1"), "--config", str(cfg), "--json"],
                        env={"GPUSKEW_BACKEND": "cpu"})
    assert res.exit_code == 0, res.output
    assert _last_json(res.stdout)["backend"] == "cpu" and _last_json(res.stdout)["positions"] == 40
    # the flag wins over env
    res = runner.invoke(main, ["run", "--demo", "--out", str(tmp_path / "o2"), "--config", str(cfg),
                               "--demo-size", "30", "--json"],
                        env={"GPUSKEW_DEMO_SIZE": "20", "GPUSKEW_BACKEND": "cpu"})
    assert _last_json(res.stdout)["positions"] == 30
    bad = tmp_path / "bad.toml"
    bad.write_text("[run]\nbakend = 'cpu'\n")
    res = runner.invoke(main, ["run", "--demo", "--out", str(tmp_path / "o3"), "--config", str(bad)])
    assert res.exit_code == 2 and "bakend" in res.output


def test_demo_command_writes_a_readable_book(runner, tmp_path):
    res = runner.invoke(main, ["demo", str(tmp_path / "b"), "--demo-size", "100", "--format", "csv"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "b" / "positions.csv").exists()
    res = runner.invoke(main, ["run", str(tmp_path / "b"), "--out", str(tmp_path / "o"), "--json"])
    assert res.exit_code == 0, res.output


def test_doctor(runner):
    res = runner.invoke(main, ["doctor", "--json"])
    assert res.exit_code == 0
    info = json.loads(res.stdout)
    assert "numba_cpu_kernels" in info["cache"] and "usable" in info["cuda"]


def test_import_is_light():
    import subprocess
    import sys

    code = ("import sys, gpuskew; bad = [m for m in ('numba', 'cupy', 'numba.cuda', 'pandas', 'polars') "
            "if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"})
    assert out.stdout.strip() == "[]"

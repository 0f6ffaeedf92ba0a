"""The command line skips the probe imports of pyarrow (pandas) and numba (scipy.linalg), and the
Python API and later imports are unaffected (gpuskew.startup)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("pandas")
pytest.importorskip("scipy.linalg")


def _python(code: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=env, timeout=300)


@pytest.mark.parametrize("skip, loaded", [("1", "LOADED []"), ("0", "LOADED ['pandas', 'scipy.linalg']")])
def test_cli_run_imports_neither_pandas_nor_scipy_linalg(tmp_path, skip, loaded):
    """... unless GPUSKEW_SKIP_PROBE_IMPORTS=0 turns the block off."""
    code = f"""
        import atexit, sys
        atexit.register(lambda: print("LOADED", sorted(m for m in ("pandas", "scipy.linalg")
                                                       if m in sys.modules)))
        sys.argv = ["gpuskew", "run", "--demo", "--demo-size", "300", "--backend", "cpu",
                    "--out", {str(tmp_path / 'out')!r}]
        from gpuskew.cli import entry_point
        entry_point()
    """
    done = _python(code, {"GPUSKEW_FAST_EXIT": "0", "GPUSKEW_SKIP_PROBE_IMPORTS": skip})
    assert done.returncode == 0, done.stderr
    assert loaded in done.stdout
    assert (tmp_path / "out" / "positions.parquet").is_file()


def test_probe_imports_work_again_after_the_block():
    code = """
        import sys
        import pyarrow as pa
        from gpuskew.cli.startup import skip_probe_imports
        with skip_probe_imports():
            pa.array([1.0])                      # pyarrow's pandas probe fails here
            try:
                import scipy.linalg
            except ModuleNotFoundError:
                print("refused inside")
        assert "pandas" not in sys.modules
        import pandas as pd, scipy.linalg        # normal imports afterwards
        df = pa.table({"a": [1, 2]}).to_pandas()   # pyarrow retries pandas when it needs it
        assert isinstance(df, pd.DataFrame)
        assert pa.Table.from_pandas(df).num_rows == 2
        print("ok")
    """
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["refused", "inside", "ok"]


def test_the_python_api_keeps_pandas_support():
    """Only the console script skips the probes: gpuskew.load_book takes pandas tables."""
    code = """
        import gpuskew
        from gpuskew.synthetic.demo import DEMO_AS_OF, make_demo_book
        tables = {k: v.to_pandas() for k, v in make_demo_book(50).items()}
        result = gpuskew.compute(gpuskew.load_book(tables), as_of=DEMO_AS_OF, backend="cpu")
        print(result.positions.num_rows)
    """
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "50"

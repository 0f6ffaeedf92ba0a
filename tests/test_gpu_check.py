"""benchmarks/gpu_check.py runs end to end, tiny, under numba's CUDA simulator (--simulate): the
prepared GPU check works before the day a GPU is lent. Its timings mean nothing here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.cudasim
def test_gpu_check_runs_in_simulate_mode(tmp_path):
    pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_ENABLE_CUDASIM", "GPUSKEW_REDUCE_TILE")}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), str(tmp_path), "--simulate"],
                          capture_output=True, text=True, timeout=1200, env=env)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert "simulator" in result["device"] and result["simulate"] is True
    agreement = result["agreement"]
    assert agreement["max_rel_diff"] == 0.0 and agreement["sums_bitwise_run_to_run"] and agreement["status_equal"]
    assert result["resident"][0]["positions"] == 100 and result["resident"][0]["kernel_s"] > 0
    assert result["end_to_end"]["exposures_files_identical"] is True
    assert (tmp_path / "gpu_check.md").read_text().startswith("# GPU check")

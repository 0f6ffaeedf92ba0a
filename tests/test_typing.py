"""mypy is clean on the engine's core, the Session and the kernels (the test extra installs it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_is_clean_on_core_session_and_kernels(tmp_path):
    pytest.importorskip("mypy", reason="mypy is in the test extra: pip install -e '.[test]'")
    proc = subprocess.run([sys.executable, "-m", "mypy", "--ignore-missing-imports", "--follow-imports=silent",
                           "--cache-dir", str(tmp_path / "mypy-cache"), "gpuskew/core", "gpuskew/session.py",
                           "kernels"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_the_session_imports_the_limits_only_for_type_checking():
    # Limits is an annotation of Session: importing the session does not load the policy package
    code = "import sys, gpuskew.session; print(sorted(m for m in sys.modules if m.startswith('gpuskew.policy')))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr

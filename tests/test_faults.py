"""The bad-input and fault table (docs/faults.md): bench/faults.py runs the real `nl2cmd` through every
case with the fake backend; nothing may print a traceback or "internal error", and each case must end
as the table says. Cases that need root or `unshare -m` are skipped where those are missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_fault_table_holds() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NL2CMD_")}
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "faults.py"), "--backend", "fake"],
                          capture_output=True, text=True, timeout=600, env=env, cwd=REPO)
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ") and not line.startswith("| case")]
    failed = [row for row in rows if "FAILED" in row]
    assert proc.returncode == 0 and not failed, "\n".join(failed) or proc.stderr[-2000:]
    assert len(rows) >= 40
    assert "Traceback" not in proc.stderr

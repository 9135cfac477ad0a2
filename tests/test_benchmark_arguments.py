"""The benchmark scripts added for issues 12 and 13 refuse bad arguments with a message that
names the problem (exit status 2, argparse's), before any timing starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CASES = [
    (
        ["assorted_race.py", "--requests", "0"],
        "--requests, --rounds and --threads must be at least 1",
    ),
    (["fused_split.py", "nosuch"], "unknown optimizer 'nosuch'"),
    (["fused_split.py", "adam"], "adam: fused=True does not compile its update"),
    (["fused_split.py", "rmsprop", "--numel", "0"], "--numel must be at least 1"),
    (["compile_breaks.py", "nosuch"], "unknown registry keys: nosuch"),
]


@pytest.mark.parametrize(("arguments", "message"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_a_bad_argument_is_named(arguments, message):
    script, *rest = arguments
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *rest],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr

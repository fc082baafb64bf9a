"""A command that needs an extra which is not installed says which one, in one line (no traceback).

The missing package is made missing for real in a child process: a directory first on its
``PYTHONPATH`` holds a ``torch`` package whose import fails exactly as an absent one does.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.fixture()
def without_torch(tmp_path):
    package = tmp_path / "torch"
    package.mkdir()
    (package / "__init__.py").write_text('raise ModuleNotFoundError("No module named \'torch\'", name="torch")\n')
    return {**os.environ, "PYTHONPATH": str(tmp_path)}


@pytest.mark.parametrize("argv", [
    ["train", "--method", "st", "--out", "run"],
    ["evaluate", "--methods", "st", "--out", "r.json"],
    ["export", "run", "--out", "bundle"],
])
def test_training_commands_name_the_train_extra(argv, without_torch, tmp_path):
    result = subprocess.run([sys.executable, "-m", "c3t_edge", *argv], capture_output=True, text=True,
                            env=without_torch, cwd=tmp_path, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "pip install 'c3t-edge[train]'" in lines[0] and "torch" in lines[0]


def test_runtime_commands_do_not_need_torch(without_torch, tmp_path):
    result = subprocess.run([sys.executable, "-m", "c3t_edge", "info", "--model", "default", "--json"],
                            capture_output=True, text=True, env=without_torch, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr

"""The ``c3t-edge`` entry point itself: light top-level help, one command module per command."""

from __future__ import annotations

import subprocess
import sys

from c3t_edge.cli import COMMANDS

HEAVY = ("numpy", "torch", "onnxruntime", "scipy", "c3t_edge.runtime", "c3t_edge.protocol")


# Runs the real entry point (``python -m c3t_edge``) and then writes every module in sys.modules to a
# file (``-X importtime`` would miss modules imported through importlib, as the command modules are).
_RUN_AND_LIST = """
import runpy, sys
out, sys.argv, code = sys.argv[1], ["c3t-edge", *sys.argv[2:]], 0
try:
    runpy.run_module("c3t_edge", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
with open(out, "w") as handle:
    handle.write("\\n".join(sorted(sys.modules)))
sys.exit(code)
"""


def _imported_by(tmp_path, *argv: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run ``c3t-edge ARGV`` in a fresh interpreter; the process and every module it imported."""
    listing = tmp_path / "modules.txt"
    proc = subprocess.run([sys.executable, "-c", _RUN_AND_LIST, str(listing), *argv],
                          capture_output=True, text=True, timeout=120)
    return proc, set(listing.read_text().split())


def test_help_imports_neither_numpy_nor_the_runtime(tmp_path):
    proc, modules = _imported_by(tmp_path, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "c3t_edge.cli" in modules and "argparse" in modules  # the listing was read
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY or m.startswith(HEAVY))
    assert heavy == [], f"c3t-edge --help imported {heavy[:8]}"
    assert not any(m.startswith("c3t_edge.commands.") for m in modules)
    for name, help_text in COMMANDS.items():
        assert name in proc.stdout and help_text.split()[0] in proc.stdout


def test_a_command_imports_only_its_own_module(tmp_path):
    proc, modules = _imported_by(tmp_path, "info", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "--model" in proc.stdout and "--precision" in proc.stdout
    assert {m for m in modules if m.startswith("c3t_edge.commands.")} == {"c3t_edge.commands.info"}


def test_no_command_or_an_unknown_one_is_one_line_and_exit_2():
    for argv in ((), ("bogus",)):
        proc = subprocess.run([sys.executable, "-m", "c3t_edge", *argv], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, argv

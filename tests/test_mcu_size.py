"""The device library's size budget on a Cortex-M4F: ``make -C firmware_bridge m4-size`` compiles
firmware_bridge/src with ``arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -Os``
and the strict warning set (``-Werror``), prints the sizes, checks that it takes nothing from the C library
but ``memcpy`` (no heap, no stdio), and fails above the budget written in the Makefile.

CI installs the cross-compiler (.ci/run): there a missing one fails this test, elsewhere it skips it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from _firmware import FIRMWARE

_LINE = re.compile(r"m4-size: device library on Cortex-M4F: flash (\d+) bytes \(budget (\d+)\), "
                   r"static RAM (\d+) bytes \(budget (\d+)\); from libc: (.*)")


def make_m4_size(src: Path, *make_vars: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", "-C", str(src), "m4-size", *make_vars], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def firmware_copy(tmp_path_factory) -> Path:
    missing = [t for t in ("arm-none-eabi-gcc", "arm-none-eabi-size", "arm-none-eabi-nm", "make")
               if shutil.which(t) is None]
    if missing:
        message = f"{', '.join(missing)} not installed (apt install gcc-arm-none-eabi binutils-arm-none-eabi)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    src = tmp_path_factory.mktemp("m4_size") / "firmware_bridge"
    shutil.copytree(FIRMWARE, src, ignore=shutil.ignore_patterns("build"))
    return src


def test_device_library_fits_its_cortex_m4_budget(firmware_copy):
    proc = make_m4_size(firmware_copy)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    print(proc.stdout)  # the size table, for the log
    assert "(TOTALS)" in proc.stdout  # arm-none-eabi-size's table of the library objects
    m = _LINE.search(proc.stdout)
    assert m, proc.stdout
    flash, flash_budget, ram, ram_budget = (int(v) for v in m.groups()[:4])
    assert 500 < flash <= flash_budget and ram <= ram_budget
    assert m.group(5).split() == ["memcpy"]  # no malloc, no printf: nothing else from libc


def test_the_build_fails_above_the_budget(firmware_copy):
    """The check can fail: one byte under the measured size is over budget, with one line saying so."""
    flash = int(_LINE.search(make_m4_size(firmware_copy).stdout).group(1))
    proc = make_m4_size(firmware_copy, f"M4_FLASH_BUDGET={flash - 1}")
    assert proc.returncode != 0
    assert f"m4-size: flash {flash} bytes is over the budget of {flash - 1} bytes" in proc.stderr

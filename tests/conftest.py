"""Shared fixtures: fixed seeds, an isolated preprocessing cache, and the real UTD-MHAD folder."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
UTD_MHAD_DIR = ROOT.parent / "shared" / "datasets" / "utd-mhad"


@pytest.fixture(autouse=True)
def _fixed_seeds():
    random.seed(0)
    np.random.seed(0)


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Preprocessed-array caches go to one per-session folder, never the user's ~/.cache."""
    cache = tmp_path_factory.mktemp("c3t-cache")
    previous = os.environ.get("C3T_CACHE")
    os.environ["C3T_CACHE"] = str(cache)
    yield cache
    if previous is None:
        os.environ.pop("C3T_CACHE", None)
    else:
        os.environ["C3T_CACHE"] = previous


@pytest.fixture(scope="session")
def utd_mhad_dir() -> Path:
    """The real UTD-MHAD folder beside the checkout (skips when it is not there)."""
    if not (UTD_MHAD_DIR / "Inertial").is_dir():
        pytest.skip(f"real UTD-MHAD data not found at {UTD_MHAD_DIR}")
    return UTD_MHAD_DIR

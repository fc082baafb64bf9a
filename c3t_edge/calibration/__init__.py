"""Sensor calibration: profiles (``profile.py``), estimation from a calibration session
(``estimate.py``), the guided live procedure (``procedure.py``) and synthetic sessions made of
real sensor noise for tests (``synthetic.py``). No torch: profiles are applied on the streaming path.

    from c3t_edge.calibration import load_profile
    profile = load_profile("calibration/my-board.json")
    corrected = profile.apply(samples)        # (n, 6) ax..gz in g, deg/s -> the model's frame
"""

from __future__ import annotations

from c3t_edge.calibration.profile import (
    PROFILE_FORMAT,
    PROFILE_VERSION,
    CalibrationProfile,
    invert_axes,
    load_profile,
    parse_axes,
)

__all__ = [
    "PROFILE_FORMAT",
    "PROFILE_VERSION",
    "CalibrationProfile",
    "invert_axes",
    "load_profile",
    "parse_axes",
]

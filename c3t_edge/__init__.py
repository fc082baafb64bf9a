"""c3t-edge: camera-supervised, IMU-only action recognition for the edge."""

from __future__ import annotations

__version__ = "0.1.0"

"""c3t-edge: camera-supervised, IMU-only action recognition for the edge."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load_bundle"]


def __getattr__(name: str):
    # Lazy, so that ``import c3t_edge`` stays light (no numpy/onnxruntime until a bundle is loaded).
    if name == "load_bundle":
        from c3t_edge.bundle import load_bundle

        return load_bundle
    raise AttributeError(f"module 'c3t_edge' has no attribute {name!r}")

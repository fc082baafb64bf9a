"""The runtime's view of a recogniser: what it expects (rate, window, hop, channels, units, labels)
and ``predict_proba`` on a batch of windows. :func:`load_model` wraps a model bundle."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from c3t_edge.errors import BundleError


@dataclass(frozen=True)
class ModelSpec:
    """What a window model expects. ``window``/``hop`` in samples at ``sample_rate_hz``;
    ``channels``/``units`` in input order (e.g. ``ax``..``gz``, ``g``/``deg/s``)."""

    labels: tuple[str, ...]
    sample_rate_hz: float
    window: int
    hop: int
    channels: tuple[str, ...]
    units: tuple[str, ...]
    name: str = "model"
    info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def window_s(self) -> float:
        return self.window / self.sample_rate_hz

    @property
    def hop_s(self) -> float:
        return self.hop / self.sample_rate_hz

    def channel_indices(self, unit: str) -> list[int]:
        return [i for i, u in enumerate(self.units) if u.strip().lower() == unit]


class WindowModel(Protocol):
    """A recogniser of fixed-length windows."""

    spec: ModelSpec

    def predict_proba(self, windows: np.ndarray) -> np.ndarray:
        """(k, window, C) float32 in the spec's units -> (k, n_labels) probabilities."""
        ...


def _first(meta: Mapping[str, Any], *keys: str, default: Any = None) -> Any:
    for key in keys:
        if key in meta and meta[key] is not None:
            return meta[key]
    return default


def spec_from_metadata(meta: Mapping[str, Any], labels: Sequence[str], name: str = "bundle",
                       hop: int | None = None) -> ModelSpec:
    """A :class:`ModelSpec` from a bundle's ``metadata.json`` contents (fields: ``c3t_edge.bundle.REQUIRED_KEYS``)."""
    rate = _first(meta, "sample_rate_hz", "sample_rate")
    window = _first(meta, "window_samples", "window")
    if rate is None or window is None:
        raise BundleError(f"{name}: metadata lacks sample_rate_hz or window_samples")
    hop = int(hop or _first(meta, "hop_samples", "hop", default=max(1, int(window) // 4)))
    raw_channels = _first(meta, "channels", "channel_names", default=None)
    units = _first(meta, "units", "channel_units", default=None)
    if raw_channels and isinstance(raw_channels[0], Mapping):  # [{"name": "ax", "unit": "g"}, ...]
        units = [str(c.get("unit", c.get("units", ""))) for c in raw_channels]
        channels = [str(c.get("name")) for c in raw_channels]
    else:
        channels = [str(c) for c in (raw_channels or ("ax", "ay", "az", "gx", "gy", "gz"))]
    if isinstance(units, Mapping):  # {"ax": "g", ...} or {"acc": "g", "gyro": "deg/s"}
        units = [str(units.get(c, units.get("acc" if c.startswith("a") else "gyro", ""))) for c in channels]
    if not units:
        units = ["g" if c.startswith("a") else "deg/s" for c in channels]
    if len(units) != len(channels):
        raise BundleError(f"{name}: {len(channels)} channels but {len(units)} units in the metadata")
    return ModelSpec(tuple(str(x) for x in labels), float(rate), int(window), hop, tuple(channels),
                     tuple(str(u) for u in units), name, dict(meta))


class BundleModel:
    """A model bundle behind the :class:`WindowModel` interface."""

    def __init__(self, bundle: Any, name: str = "bundle", hop: int | None = None) -> None:
        self.bundle = bundle
        self.spec = spec_from_metadata(dict(bundle.metadata), list(bundle.labels), name, hop)

    def predict_proba(self, windows: np.ndarray) -> np.ndarray:
        return np.asarray(self.bundle.predict_proba(np.ascontiguousarray(windows, dtype=np.float32)))


def load_model(name: str = "default", *, precision: str = "fp32", engine: str = "onnxruntime",
               hop: int | None = None) -> BundleModel:
    """Load a bundle directory (or ``"default"``, the one inside the package) for the runtime."""
    try:
        from c3t_edge.bundle import load_bundle
    except ImportError:
        raise BundleError("model bundles are not available in this installation yet") from None
    bundle = load_bundle(name, precision=precision, engine=engine)
    label = "default bundle" if name == "default" else str(name)
    return BundleModel(bundle, f"{label} ({precision}, {engine})", hop)

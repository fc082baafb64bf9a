"""Which device channel feeds which consumer channel: :class:`ChannelMap`.

A device declares its channels (kind, axis, unit) in DEVICE_INFO; a model or a calibration
procedure needs its own channels by name (``ax`` ... ``gz``) in its own units, in its own order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from c3t_edge.errors import DeviceMismatchError
from c3t_edge.protocol.messages import DeviceInfo


def _norm_unit(unit: str) -> str:
    """A unit name in one spelling: ``°/s``, ``dps`` and ``deg/s`` compare equal, case and spaces ignored."""
    return unit.strip().lower().replace("°", "deg").replace(" ", "").replace("dps", "deg/s")


#: The accelerometer channels: a device that sends these and no gyroscope can feed a bundle trained on
#: them alone (``c3t-edge train --channels acc``).
ACC_CHANNELS = ("ax", "ay", "az")


def _what_to_do(device: list[str], wanted: tuple[str, ...]) -> str:
    """The advice after "X is missing": for a device without a gyroscope that has all the
    accelerometer axes, the bundle to use instead; otherwise nothing."""
    has_acc = all(name in device for name in ACC_CHANNELS)
    if has_acc and not any(name.startswith("g") for name in device) and any(n.startswith("g") for n in wanted):
        return ("; a device without a gyroscope needs a bundle trained on the accelerometer alone "
                "(c3t-edge train --channels acc)")
    return ""


@dataclass(frozen=True)
class ChannelMap:
    """Which device channel feeds each wanted channel (by name, e.g. ``ax``...``gz``).

    ``device_index[i]``: the device's column that holds wanted channel ``i``."""

    device_index: tuple[int, ...]

    @classmethod
    def between(cls, info: DeviceInfo, channels: tuple[str, ...], units: tuple[str, ...]) -> ChannelMap:
        """Map ``info``'s channels onto the wanted ``channels`` (with ``units``), or raise
        :class:`~c3t_edge.errors.DeviceMismatchError` naming what is missing or in the wrong unit."""
        names = list(info.channel_names)
        index = []
        for name, unit in zip(channels, units, strict=True):
            if name not in names:
                raise DeviceMismatchError(
                    f"the device ({info.name or 'unnamed'}) sends channels {','.join(names)} but the model "
                    f"needs {','.join(channels)}: {name} is missing{_what_to_do(names, channels)}"
                )
            i = names.index(name)
            dev_unit = info.channels[i].unit_name
            if _norm_unit(dev_unit) != _norm_unit(unit):
                raise DeviceMismatchError(f"channel {name} arrives in {dev_unit} but the model expects {unit}")
            index.append(i)
        return cls(tuple(index))

    def apply(self, samples: np.ndarray) -> np.ndarray:
        """Samples (n, C_device) in device order -> (n, len(device_index)) in the wanted order
        (the same array when nothing moves)."""
        if self.device_index == tuple(range(samples.shape[1])):
            return samples
        return samples[:, self.device_index]

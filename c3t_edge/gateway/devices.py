"""The devices of one ``c3t-edge stream``: ``--port`` given once or more, or a TOML file (``--devices``).

Each device has a name that tags its events (JSON ``"device"``, ``[NAME]`` on readable lines, the
MQTT topic level), a PORT, and optionally its own bundle, precision, engine, calibration profile and
baud rate (default: the command's flags). A devices file, for a systemd unit::

    # keys at the top apply to every device (each [[device]] may override them)
    model = "/home/pi/bundles/wrist"
    precision = "int8"

    [[device]]
    name = "left-wrist"
    port = "/dev/serial/by-id/usb-Arduino_Nano_33_BLE_1234-if00"
    calibration = "/home/pi/calibration/left.json"

    [[device]]
    name = "right-wrist"
    port = "ble://C3T-IMU-RIGHT"

Relative ``model`` and ``calibration`` paths are relative to the file's folder. ``--port NAME=PORT``
names a device on the command line; without a name, it is made from the PORT (its last path part).
Names are letters, digits, ``.``, ``_`` and ``-`` (they are MQTT topic levels), unique per run.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, fields
from pathlib import Path

from c3t_edge.errors import C3TEdgeError

#: File descriptors the serial devices of one process may use: pyserial waits on each port with
#: select(), which takes descriptors below 1024 only; each port holds five (the port and two
#: wake-up pipes), an MQTT connection three more per device. So at most 200 serial devices, 125 with
#: --publish (about 20 descriptors are left for the rest of the process).
SELECT_FDS, FDS_PER_SERIAL_DEVICE, FDS_PER_MQTT_DEVICE = 1000, 5, 3

#: What a device name may be: it is a topic level in MQTT and a label on the web page.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class DeviceSpec:
    """One device: ``name``, ``port``; the other fields override the command's flags (None: the flag's)."""

    name: str
    port: str
    model: str | None = None
    precision: str | None = None
    engine: str | None = None
    calibration: str | None = None
    baud: int | None = None


#: The keys a devices file may set (at the top for every device, or in a [[device]] table).
DEVICE_KEYS = tuple(f.name for f in fields(DeviceSpec))
SHARED_KEYS = tuple(k for k in DEVICE_KEYS if k not in ("name", "port"))


def name_from_port(port: str) -> str:
    """A device name made from PORT: the last part of its path or address, other characters as ``-``
    (``/dev/serial/by-id/usb-X-if00`` -> ``usb-X-if00``, ``replay://runs/a.c3trec`` -> ``a``,
    ``socket://host:7000`` -> ``host-7000``)."""
    scheme, sep, rest = port.partition("://")
    body = rest if sep else scheme
    if sep and scheme == "replay":
        body = Path(rest).stem
    body = body.rstrip("/").rsplit("/", 1)[-1]
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", body).strip("-._") or "device"
    return name[:64]


def parse_port_flag(value: str) -> DeviceSpec:
    """``--port PORT`` or ``--port NAME=PORT``."""
    name, sep, port = value.partition("=")
    if sep and NAME_PATTERN.fullmatch(name) and port:
        return DeviceSpec(name=name, port=port)
    return DeviceSpec(name=name_from_port(value), port=value)


def unique_names(specs: list[DeviceSpec], *, renamed_ok: bool = True) -> list[DeviceSpec]:
    """The specs with unique names: a name made from a PORT that is taken gets ``-2``, ``-3``...;
    with ``renamed_ok=False`` a repeated name is an error."""
    seen: set[str] = set()
    out: list[DeviceSpec] = []
    for spec in specs:
        name = spec.name
        if name in seen and not renamed_ok:
            raise C3TEdgeError(f"two devices are named {name!r}: give each its own name")
        n = 2
        while name in seen:
            name, n = f"{spec.name}-{n}", n + 1
        seen.add(name)
        out.append(spec if name == spec.name else DeviceSpec(**{**spec.__dict__, "name": name}))
    return out


def load_devices(path: str | Path) -> list[DeviceSpec]:
    """The devices a TOML file lists (see the module docstring); one clear error per mistake."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        raise C3TEdgeError("--devices needs Python 3.11 or later (tomllib)") from None
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise C3TEdgeError(f"{path}: cannot read the devices file ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise C3TEdgeError(f"{path}: not valid TOML ({exc})") from None
    tables = doc.pop("device", None)
    if not isinstance(tables, list) or not tables:
        raise C3TEdgeError(f"{path}: no devices: list each one in a [[device]] table with its name and port")
    _check_keys(path, "the top level", doc, SHARED_KEYS)
    return unique_names([_device(path, i, {**doc, **table}) for i, table in enumerate(tables, 1)],
                        renamed_ok=False)


def _check_keys(path: Path, where: str, table: dict, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise C3TEdgeError(f"{path}: {where}: unknown key {unknown[0]!r} (known: {', '.join(allowed)})")


def _device(path: Path, index: int, table: dict) -> DeviceSpec:
    where = f"device {index}"
    _check_keys(path, where, table, DEVICE_KEYS)
    for key in ("name", "port"):
        if not isinstance(table.get(key), str) or not table[key]:
            raise C3TEdgeError(f"{path}: {where}: needs {key} = \"...\"")
    if not NAME_PATTERN.fullmatch(table["name"]):
        raise C3TEdgeError(f"{path}: {where}: name {table['name']!r} must be letters, digits, '.', '_' or '-' "
                           "(it is an MQTT topic level)")
    if "baud" in table and (not isinstance(table["baud"], int) or table["baud"] <= 0):
        raise C3TEdgeError(f"{path}: {where}: baud must be a whole number > 0")
    for key in ("model", "precision", "engine", "calibration"):
        if key in table and not isinstance(table[key], str):
            raise C3TEdgeError(f"{path}: {where}: {key} must be a string")
    for key in ("model", "calibration"):  # relative to the file's folder
        if key in table and table[key] != "default" and not Path(table[key]).is_absolute():
            table[key] = str((path.parent / table[key]).resolve())
    return DeviceSpec(**table)


def device_specs(ports: list[str] | None, devices_file: str | None, *, publish: bool = False) -> list[DeviceSpec]:
    """The devices of ``--port`` (each ``[NAME=]PORT``) and ``--devices FILE`` together, names unique;
    ``publish``: each device has an MQTT connection too (fewer serial devices fit, see SELECT_FDS)."""
    specs = load_devices(devices_file) if devices_file is not None else []
    specs += [parse_port_flag(port) for port in ports or ()]
    if not specs:
        raise C3TEdgeError("no device: give --port PORT (repeat it for several) or --devices FILE.toml")
    serial = sum(1 for spec in specs if not spec.port.startswith(("ble://", "replay://")))
    most = SELECT_FDS // (FDS_PER_SERIAL_DEVICE + (FDS_PER_MQTT_DEVICE if publish else 0))
    if serial > most:
        raise C3TEdgeError(f"{serial} serial devices: one process streams at most {most}"
                           + (" with --publish" if publish else "") + " (pyserial waits with select(), which takes "
                           "only 1024 file descriptors); split them over several processes")
    return unique_names(specs)


def device_args(args: argparse.Namespace, spec: DeviceSpec) -> argparse.Namespace:
    """The command's flags with what ``spec`` sets instead (model, precision, engine, calibration, baud)."""
    override = {key: getattr(spec, key) for key in SHARED_KEYS if getattr(spec, key) is not None}
    return argparse.Namespace(**{**vars(args), **override})


def build_runs(specs: list[DeviceSpec], args: argparse.Namespace, make_sink) -> list:
    """One :class:`~c3t_edge.runtime.runner.DeviceRun` per device: its own decoder, calibration and
    pipeline; devices with the same bundle, precision and engine share one loaded model (it keeps no
    state between windows). ``make_sink(spec, pipeline)``: the device's sink (a web view observes
    the pipeline)."""
    from c3t_edge.runtime.options import (
        decoder_from_args,
        load_calibration,
        model_from_args,
        pipeline_from_args,
    )
    from c3t_edge.runtime.runner import DeviceRun, PortOptions

    models: dict[tuple, object] = {}
    runs = []
    for spec in specs:
        dargs = device_args(args, spec)
        if dargs.baud <= 0:
            raise C3TEdgeError(f"{spec.name}: baud must be > 0 (got {dargs.baud})")
        calibration = load_calibration(dargs.calibration)
        key = (dargs.model, dargs.precision, dargs.engine)
        if key not in models:
            models[key] = model_from_args(dargs)
        model = models[key]
        pipeline = pipeline_from_args(dargs, model, decoder=decoder_from_args(dargs, model),
                                      calibration=calibration)
        runs.append(DeviceRun(spec.name, spec.port, pipeline, make_sink(spec, pipeline),
                              PortOptions(baudrate=dargs.baud)))
    return runs

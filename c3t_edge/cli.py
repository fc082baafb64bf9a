"""The ``c3t-edge`` command line (also ``python -m c3t_edge``).

Each subcommand lives in its own module under :mod:`c3t_edge.commands` with two functions:
``add_arguments(parser)`` and ``run(args) -> int``. Only the module of the command being run is
imported, so ``c3t-edge --help`` imports neither numpy nor the runtime; command modules import their
heavy dependencies (torch, onnxruntime) inside ``run`` so that the runtime commands stay light.
Errors derived from :class:`~c3t_edge.errors.C3TEdgeError` become one line on stderr and a non-zero
exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Iterable, Sequence

from c3t_edge import __version__
from c3t_edge.errors import C3TEdgeError, MissingDependencyError

#: Subcommand name -> one-line help. The module is ``c3t_edge.commands.<name>``.
COMMANDS: dict[str, str] = {
    "train": "train one method on camera(+IMU) data into a run directory",
    "evaluate": "compare methods over seeds on subjects never seen in training",
    "export": "export a run's IMU recogniser as a model bundle (ONNX, INT8, TFLite, metadata)",
    "info": "describe a model bundle",
    "stream": "recognise actions live from an IMU on a serial or BLE port",
    "record": "record what a port sends into a crash-safe file",
    "replay": "feed a recording through the streaming pipeline",
    "decode": "decode protocol frames into samples (protocol debugging)",
    "calibrate": "estimate a sensor calibration profile",
    "demo": "the whole story on the embedded defaults, no hardware",
}


class _ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a wrong flag as one line (no usage block) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser(commands: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line; ``commands``: the subcommands whose modules are imported and whose
    arguments are added (default: all). The others are listed by name and help line only."""
    wanted = set(COMMANDS if commands is None else commands)
    parser = _ArgumentParser(
        prog="c3t-edge",
        description="IMU-only action recognition transferred from a camera (C3T), for the edge.",
    )
    parser.add_argument("--version", action="version", version=f"c3t-edge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_ArgumentParser)
    sub.required = True
    for name, help_text in COMMANDS.items():
        if name not in wanted:
            sub.add_parser(name, help=help_text)
            continue
        module = importlib.import_module(f"c3t_edge.commands.{name}")
        cmd = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip())
        module.add_arguments(cmd)
        cmd.set_defaults(_module=module)
    return parser


def _command_in(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (its first word that is not an option), or None."""
    first = next((word for word in argv if not word.startswith("-")), None)
    return first if first in COMMANDS else None


#: Optional packages (import name -> the extra that installs them): a command that needs one that is
#: missing says which extra to install, in one line.
OPTIONAL_PACKAGES = {"torch": "train", "onnx": "train", "onnxscript": "train", "scipy": "train",
                     "matplotlib": "train", "litert_torch": "tflite", "ai_edge_litert": "tflite"}


def _missing_extra(exc: ModuleNotFoundError, command: str | None) -> C3TEdgeError | None:
    """The one-line error for an optional package that is not installed (None for anything else)."""
    package = (exc.name or "").partition(".")[0]
    extra = OPTIONAL_PACKAGES.get(package)
    if extra is None:
        return None
    return MissingDependencyError(package.replace("_", "-"), extra, f"c3t-edge {command or ''}".strip())


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command_in(argv)
    try:
        parser = build_parser(() if command is None else (command,))
        args = parser.parse_args(argv)
        return int(args._module.run(args) or 0)
    except ModuleNotFoundError as exc:
        error = _missing_extra(exc, command)
        if error is None:
            raise
        print(f"c3t-edge {command}: error: {error}", file=sys.stderr)
        return error.exit_code
    except C3TEdgeError as exc:
        print(f"c3t-edge {command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())

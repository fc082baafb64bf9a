"""The exception hierarchy: every error a user can cause is a ``C3TEdgeError``.

The command line turns any ``C3TEdgeError`` into one line on stderr and a non-zero exit code;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class C3TEdgeError(Exception):
    """Root of every error c3t-edge raises on purpose (bad input, missing file, wrong flag)."""

    exit_code = 1


class DataError(C3TEdgeError):
    """A dataset folder, trial file or manifest that cannot be read or is empty."""


class BundleError(C3TEdgeError):
    """A model bundle that is missing, incomplete, corrupt or of an unknown format."""


class ProtocolError(C3TEdgeError):
    """A byte stream or recording that cannot be decoded at all (single bad frames are counted, not raised)."""


class TransportError(C3TEdgeError):
    """A port that cannot be opened, or that disappeared and did not come back."""


class DeviceMismatchError(C3TEdgeError):
    """A device whose channels, units or rate do not fit the model bundle."""


class CalibrationError(C3TEdgeError):
    """A calibration profile that is malformed, or a session from which one cannot be estimated."""


class MissingDependencyError(C3TEdgeError):
    """An optional dependency (an extra such as ``train`` or ``tflite``) that this command needs."""

    def __init__(self, package: str, extra: str, purpose: str):
        self.package = package
        self.extra = extra
        super().__init__(
            f"{purpose} needs {package!r}, which is not installed: pip install 'c3t-edge[{extra}]'"
        )


class NotAvailableYet(C3TEdgeError):
    """A documented command whose implementation has not landed yet."""

    exit_code = 2

"""PORT schemes go through a registry: a test registers a small extra transport (tests/_exec_transport.py,
the simulator's stdout as a byte stream) and the unchanged runtime streams through it."""

from __future__ import annotations

import asyncio

import pytest
from _exec_transport import ExecTransport
from _firmware import simulator, write_csv
from _runtime import AxisModel, synthetic_session

from c3t_edge.errors import TransportError
from c3t_edge.runtime import ActionEvent, ListSink, StreamPipeline
from c3t_edge.runtime.runner import run_port
from c3t_edge.transports import (
    BleTransport,
    ReplayTransport,
    SerialTransport,
    open_transport,
    port_kind,
    register_transport,
    registered_schemes,
    unregister_transport,
)


@pytest.fixture
def exec_scheme():
    register_transport("exec", ExecTransport)
    yield
    unregister_transport("exec")


def test_builtin_schemes_and_registration_rules():
    assert registered_schemes() == {"ble": BleTransport, "replay": ReplayTransport}
    assert port_kind("exec://x") == "serial"  # not registered: pyserial decides (and refuses)
    with pytest.raises(ValueError, match="already registered"):
        register_transport("BLE", ExecTransport)
    with pytest.raises(ValueError, match="not a URL scheme"):
        register_transport("no spaces", ExecTransport)
    with pytest.raises(ValueError, match="default transport"):
        register_transport("serial", ExecTransport)
    assert isinstance(open_transport("socket://localhost:1"), SerialTransport)


def test_a_registered_transport_streams_through_the_runtime(exec_scheme, tmp_path_factory, tmp_path):
    sim = simulator(tmp_path_factory)
    session = synthetic_session([("x", 3), ("y", 3), ("z", 3)], seed=3)
    csv = write_csv(tmp_path / "session.csv", session.samples)
    port = f"exec://{sim} --csv {csv} --rate 50"
    assert port_kind(port) == "exec" and isinstance(open_transport(port), ExecTransport)

    sink = ListSink()
    summary = asyncio.run(run_port(port, StreamPipeline(AxisModel()), sink, handle_signals=False))
    assert summary.extra["stopped"] == "ended"  # the program's end is the stream's end
    assert summary.samples == len(session.samples) and summary.lost == 0
    labels = [e.label for e in sink.events if isinstance(e, ActionEvent) and e.label is not None]
    assert labels == ["x", "y", "z"]

    failing = f"exec://{sim} --csv {tmp_path / 'missing.csv'}"
    with pytest.raises(TransportError, match="exited with status"):
        asyncio.run(run_port(failing, StreamPipeline(AxisModel()), ListSink(), handle_signals=False))

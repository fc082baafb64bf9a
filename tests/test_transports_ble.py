"""BLE end to end without hardware: a virtual Nordic UART Service peripheral and a central on a
bumble LocalLink, driven through the project's BleTransport -> bleak BleakClient/BleakScanner ->
the bumble bleak backend. Scanning, connection, MTU exchange, discovery, CCCD subscription,
notifications, writes, disconnection and re-subscription all run through bumble's real host and
link-layer code, which fails when the transport gets any of it wrong."""

from __future__ import annotations

import asyncio
import time

import pytest

pytest.importorskip("bumble")

from _bumble_backend import make_bumble_backends  # noqa: E402
from bumble import gatt  # noqa: E402
from bumble.controller import Controller  # noqa: E402
from bumble.core import AdvertisingData  # noqa: E402
from bumble.device import Device  # noqa: E402
from bumble.hci import Address  # noqa: E402
from bumble.host import Host  # noqa: E402
from bumble.link import LocalLink  # noqa: E402
from bumble.transport.common import AsyncPipeSink  # noqa: E402

from c3t_edge.errors import TransportError  # noqa: E402
from c3t_edge.transports import (  # noqa: E402
    NUS_RX_UUID,
    NUS_SERVICE_UUID,
    NUS_TX_UUID,
    BleCharacteristicMissingError,
    BleDeviceNotFoundError,
    BleOptions,
    BleScanError,
    ReconnectPolicy,
    open_transport,
)

NAME = "C3T-IMU-SIM"
PERIPHERAL_ADDRESS = "F0:F0:F0:F0:F0:F0"
FAST = ReconnectPolicy(initial_s=0.02, factor=2.0, max_s=0.2)
MESSAGE = 180  # > 20: arrives whole only if the transport got a large ATT MTU negotiated


def _device(link: LocalLink, address: str, name: str) -> Device:
    controller = Controller(name, link=link, public_address=address)
    return Device(name=name, address=Address(address), host=Host(controller, AsyncPipeSink(controller)))


class NusPeripheral:
    """A virtual IMU: NUS service, advertising its name, notifying a byte stream to subscribers."""

    def __init__(self, link: LocalLink, name: str = NAME, service: str = NUS_SERVICE_UUID,
                 notify: str = NUS_TX_UUID, write: str = NUS_RX_UUID) -> None:
        self.device = _device(link, PERIPHERAL_ADDRESS, name)
        self.name = name
        self.received = bytearray()  # what the host wrote to RX
        self.subscribed = asyncio.Event()
        self.tx = gatt.Characteristic(notify, gatt.Characteristic.Properties.NOTIFY,
                                      gatt.Characteristic.READABLE, b"")
        rx = gatt.Characteristic(
            write,
            gatt.Characteristic.Properties.WRITE | gatt.Characteristic.Properties.WRITE_WITHOUT_RESPONSE,
            gatt.Characteristic.WRITEABLE,
            gatt.CharacteristicValue(write=lambda _conn, value: self.received.extend(value)))
        self.device.add_service(gatt.Service(service, [self.tx, rx]))
        self.tx.on("subscription", self._on_subscription)
        self.device.on("connection", lambda conn: conn.on("disconnection", self._on_disconnection))
        self.gone = False  # True: stop advertising after the next disconnection (out of range for good)
        self._tasks: set[asyncio.Task] = set()

    def _on_disconnection(self, *_args) -> None:
        self.subscribed.clear()
        if not self.gone:  # advertise again, like real firmware
            task = asyncio.get_running_loop().create_task(self._advertise())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _on_subscription(self, _connection, notify_enabled: bool, _indicate_enabled: bool) -> None:
        if notify_enabled:
            self.subscribed.set()
        else:
            self.subscribed.clear()

    async def start(self) -> None:
        await self.device.power_on()
        await self._advertise()

    async def _advertise(self) -> None:
        adv = bytes(AdvertisingData([(AdvertisingData.FLAGS, bytes([0x06])),
                                     (AdvertisingData.COMPLETE_LOCAL_NAME, self.name.encode())]))
        await self.device.start_advertising(advertising_data=adv, advertising_interval_min=20,
                                            advertising_interval_max=20)

    async def notify(self, data: bytes) -> None:
        await self.device.notify_subscribers(self.tx, data)

    async def drop_link(self) -> None:
        """The device goes out of range / resets: the peripheral ends the connection."""
        for connection in list(self.device.connections.values()):
            await connection.disconnect()


async def make_pair(**uuids: str):
    link = LocalLink()
    peripheral = NusPeripheral(link, **uuids)
    await peripheral.start()
    central = _device(link, "F1:F1:F1:F1:F1:F1", "host")
    client_backend, scanner_backend = make_bumble_backends(central)
    options = BleOptions(client_backend=client_backend, scanner_backend=scanner_backend, scan_timeout_s=3.0)
    return peripheral, central, options


def message(i: int) -> bytes:
    """Message i: its number then a counter pattern, MESSAGE bytes (easy to find in a stream)."""
    return i.to_bytes(4, "little") + bytes((i + k) % 256 for k in range(MESSAGE - 4))


def test_ble_stream_disconnect_reconnect_resubscribe():
    async def main():
        peripheral, _central, options = await make_pair()
        events = []
        delivered, skipped = [], []
        async with open_transport(f"ble://{NAME}", ble=options, on_event=events.append, reconnect=FAST) as t:
            assert t.mtu == 517  # the largest ATT MTU, negotiated with the peripheral
            await asyncio.wait_for(peripheral.subscribed.wait(), 2)

            async def device_side():
                for i in range(200):
                    if i == 60:
                        await peripheral.drop_link()
                    if peripheral.subscribed.is_set():
                        await peripheral.notify(message(i))
                        delivered.append(message(i))
                    else:
                        skipped.append(message(i))
                    await asyncio.sleep(0.002)

            await asyncio.wait_for(device_side(), 10)  # the transport queues what arrives meanwhile
            received, chunks = bytearray(), []

            async def host_side():
                while len(received) < sum(map(len, delivered)):
                    chunk = await t.read()
                    chunks.append(chunk)
                    received.extend(chunk.data)

            try:
                await asyncio.wait_for(host_side(), 5)
            except asyncio.TimeoutError:
                pytest.fail(f"received {len(received)} of {sum(map(len, delivered))} bytes; "
                            f"{len(delivered)} delivered, {len(skipped)} skipped; events {events}")

            # what arrived is exactly what the device sent while subscribed, in order
            assert bytes(received) == b"".join(delivered)
            assert skipped, "the gap lost nothing: the disconnect did not happen"
            assert len(delivered) > 100, "no data after the reconnection: re-subscription failed"
            # ... and the missing messages are one contiguous run: the gap
            numbers = [int.from_bytes(m[:4], "little") for m in delivered]
            missing = [int.from_bytes(m[:4], "little") for m in skipped]
            assert numbers[:60] == list(range(60))
            assert missing == list(range(60, missing[-1] + 1))
            assert numbers[60:] == list(range(missing[-1] + 1, 200))
            # every notification arrived whole (MTU) and became one chunk
            assert all(len(c.data) == MESSAGE for c in chunks) and t.max_notification == MESSAGE
            gapped = [c for c in chunks if c.gap is not None]
            assert len(gapped) == 1 and gapped[0].data == delivered[60]
            assert [e.kind for e in events] == ["disconnected", "reconnected"]
            assert t.stats.reconnects == 1 and t.stats.gaps == [gapped[0].gap]
            assert 0 < gapped[0].gap.duration_s < 2
            assert t.mtu == 517  # negotiated again on the new connection
    asyncio.run(main())


def test_ble_host_commands_are_written_and_split_to_the_mtu():
    async def main():
        peripheral, _central, options = await make_pair()
        async with open_transport(f"ble://{NAME}", ble=options) as t:
            assert t.can_write
            command = bytes(range(256)) * 3  # 768 bytes: more than one ATT write
            await t.write(b"start\n")
            await t.write(command)
            deadline = time.monotonic() + 2
            while len(peripheral.received) < 6 + len(command) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert bytes(peripheral.received) == b"start\n" + command
            assert t.stats.bytes_out == 6 + len(command)
    asyncio.run(main())


def test_ble_find_by_address_and_custom_characteristic_errors():
    async def main():
        peripheral, _central, options = await make_pair()
        async with open_transport(f"ble://{PERIPHERAL_ADDRESS}", ble=options) as t:
            await asyncio.wait_for(peripheral.subscribed.wait(), 2)
            await peripheral.notify(b"by address")
            chunk = await asyncio.wait_for(t.read(), 2)
            assert chunk.data == b"by address"
        wrong = f"ble://{NAME}?notify=0000fff1-0000-1000-8000-00805f9b34fb"
        with pytest.raises(TransportError, match="has no characteristic") as err:
            async with open_transport(wrong, ble=options):
                pass
        assert "\n" not in str(err.value)
        assert isinstance(err.value, BleCharacteristicMissingError)  # the cause, not a guess
    asyncio.run(main())


def test_ble_device_not_found_is_one_clear_error():
    async def main():
        _peripheral, _central, options = await make_pair()
        quick = BleOptions(client_backend=options.client_backend, scanner_backend=options.scanner_backend,
                           scan_timeout_s=0.3)
        started = time.monotonic()
        with pytest.raises(TransportError, match="no BLE device 'NOPE' found") as err:
            async with open_transport("ble://NOPE", ble=quick):
                pass
        assert time.monotonic() - started < 2
        assert "\n" not in str(err.value)
        assert isinstance(err.value, BleDeviceNotFoundError) and not isinstance(err.value, BleScanError)
    asyncio.run(main())


class UnpluggedHci:
    """The HCI side of a Bluetooth dongle that was pulled out: every packet the host sends fails."""

    def on_packet(self, packet: bytes) -> None:
        raise OSError("HCI transport closed")


def test_ble_scan_failure_keeps_its_cause():
    """A stack that cannot scan (here: a central whose HCI transport is gone) is a BleScanError with the
    stack's own error as its cause, not 'device not found' and not a guess."""
    async def main():
        _peripheral, _central, _options = await make_pair()
        dead = Device(name="no-dongle", address=Address("F2:F2:F2:F2:F2:F2"), host=Host(None, UnpluggedHci()))
        client_backend, scanner_backend = make_bumble_backends(dead)
        options = BleOptions(client_backend=client_backend, scanner_backend=scanner_backend, scan_timeout_s=1.0)
        with pytest.raises(BleScanError, match="BLE scan failed: HCI transport closed") as err:
            async with open_transport(f"ble://{NAME}", ble=options):
                pass
        assert isinstance(err.value.__cause__, OSError) and "\n" not in str(err.value)
    asyncio.run(main())


def test_ble_gives_up_after_the_configured_time():
    async def main():
        peripheral, _central, options = await make_pair()
        quick = BleOptions(client_backend=options.client_backend, scanner_backend=options.scanner_backend,
                           scan_timeout_s=0.1)
        events = []
        policy = ReconnectPolicy(initial_s=0.02, max_s=0.05, give_up_after_s=0.4)
        async with open_transport(f"ble://{NAME}", ble=quick, on_event=events.append, reconnect=policy) as t:
            peripheral.gone = True  # out of range for good: no more advertising
            await peripheral.drop_link()
            with pytest.raises(TransportError, match="not back after") as err:
                await asyncio.wait_for(t.read(), 5)
            assert [e.kind for e in events] == ["disconnected", "gave_up"]
            # why the last attempt failed is kept: the device no longer advertises
            assert isinstance(err.value.__cause__, BleDeviceNotFoundError) and "last attempt" in str(err.value)
    asyncio.run(main())


def test_ble_configured_service_and_characteristics():
    async def main():
        custom = {"service": "0000fff0-0000-1000-8000-00805f9b34fb",
                  "notify": "0000fff1-0000-1000-8000-00805f9b34fb",
                  "write": "0000fff2-0000-1000-8000-00805f9b34fb"}
        peripheral, _central, options = await make_pair(**custom)
        with pytest.raises(TransportError, match="has no characteristic"):  # NUS by default: absent here
            async with open_transport(f"ble://{NAME}", ble=options):
                pass
        async with open_transport(f"ble://{NAME}?service=fff0&notify=fff1&write=fff2", ble=options) as t:
            await asyncio.wait_for(peripheral.subscribed.wait(), 2)
            await peripheral.notify(b"custom service")
            assert (await asyncio.wait_for(t.read(), 2)).data == b"custom service"
            await t.write(b"cmd")
            deadline = time.monotonic() + 2
            while bytes(peripheral.received) != b"cmd" and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert bytes(peripheral.received) == b"cmd"
    asyncio.run(main())

"""A bleak backend on a bumble host stack, for the tests (needs ``bumble``, a test-only dependency:
``pip install 'c3t-edge[dev]'``; it lives under tests/, outside the installed package).

This lets ``ble://`` run where bleak has no platform stack: here on virtual controllers linked
in-process by a bumble ``LocalLink`` (it would work on any HCI controller bumble can drive, too).
It is a real central: scanning, connection, ATT MTU exchange, service discovery, CCCD subscription
and writes all go through bumble's host and link layer.

    central = bumble.device.Device(...)             # powered on by the backend if needed
    client_cls, scanner_cls = make_bumble_backends(central)
    transport = open_transport("ble://C3T-IMU",
                               ble=BleOptions(client_backend=client_cls, scanner_backend=scanner_cls))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakError
from bleak.uuids import normalize_uuid_str
from bumble.core import UUID, AdvertisingData
from bumble.device import Device, Peer
from bumble.gatt import Characteristic

#: The ATT MTU this central asks for (the BLE maximum); the peripheral's limit wins if lower.
MAX_ATT_MTU = 517

_PROPERTY_NAMES = {
    Characteristic.Properties.BROADCAST: "broadcast",
    Characteristic.Properties.READ: "read",
    Characteristic.Properties.WRITE_WITHOUT_RESPONSE: "write-without-response",
    Characteristic.Properties.WRITE: "write",
    Characteristic.Properties.NOTIFY: "notify",
    Characteristic.Properties.INDICATE: "indicate",
    Characteristic.Properties.AUTHENTICATED_SIGNED_WRITES: "authenticated-signed-writes",
    Characteristic.Properties.EXTENDED_PROPERTIES: "extended-properties",
}


def make_bumble_backends(device: Device, *, mtu: int = MAX_ATT_MTU) -> tuple[type[BaseBleakClient],
                                                                            type[BaseBleakScanner]]:
    """(client backend, scanner backend) classes bound to one bumble ``Device`` acting as central."""
    client_cls = type("BumbleBleakClient", (BumbleBleakClient,), {"device": device, "request_mtu": mtu})
    scanner_cls = type("BumbleBleakScanner", (BumbleBleakScanner,), {"device": device})
    return client_cls, scanner_cls


def _uuid(u: UUID) -> str:
    return normalize_uuid_str(u.to_hex_str("-"))


async def _powered(device: Device) -> Device:
    if not device.powered_on:
        await device.power_on()
    return device


class BumbleBleakScanner(BaseBleakScanner):
    """Scanner backend: bumble advertisement reports -> bleak ``BLEDevice``/``AdvertisementData``."""

    device: ClassVar[Device]

    def __init__(self, detection_callback: Any, service_uuids: list[str] | None,
                 scanning_mode: str = "active", **kwargs: Any) -> None:
        super().__init__(detection_callback, service_uuids)
        self._active = scanning_mode != "passive"

    async def start(self) -> None:
        self.seen_devices = {}
        device = await _powered(self.device)
        device.on(device.EVENT_ADVERTISEMENT, self._on_advertisement)
        await device.start_scanning(active=self._active, filter_duplicates=False)

    async def stop(self) -> None:
        device = self.device
        device.remove_listener(device.EVENT_ADVERTISEMENT, self._on_advertisement)
        if device.scanning:
            await device.stop_scanning()

    def _on_advertisement(self, adv: Any) -> None:
        data = adv.data
        name = data.get(AdvertisingData.COMPLETE_LOCAL_NAME) or data.get(AdvertisingData.SHORTENED_LOCAL_NAME)
        uuids: list[str] = []
        for tag in (AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
                    AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
                    AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
                    AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS):
            uuids.extend(_uuid(u) for u in (data.get(tag) or []))
        if not self.is_allowed_uuid(uuids):
            return
        manufacturer: dict[int, bytes] = {}
        mfr = data.get(AdvertisingData.MANUFACTURER_SPECIFIC_DATA)
        if mfr:
            manufacturer[int(mfr[0])] = bytes(mfr[1])
        tx_power = data.get(AdvertisingData.TX_POWER_LEVEL)
        ad = AdvertisementData(local_name=name, manufacturer_data=manufacturer, service_data={},
                               service_uuids=uuids, tx_power=tx_power, rssi=adv.rssi, platform_data=(adv,))
        address = str(adv.address).split("/")[0]
        found = self.create_or_update_device(address, address, name, adv.address, ad)
        self.call_detection_callbacks(found, ad)


class BumbleBleakClient(BaseBleakClient):
    """Client backend: a bumble LE connection, its GATT client, and bleak's service objects."""

    device: ClassVar[Device]
    request_mtu: ClassVar[int] = MAX_ATT_MTU

    def __init__(self, address_or_ble_device: BLEDevice | str, *,
                 disconnected_callback: Callable[[], None] | None, timeout: float = 10.0,
                 **kwargs: Any) -> None:
        super().__init__(address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout)
        if isinstance(address_or_ble_device, BLEDevice) and address_or_ble_device.details is not None:
            self._peer_address: Any = address_or_ble_device.details
        else:
            self._peer_address = str(address_or_ble_device)
        self._connection: Any = None
        self._peer: Peer | None = None
        self._requested_disconnect = False
        self._subscriptions: dict[int, Callable[[bytes], None]] = {}

    @property
    def name(self) -> str:
        return self.address

    @property
    def mtu_size(self) -> int:
        return self._connection.att_mtu if self._connection is not None else 23

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        device = await _powered(self.device)
        try:
            connection = await device.connect(self._peer_address, timeout=self._timeout)
        except Exception as exc:  # noqa: BLE001 - bumble raises several types; bleak callers expect BleakError
            raise BleakError(f"bumble connect failed: {exc}") from exc
        self._connection = connection
        self._requested_disconnect = False
        connection.on(connection.EVENT_DISCONNECTION, self._on_disconnection)
        peer = self._peer = Peer(connection)
        try:
            if self.request_mtu > 23:
                await peer.request_mtu(self.request_mtu)
            await peer.discover_services()
            services = BleakGATTServiceCollection()
            for sp in peer.services:
                service = BleakGATTService(sp, sp.handle, _uuid(sp.uuid))
                services.add_service(service)
                await peer.discover_characteristics(service=sp)
                for cp in sp.characteristics:
                    props = [n for flag, n in _PROPERTY_NAMES.items() if cp.properties & flag]
                    char = BleakGATTCharacteristic(cp, cp.handle, _uuid(cp.uuid), props,  # type: ignore[arg-type]
                                                   lambda: self.mtu_size - 3, service)
                    services.add_characteristic(char)
                    await peer.discover_descriptors(characteristic=cp)
                    for dp in cp.descriptors:
                        services.add_descriptor(BleakGATTDescriptor(dp, dp.handle, _uuid(dp.type), char))
            self.services = services
        except Exception as exc:
            await self.disconnect()
            raise BleakError(f"bumble GATT discovery failed: {exc}") from exc

    def _on_disconnection(self, reason: int) -> None:
        self._connection = None
        self._peer = None
        self.services = None
        if not self._requested_disconnect and self._disconnected_callback is not None:
            self._disconnected_callback()

    async def disconnect(self) -> None:
        connection = self._connection
        if connection is None:
            return
        self._requested_disconnect = True
        try:
            await connection.disconnect()
        except Exception:  # noqa: BLE001 - the link may already be down
            pass
        self._connection = None

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("pairing is not supported by the bumble backend")

    async def unpair(self) -> None:
        raise NotImplementedError("pairing is not supported by the bumble backend")

    def _require_peer(self) -> Peer:
        if self._peer is None:
            raise BleakError("Not connected")
        return self._peer

    async def read_gatt_char(self, characteristic: BleakGATTCharacteristic, **kwargs: Any) -> bytearray:
        return bytearray(await self._require_peer().read_value(characteristic.obj))

    async def read_gatt_descriptor(self, descriptor: BleakGATTDescriptor, **kwargs: Any) -> bytearray:
        return bytearray(await self._require_peer().read_value(descriptor.obj))

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic, data: Any,
                              response: bool) -> None:
        await self._require_peer().write_value(characteristic.obj, bytes(data), with_response=response)

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: Any) -> None:
        await self._require_peer().write_value(descriptor.obj, bytes(data), with_response=True)

    async def start_notify(self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback,
                           **kwargs: Any) -> None:
        def subscriber(value: bytes) -> None:
            callback(bytearray(value))

        self._subscriptions[characteristic.handle] = subscriber
        await self._require_peer().subscribe(characteristic.obj, subscriber, prefer_notify=True)

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        subscriber = self._subscriptions.pop(characteristic.handle, None)
        await self._require_peer().unsubscribe(characteristic.obj, subscriber)

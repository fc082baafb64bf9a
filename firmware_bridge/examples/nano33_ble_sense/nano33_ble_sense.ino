/*
 * c3t-edge IMU streamer for the Arduino Nano 33 BLE Sense (nRF52840; Rev1: LSM9DS1, Rev2: BMI270/BMM150).
 *
 * Streams accelerometer (g) and gyroscope (deg/s) samples in the c3t-edge wire protocol
 * (firmware_bridge/PROTOCOL.md) over USB serial AND over Bluetooth LE (Nordic UART Service), and
 * answers host commands (START, STOP, SEND_INFO, HELLO: c3t_device_handle) from either. Set C3T_TEXT_MODE
 * to 1 for the plain-text mode of the Edge Impulse data forwarder instead (USB serial only).
 *
 * Written against (sketch.yaml pins them; the calls below checked against these versions' sources):
 *     board core  arduino:mbed_nano 4.6.0 (board "Arduino Nano 33 BLE", arduino:mbed_nano:nano33ble)
 *     Rev1        Arduino_LSM9DS1 1.1.1        (+-4 g, +-2000 deg/s, 119 Hz: fixed by the library)
 *     Rev2        Arduino_BMI270_BMM150 1.2.3  (+-4 g, +-2000 deg/s, 100 Hz: fixed by the library)
 *     both        ArduinoBLE 2.0.1
 * Rev1 and Rev2 share the board core and its FQBN; C3T_NANO33_REV2=1 selects the Rev2 IMU.
 *
 * Build: copy the portable library into the sketch first (Arduino compiles src/ of a sketch):
 *     make -C firmware_bridge arduino      # -> examples/nano33_ble_sense/src/c3t/
 * then open this folder in the Arduino IDE, or:
 *     arduino-cli compile --profile rev1 .
 *     arduino-cli compile --profile rev2 --build-property compiler.cpp.extra_flags=-DC3T_NANO33_REV2=1 .
 */
#ifndef C3T_NANO33_REV2
#define C3T_NANO33_REV2 0 /* 1: Nano 33 BLE Sense Rev2 (BMI270/BMM150 instead of the LSM9DS1) */
#endif
#if C3T_NANO33_REV2
#include <Arduino_BMI270_BMM150.h>
#else
#include <Arduino_LSM9DS1.h>
#endif
#include <ArduinoBLE.h>

#include "src/c3t/c3t_device.h"

#ifndef C3T_TEXT_MODE
#define C3T_TEXT_MODE 0
#endif
#define SAMPLES_PER_FRAME 10   /* 10 samples = 136 bytes on the wire: one notification at MTU >= 139 */
#define ACC_RANGE_G 4.0f       /* both IMU libraries configure +/-4 g ... */
#define GYRO_RANGE_DPS 2000.0f /* ... and +/-2000 deg/s */
#define BLE_CHUNK 20           /* bytes per notification: 20 works at every MTU (23 is the minimum) */

static const char *NUS_SERVICE = "6E400001-B5A3-F393-E0A9-E50E24DCCA9E";
static const char *NUS_RX = "6E400002-B5A3-F393-E0A9-E50E24DCCA9E"; /* host writes commands */
static const char *NUS_TX = "6E400003-B5A3-F393-E0A9-E50E24DCCA9E"; /* device notifies frames */

static BLEService nus(NUS_SERVICE);
static BLECharacteristic tx(NUS_TX, BLENotify, 244);
static BLECharacteristic rx(NUS_RX, BLEWrite | BLEWriteWithoutResponse, 64);

static c3t_encoder_t enc;
static c3t_device_info_t info;
static c3t_command_parser_t serial_parser;
static c3t_command_parser_t ble_parser;
static c3t_device_t device; /* device.running: samples are streamed */
static uint8_t wire_buf[C3T_IMU_WIRE_MAX(SAMPLES_PER_FRAME, 6) + 200];
static int16_t batch[SAMPLES_PER_FRAME * 6];
static int n_batch = 0;
static uint32_t batch_t_us = 0;
static bool ble_ok = false;

/* Output data rate (Hz). Arduino_LSM9DS1 reports its fixed 119 Hz. Arduino_BMI270_BMM150 configures
 * 100 Hz (BMI2_ACC_ODR_100HZ), but its accelerationSampleRate() computes 99.84 from the register (and
 * 0.39 when that read fails): the configured rate is declared instead. */
static float imu_rate_hz(void)
{
#if C3T_NANO33_REV2
    return 100.0f;
#else
    return IMU.accelerationSampleRate();
#endif
}

/* One sample: v = {ax, ay, az} in g, {gx, gy, gz} in deg/s, in the IMU chip's own (right-handed) axes.
 * On the Nano 33 BLE target (TARGET_ARDUINO_NANO33BLE: the core and FQBN both revisions share)
 * Arduino_BMI270_BMM150 1.1.0-1.2.3 reports x = -chip y, y = -chip x, z = chip z: a mirror image
 * (determinant -1) of the chip's axes, not a rotation of them. The Rev2 build undoes it and streams
 * the BMI270's own axes (its datasheet's). 1.0.0 returned raw counts: do not use it. */
static void read_imu(float v[6])
{
    IMU.readAcceleration(v[0], v[1], v[2]);
    IMU.readGyroscope(v[3], v[4], v[5]);
#if C3T_NANO33_REV2 && (defined(TARGET_ARDUINO_NANO33BLE) || defined(ARDUINO_NANO33BLE))
    for (int i = 0; i < 6; i += 3) {
        float library_x = v[i];
        v[i] = -v[i + 1];
        v[i + 1] = -library_x;
    }
#endif
}

/* Send one wire frame on every link: USB serial, and BLE when a central subscribed. */
static void send(const uint8_t *buf, size_t len)
{
    if (len == 0) return;
    if (Serial) Serial.write(buf, len);
    if (ble_ok && tx.subscribed()) {
        for (size_t off = 0; off < len; off += BLE_CHUNK) {
            size_t n = len - off < BLE_CHUNK ? len - off : BLE_CHUNK;
            tx.writeValue(buf + off, (int)n);
        }
    }
}

static void send_info(void)
{
    send(wire_buf, c3t_encode_info(&enc, micros(), &info, wire_buf, sizeof wire_buf));
}

static void send_event(uint8_t code, uint16_t detail, const char *msg)
{
    send(wire_buf, c3t_encode_event(&enc, micros(), code, detail, msg, strlen(msg), wire_buf, sizeof wire_buf));
}

/* START: a new frame begins with the next sample (a partial one from before STOP is dropped). */
static void start_streaming(void)
{
    n_batch = 0;
}

static void describe_device(void)
{
    c3t_device_info_imu6(&info, "c3t-nano33", imu_rate_hz(), SAMPLES_PER_FRAME, ACC_RANGE_G, GYRO_RANGE_DPS);
    info.fw_major = 1;
    /* nRF52840 factory id; boot id from the hardware random number generator */
    uint32_t id0 = NRF_FICR->DEVICEID[0], id1 = NRF_FICR->DEVICEID[1];
    for (int i = 0; i < 4; ++i) {
        info.device_id[i] = (uint8_t)(id0 >> (8 * i));
        info.device_id[4 + i] = (uint8_t)(id1 >> (8 * i));
    }
    NRF_RNG->TASKS_START = 1;
    for (int i = 0; i < 4; ++i) {
        NRF_RNG->EVENTS_VALRDY = 0;
        while (!NRF_RNG->EVENTS_VALRDY) {}
        info.boot_id = (info.boot_id << 8) | (NRF_RNG->VALUE & 0xFFu);
    }
    NRF_RNG->TASKS_STOP = 1;
    if (info.boot_id == 0) info.boot_id = 1;
}

void setup()
{
    Serial.begin(115200); /* USB CDC: the baud rate is nominal, the link runs at USB speed */
    c3t_encoder_init(&enc);
    c3t_command_parser_init(&serial_parser);
    c3t_command_parser_init(&ble_parser);
    if (!IMU.begin()) {
        while (true) {
#if C3T_TEXT_MODE
            Serial.println("ERR: Failed to initialize IMU!");
#else
            send_event(C3T_EVENT_ERROR, 1, "IMU init failed");
#endif
            delay(1000);
        }
    }
    describe_device();
    const c3t_device_io_t io = {send_event, send_info, start_streaming, NULL};
    c3t_device_init(&device, &enc, &info, &io, 1);
#if C3T_TEXT_MODE
    Serial.println(); /* an empty first line: the host drops the first (maybe partial) line */
#else
    if (BLE.begin()) {
        BLE.setLocalName(info.name);
        BLE.setAdvertisedService(nus);
        nus.addCharacteristic(tx);
        nus.addCharacteristic(rx);
        BLE.addService(nus);
        BLE.advertise();
        ble_ok = true;
    }
    const uint8_t delimiter = 0;
    send(&delimiter, 1); /* ends any partial frame a receiver may hold */
    send_info();         /* sequence 0, BOOT flag */
    send_event(C3T_EVENT_BOOT, 0, "c3t-nano33");
#endif
}

static void poll_commands(void)
{
    c3t_command_t cmd;
    while (Serial.available() > 0) {
        c3t_device_handle(&device, c3t_command_parser_push(&serial_parser, (uint8_t)Serial.read(), &cmd), &cmd);
    }
    if (!ble_ok) return;
    static bool was_subscribed = false;
    BLE.poll();
    bool subscribed = tx.subscribed();
    if (subscribed && !was_subscribed) send_info(); /* a new BLE host needs the scales */
    was_subscribed = subscribed;
    if (rx.written()) {
        const uint8_t *data = rx.value();
        int len = rx.valueLength();
        for (int i = 0; i < len; ++i) {
            c3t_device_handle(&device, c3t_command_parser_push(&ble_parser, data[i], &cmd), &cmd);
        }
    }
}

void loop()
{
    float v[6]; /* ax, ay, az (g), gx, gy, gz (deg/s) */
#if !C3T_TEXT_MODE
    poll_commands();
#endif
    if (!device.running || !IMU.accelerationAvailable() || !IMU.gyroscopeAvailable()) return;
    uint32_t now = micros();
    read_imu(v);
#if C3T_TEXT_MODE
    Serial.print(v[0], 4); Serial.print('\t'); Serial.print(v[1], 4); Serial.print('\t'); Serial.print(v[2], 4);
    Serial.print('\t'); Serial.print(v[3], 2); Serial.print('\t'); Serial.print(v[4], 2); Serial.print('\t');
    Serial.println(v[5], 2);
    (void)now;
#else
    if (n_batch == 0) batch_t_us = now;
    for (int i = 0; i < 6; ++i) batch[n_batch * 6 + i] = c3t_quantize(v[i], info.channels[i].scale);
    if (++n_batch == SAMPLES_PER_FRAME) {
        send(wire_buf, c3t_encode_imu(&enc, batch_t_us, batch, SAMPLES_PER_FRAME, 6, wire_buf, sizeof wire_buf));
        n_batch = 0;
    }
#endif
}

/*
 * c3t_device.h - what every c3t-edge device firmware does the same way, on top of c3t_proto.h: answer the
 * host's commands (START, STOP, SEND_INFO, HELLO, PROTOCOL.md 3) and describe a six-axis IMU.
 *
 * Portable C99 like c3t_proto.h: no heap, no stdio, no hardware. The firmware keeps the links, the clock and
 * the sensor; the library calls it back to send an event or the DEVICE_INFO frame and to start or stop its
 * sampling. One device per firmware: the callbacks take no context.
 */
#ifndef C3T_DEVICE_H
#define C3T_DEVICE_H

#include "c3t_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What the firmware does for the library. send_event and send_info are required; start and stop may be NULL. */
typedef struct {
    /* Encode and send one EVENT frame; message is NUL-terminated ("" for none). */
    void (*send_event)(uint8_t code, uint16_t detail, const char *message);
    /* Encode and send the DEVICE_INFO frame. */
    void (*send_info)(void);
    /* Sampling starts (running already set): drop any partial frame. Called before the STARTED event. */
    void (*start)(void);
    /* Sampling stops (running already cleared): send or drop a partial frame. Called before the STOPPED event. */
    void (*stop)(void);
} c3t_device_io_t;

/* The device's command state. The firmware samples while running is set; it may clear it itself (with a
 * STOPPED event of its own), e.g. at the end of its data. */
typedef struct {
    c3t_encoder_t *enc;            /* HELLO sets its version */
    const c3t_device_info_t *info; /* protocol_min and protocol_max answer HELLO */
    c3t_device_io_t io;
    uint8_t running;               /* 1 while sampling */
} c3t_device_t;

void c3t_device_init(c3t_device_t *dev, c3t_encoder_t *enc, const c3t_device_info_t *info,
                     const c3t_device_io_t *io, uint8_t running);

/* Answer one result of c3t_command_parser_push: a command (C3T_PARSE_COMMAND) is run and acknowledged, a
 * command of another protocol version (C3T_PARSE_UNSUPPORTED) gets an UNSUPPORTED event; other results
 * (no frame yet, a bad frame) send nothing. Events, in order:
 *   START      ACK, then (if not running) start(), STARTED
 *   STOP       ACK, then (if running) stop(), STOPPED
 *   SEND_INFO  ACK, DEVICE_INFO
 *   HELLO v    ACK + DEVICE_INFO, the encoder's version set to min(v, protocol_max); v below protocol_min
 *              or missing: NACK "unsupported protocol version"
 *   other      NACK "unknown command"                                   (detail: the command code) */
void c3t_device_handle(c3t_device_t *dev, int parse_result, const c3t_command_t *cmd);

/* Describe a six-axis IMU: channels ax, ay, az (g, +/- acc_range_g) and gx, gy, gz (deg/s, +/- gyro_range_dps),
 * int16 counts at scale = range / 32768; protocol version C3T_PROTOCOL_VERSION; name copied (at most
 * C3T_MAX_NAME bytes, the rest of the field zero). The firmware version, boot_id and device_id are set to 0:
 * set them after. Channels past the sixth are not touched (DEVICE_INFO does not send them). */
void c3t_device_info_imu6(c3t_device_info_t *info, const char *name, float sample_rate_hz,
                          uint8_t samples_per_frame, float acc_range_g, float gyro_range_dps);

/* A physical value as int16 counts at scale (units per count): rounded half away from zero, clipped. */
int16_t c3t_quantize(float value, float scale);

#ifdef __cplusplus
}
#endif

#endif /* C3T_DEVICE_H */

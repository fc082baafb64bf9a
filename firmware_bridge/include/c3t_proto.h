/*
 * c3t_proto.h - device side of the c3t-edge wire protocol, version 1 (see PROTOCOL.md).
 *
 * Portable C99: no heap, no stdio, only <stdint.h>, <stddef.h> and <string.h>. Every function
 * works on caller-owned memory, so the library runs on any microcontroller with enough RAM for
 * one encoder (about C3T_MAX_FRAME bytes) and one command parser.
 *
 * A frame on the wire is COBS(header | payload | crc16) followed by one 0x00 delimiter;
 * multi-byte fields are little-endian:
 *   version u8 | type u8 | seq u32 | t_us u32 | payload | crc16 (CRC-16/CCITT-FALSE of all before)
 */
#ifndef C3T_PROTO_H
#define C3T_PROTO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define C3T_PROTOCOL_VERSION 1u
#define C3T_HEADER_SIZE 10u
#define C3T_CRC_SIZE 2u
#define C3T_MIN_FRAME_SIZE (C3T_HEADER_SIZE + C3T_CRC_SIZE)
/* Largest decoded frame a receiver must accept. A device may define a smaller C3T_MAX_FRAME. */
#ifndef C3T_MAX_FRAME
#define C3T_MAX_FRAME 1024u
#endif
#define C3T_MAX_PAYLOAD (C3T_MAX_FRAME - C3T_MIN_FRAME_SIZE)
/* COBS worst case: one code byte per 254 data bytes, plus the first one. */
#define C3T_COBS_MAX_ENCODED(n) ((n) + ((n) + 253u) / 254u)
/* Largest frame on the wire, COBS-encoded, with its delimiter. */
#define C3T_MAX_WIRE_FRAME (C3T_COBS_MAX_ENCODED(C3T_MAX_FRAME) + 1u)
#define C3T_MAX_CHANNELS 16u
#define C3T_MAX_NAME 32u
#define C3T_INFO_FIXED_SIZE 24u
#define C3T_CHANNEL_DESC_SIZE 12u
#define C3T_IMU_PREFIX_SIZE 2u
/* Command frames are small: a device needs only this much to receive one. */
#define C3T_MAX_COMMAND_FRAME 64u
#define C3T_MAX_COMMAND_ARGS (C3T_MAX_COMMAND_FRAME - C3T_MIN_FRAME_SIZE - 1u)

/* Frame types (header byte 1). */
enum c3t_frame_type {
    C3T_FRAME_DEVICE_INFO = 0x01,
    C3T_FRAME_IMU_SAMPLES = 0x02,
    C3T_FRAME_EVENT = 0x03,
    C3T_FRAME_COMMAND = 0x10
};

/* Command codes (first payload byte of a COMMAND frame). */
enum c3t_command_code {
    C3T_CMD_START = 0x01,
    C3T_CMD_STOP = 0x02,
    C3T_CMD_SEND_INFO = 0x03,
    C3T_CMD_HELLO = 0x04 /* arg: highest protocol version the host speaks */
};

/* Event codes (first payload byte of an EVENT frame). */
enum c3t_event_code {
    C3T_EVENT_BOOT = 0x01,
    C3T_EVENT_STARTED = 0x02,
    C3T_EVENT_STOPPED = 0x03,
    C3T_EVENT_ACK = 0x04,
    C3T_EVENT_NACK = 0x05,
    C3T_EVENT_OVERRUN = 0x06,
    C3T_EVENT_LOG = 0x07,
    C3T_EVENT_UNSUPPORTED = 0x08, /* detail: the protocol version of a command frame the device dropped */
    C3T_EVENT_ERROR = 0x7F
};

enum c3t_channel_kind { C3T_KIND_OTHER = 0, C3T_KIND_ACC = 1, C3T_KIND_GYRO = 2, C3T_KIND_MAG = 3, C3T_KIND_TEMP = 4 };
enum c3t_channel_unit { C3T_UNIT_COUNTS = 0, C3T_UNIT_G = 1, C3T_UNIT_DEG_PER_S = 2, C3T_UNIT_UT = 3, C3T_UNIT_DEG_C = 4 };
#define C3T_AXIS_NONE 0xFFu
#define C3T_INFO_FLAG_BOOT 0x01u

/* ---- CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final xor. */
#define C3T_CRC16_INIT 0xFFFFu
uint16_t c3t_crc16_update(uint16_t crc, const uint8_t *data, size_t len);
uint16_t c3t_crc16(const uint8_t *data, size_t len);

/* ---- COBS. Encode writes no delimiter. Both return the output length, or 0 when the output
 * does not fit (encode) or the input is not valid COBS (decode; *ok tells an empty result apart). */
size_t c3t_cobs_encode(const uint8_t *in, size_t len, uint8_t *out, size_t out_cap);
size_t c3t_cobs_decode(const uint8_t *in, size_t len, uint8_t *out, size_t out_cap, int *ok);

/* ---- Device description (DEVICE_INFO payload). */
typedef struct {
    uint8_t kind; /* enum c3t_channel_kind */
    uint8_t axis; /* 0 = x, 1 = y, 2 = z, C3T_AXIS_NONE */
    uint8_t unit; /* enum c3t_channel_unit */
    float scale;  /* units per int16 count */
    float range;  /* full scale, +/- in units */
} c3t_channel_t;

typedef struct {
    uint8_t protocol_min;
    uint8_t protocol_max;
    uint8_t fw_major, fw_minor, fw_patch;
    uint8_t n_channels; /* 1..C3T_MAX_CHANNELS */
    uint8_t max_samples_per_frame;
    float sample_rate_hz;
    uint32_t boot_id;      /* differs between consecutive boots (counter or random); 0 = unknown */
    uint8_t device_id[8];  /* hardware id, little-endian u64; zeros = unknown */
    c3t_channel_t channels[C3T_MAX_CHANNELS];
    char name[C3T_MAX_NAME + 1]; /* NUL-terminated, at most C3T_MAX_NAME bytes sent */
} c3t_device_info_t;

/* ---- Encoder: owns the sequence counter and one scratch frame. Functions write one complete
 * wire frame (COBS + 0x00) into out and return its length, or 0 when it cannot (bad arguments,
 * frame larger than C3T_MAX_FRAME or than out_cap); a frame that was not written consumes no
 * sequence number. */
typedef struct {
    uint32_t seq;     /* sequence number of the next frame */
    uint8_t version;  /* protocol version written in headers (after HELLO negotiation) */
    uint8_t boot_flag_pending; /* the next DEVICE_INFO carries the BOOT flag */
    uint8_t scratch[C3T_MAX_FRAME];
} c3t_encoder_t;

void c3t_encoder_init(c3t_encoder_t *enc);
/* samples: n_samples x n_channels int16 counts, sample-major (s0c0, s0c1, ..., s1c0, ...). */
size_t c3t_encode_imu(c3t_encoder_t *enc, uint32_t t_us, const int16_t *samples, uint8_t n_samples,
                      uint8_t n_channels, uint8_t *out, size_t out_cap);
size_t c3t_encode_info(c3t_encoder_t *enc, uint32_t t_us, const c3t_device_info_t *info, uint8_t *out,
                       size_t out_cap);
/* message: UTF-8, msg_len bytes (no terminator needed). */
size_t c3t_encode_event(c3t_encoder_t *enc, uint32_t t_us, uint8_t code, uint16_t detail, const char *message,
                        size_t msg_len, uint8_t *out, size_t out_cap);
/* Host -> device command (t_us = 0); used by C hosts and tests. */
size_t c3t_encode_command(c3t_encoder_t *enc, uint8_t code, const uint8_t *args, size_t n_args, uint8_t *out,
                          size_t out_cap);
/* Frames of n_samples x n_channels samples: wire bytes in the worst case (for buffer sizing). */
#define C3T_IMU_WIRE_MAX(n_samples, n_channels)                                                                  \
    (C3T_COBS_MAX_ENCODED(C3T_MIN_FRAME_SIZE + C3T_IMU_PREFIX_SIZE + 2u * (n_samples) * (n_channels)) + 1u)

/* ---- Command parser (device side): push received bytes one at a time. */
typedef struct {
    uint8_t code;
    uint8_t version;
    uint32_t seq;
    uint8_t n_args;
    uint8_t args[C3T_MAX_COMMAND_ARGS];
} c3t_command_t;

typedef struct {
    uint8_t buf[C3T_COBS_MAX_ENCODED(C3T_MAX_COMMAND_FRAME)];
    size_t len;
    uint8_t overflow;  /* current frame too long: skip to the next delimiter */
    uint32_t errors;   /* frames rejected (COBS, CRC, length, type) */
    uint32_t unsupported; /* command frames of a protocol version this library does not speak (dropped) */
} c3t_command_parser_t;

enum c3t_parse_result {
    C3T_PARSE_NONE = 0,   /* need more bytes */
    C3T_PARSE_COMMAND = 1, /* *cmd holds a valid command */
    C3T_PARSE_ERROR = -1, /* a frame ended but was invalid (counted in errors) */
    /* A command frame with a good CRC but a protocol version other than C3T_PROTOCOL_VERSION: it is
     * dropped (counted in unsupported); only cmd->version is meaningful. The device answers
     * with an UNSUPPORTED event, detail = cmd->version (PROTOCOL.md 3.4). */
    C3T_PARSE_UNSUPPORTED = 2
};

void c3t_command_parser_init(c3t_command_parser_t *p);
int c3t_command_parser_push(c3t_command_parser_t *p, uint8_t byte, c3t_command_t *cmd);
/* Decode one raw (COBS-decoded) frame as a command: C3T_PARSE_COMMAND when valid,
 * C3T_PARSE_UNSUPPORTED for a command of another protocol version, 0 when invalid. */
int c3t_parse_command_frame(const uint8_t *frame, size_t len, c3t_command_t *cmd);

#ifdef __cplusplus
}
#endif

#endif /* C3T_PROTO_H */

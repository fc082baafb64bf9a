/* Frame encoder: header, payload, CRC, COBS, delimiter. */
#include <string.h>

#include "c3t_proto.h"

/* IEEE-754 single precision is required for the scale and rate fields. */
typedef char c3t_float_is_32_bits[(sizeof(float) == 4u) ? 1 : -1];

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)((v >> 8) & 0xFFu);
    p[2] = (uint8_t)((v >> 16) & 0xFFu);
    p[3] = (uint8_t)(v >> 24);
}

static void put_f32(uint8_t *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    put_u32(p, u);
}

void c3t_encoder_init(c3t_encoder_t *enc)
{
    enc->seq = 0;
    enc->version = (uint8_t)C3T_PROTOCOL_VERSION;
    enc->boot_flag_pending = 1;
}

/* scratch holds header + payload_len bytes of payload: add the CRC, COBS-encode, delimit. */
static size_t finish_frame(c3t_encoder_t *enc, uint8_t type, uint32_t seq, uint32_t t_us, size_t payload_len,
                           uint8_t *out, size_t out_cap)
{
    size_t raw_len = C3T_HEADER_SIZE + payload_len;
    size_t n;
    uint8_t *f = enc->scratch;
    if (raw_len + C3T_CRC_SIZE > C3T_MAX_FRAME) {
        return 0;
    }
    f[0] = enc->version;
    f[1] = type;
    put_u32(f + 2, seq);
    put_u32(f + 6, t_us);
    put_u16(f + raw_len, c3t_crc16(f, raw_len));
    raw_len += C3T_CRC_SIZE;
    if (out_cap < 2u) {
        return 0;
    }
    n = c3t_cobs_encode(f, raw_len, out, out_cap - 1u);
    if (n == 0u) {
        return 0;
    }
    out[n] = 0;
    return n + 1u;
}

static size_t finish_device_frame(c3t_encoder_t *enc, uint8_t type, uint32_t t_us, size_t payload_len, uint8_t *out,
                                  size_t out_cap)
{
    size_t n = finish_frame(enc, type, enc->seq, t_us, payload_len, out, out_cap);
    if (n != 0u) {
        enc->seq++; /* wraps 0xFFFFFFFF -> 0 */
    }
    return n;
}

size_t c3t_encode_imu(c3t_encoder_t *enc, uint32_t t_us, const int16_t *samples, uint8_t n_samples,
                      uint8_t n_channels, uint8_t *out, size_t out_cap)
{
    size_t count = (size_t)n_samples * n_channels;
    size_t i;
    uint8_t *p = enc->scratch + C3T_HEADER_SIZE;
    if (n_samples == 0u || n_channels == 0u || C3T_IMU_PREFIX_SIZE + 2u * count > C3T_MAX_PAYLOAD) {
        return 0;
    }
    p[0] = n_samples;
    p[1] = n_channels;
    p += C3T_IMU_PREFIX_SIZE;
    for (i = 0; i < count; ++i) {
        put_u16(p + 2u * i, (uint16_t)samples[i]);
    }
    return finish_device_frame(enc, C3T_FRAME_IMU_SAMPLES, t_us, C3T_IMU_PREFIX_SIZE + 2u * count, out, out_cap);
}

size_t c3t_encode_info(c3t_encoder_t *enc, uint32_t t_us, const c3t_device_info_t *info, uint8_t *out,
                       size_t out_cap)
{
    uint8_t *p = enc->scratch + C3T_HEADER_SIZE;
    size_t name_len = 0;
    size_t i;
    size_t len;
    size_t n;
    if (info->n_channels == 0u || info->n_channels > C3T_MAX_CHANNELS) {
        return 0;
    }
    while (name_len < C3T_MAX_NAME && info->name[name_len] != '\0') {
        ++name_len;
    }
    p[0] = info->protocol_min;
    p[1] = info->protocol_max;
    p[2] = info->fw_major;
    p[3] = info->fw_minor;
    p[4] = info->fw_patch;
    p[5] = info->n_channels;
    p[6] = info->max_samples_per_frame;
    p[7] = enc->boot_flag_pending ? (uint8_t)C3T_INFO_FLAG_BOOT : (uint8_t)0;
    put_f32(p + 8, info->sample_rate_hz);
    put_u32(p + 12, info->boot_id);
    memcpy(p + 16, info->device_id, 8u);
    len = C3T_INFO_FIXED_SIZE;
    for (i = 0; i < info->n_channels; ++i) {
        const c3t_channel_t *c = &info->channels[i];
        p[len + 0u] = c->kind;
        p[len + 1u] = c->axis;
        p[len + 2u] = c->unit;
        p[len + 3u] = 0;
        put_f32(p + len + 4u, c->scale);
        put_f32(p + len + 8u, c->range);
        len += C3T_CHANNEL_DESC_SIZE;
    }
    p[len++] = (uint8_t)name_len;
    memcpy(p + len, info->name, name_len);
    len += name_len;
    n = finish_device_frame(enc, C3T_FRAME_DEVICE_INFO, t_us, len, out, out_cap);
    if (n != 0u) {
        enc->boot_flag_pending = 0;
    }
    return n;
}

size_t c3t_encode_event(c3t_encoder_t *enc, uint32_t t_us, uint8_t code, uint16_t detail, const char *message,
                        size_t msg_len, uint8_t *out, size_t out_cap)
{
    uint8_t *p = enc->scratch + C3T_HEADER_SIZE;
    if (3u + msg_len > C3T_MAX_PAYLOAD) {
        return 0;
    }
    p[0] = code;
    put_u16(p + 1, detail);
    if (msg_len != 0u) {
        memcpy(p + 3, message, msg_len);
    }
    return finish_device_frame(enc, C3T_FRAME_EVENT, t_us, 3u + msg_len, out, out_cap);
}

size_t c3t_encode_command(c3t_encoder_t *enc, uint8_t code, const uint8_t *args, size_t n_args, uint8_t *out,
                          size_t out_cap)
{
    uint8_t *p = enc->scratch + C3T_HEADER_SIZE;
    if (n_args > C3T_MAX_COMMAND_ARGS) {
        return 0;
    }
    p[0] = code;
    if (n_args != 0u) {
        memcpy(p + 1, args, n_args);
    }
    return finish_device_frame(enc, C3T_FRAME_COMMAND, 0u, 1u + n_args, out, out_cap);
}

/* Command parser: the device's receiver for host -> device COMMAND frames. */
#include <string.h>

#include "c3t_proto.h"

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

void c3t_command_parser_init(c3t_command_parser_t *p)
{
    p->len = 0;
    p->overflow = 0;
    p->errors = 0;
    p->unsupported = 0;
}

int c3t_parse_command_frame(const uint8_t *frame, size_t len, c3t_command_t *cmd)
{
    size_t body;
    uint16_t crc;
    if (len < C3T_MIN_FRAME_SIZE + 1u || len > C3T_MAX_COMMAND_FRAME) {
        return 0;
    }
    body = len - C3T_CRC_SIZE;
    crc = (uint16_t)(frame[body] | (uint16_t)((uint16_t)frame[body + 1u] << 8));
    if (c3t_crc16(frame, body) != crc || frame[1] != C3T_FRAME_COMMAND) {
        return 0;
    }
    cmd->version = frame[0];
    cmd->seq = get_u32(frame + 2);
    if (frame[0] != C3T_PROTOCOL_VERSION) {
        /* Another version may lay out its payload differently: nothing but the header is used. */
        cmd->code = 0u;
        cmd->n_args = 0u;
        return C3T_PARSE_UNSUPPORTED;
    }
    cmd->code = frame[C3T_HEADER_SIZE];
    cmd->n_args = (uint8_t)(body - C3T_HEADER_SIZE - 1u);
    memcpy(cmd->args, frame + C3T_HEADER_SIZE + 1u, cmd->n_args);
    return C3T_PARSE_COMMAND;
}

int c3t_command_parser_push(c3t_command_parser_t *p, uint8_t byte, c3t_command_t *cmd)
{
    uint8_t frame[C3T_MAX_COMMAND_FRAME];
    size_t n;
    int ok;
    if (byte != 0u) {
        if (p->len >= sizeof p->buf) {
            p->overflow = 1;
        } else if (!p->overflow) {
            p->buf[p->len++] = byte;
        }
        return C3T_PARSE_NONE;
    }
    /* A delimiter: the bytes since the previous one are a frame (or nothing). */
    if (p->overflow) {
        p->overflow = 0;
        p->len = 0;
        p->errors++;
        return C3T_PARSE_ERROR;
    }
    if (p->len == 0u) {
        return C3T_PARSE_NONE;
    }
    n = c3t_cobs_decode(p->buf, p->len, frame, sizeof frame, &ok);
    p->len = 0;
    ok = ok ? c3t_parse_command_frame(frame, n, cmd) : 0;
    if (ok == C3T_PARSE_UNSUPPORTED) {
        p->unsupported++;
        return C3T_PARSE_UNSUPPORTED;
    }
    if (ok != C3T_PARSE_COMMAND) {
        p->errors++;
        return C3T_PARSE_ERROR;
    }
    return C3T_PARSE_COMMAND;
}

/* Consistent Overhead Byte Stuffing. */
#include "c3t_proto.h"

size_t c3t_cobs_encode(const uint8_t *in, size_t len, uint8_t *out, size_t out_cap)
{
    size_t read = 0;
    size_t write = 1;
    size_t code_pos = 0;
    uint8_t code = 1;

    if (out_cap < 1u) {
        return 0;
    }
    while (read < len) {
        if (in[read] == 0u) {
            out[code_pos] = code;
            code = 1;
            code_pos = write++;
            if (write > out_cap) {
                return 0;
            }
            ++read;
        } else {
            if (write >= out_cap) {
                return 0;
            }
            out[write++] = in[read++];
            ++code;
            if (code == 0xFFu) {
                out[code_pos] = code;
                code = 1;
                if (read == len) {
                    return write; /* a full block at the very end needs no trailing code byte */
                }
                code_pos = write++;
                if (write > out_cap) {
                    return 0;
                }
            }
        }
    }
    out[code_pos] = code;
    return write;
}

size_t c3t_cobs_decode(const uint8_t *in, size_t len, uint8_t *out, size_t out_cap, int *ok)
{
    size_t read = 0;
    size_t write = 0;
    *ok = 0;
    if (len == 0u) {
        return 0;
    }
    while (read < len) {
        uint8_t code = in[read];
        size_t end;
        if (code == 0u) {
            return 0;
        }
        end = read + code;
        if (end > len) {
            return 0;
        }
        for (++read; read < end; ++read) {
            if (in[read] == 0u || write >= out_cap) {
                return 0;
            }
            out[write++] = in[read];
        }
        if (code != 0xFFu && read < len) {
            if (write >= out_cap) {
                return 0;
            }
            out[write++] = 0;
        }
    }
    *ok = 1;
    return write;
}

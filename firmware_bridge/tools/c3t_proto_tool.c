/*
 * c3t-proto-tool: runs the device library on the test vectors of PROTOCOL.md (host build, for tests).
 *
 * Reads one vector per line on stdin and prints one result line (lower-case hex, or "error"):
 *   crc HEX                      -> CRC-16/CCITT-FALSE, 4 hex digits
 *   cobs HEX | uncobs HEX        -> COBS encoding / decoding of the bytes
 *   imu seq=N t=N ch=C samples=V,V,...          -> the wire frame (COBS + 0x00)
 *   info seq=N t=N rate=HZ acc=G gyro=DPS spf=N boot_id=N device_id=N name=S
 *                                -> DEVICE_INFO wire frame of a 6-axis IMU (first after boot)
 *   event seq=N t=N code=N detail=N msg=S      -> EVENT wire frame
 *   command seq=N code=N args=HEX              -> COMMAND wire frame
 *   parse HEX                    -> the command parser on those wire bytes: "code=N seq=N args=HEX",
 *                                   "unsupported version=N" (a command of another protocol
 *                                   version), "error" (first frame invalid) or "none" (no complete frame)
 * "-" stands for empty HEX.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "c3t_proto.h"

#define MAX_BYTES 4096

static uint8_t in_buf[MAX_BYTES];
static uint8_t out_buf[MAX_BYTES];

static size_t parse_hex(const char *s, uint8_t *out)
{
    size_t n = 0;
    if (!strcmp(s, "-")) {
        return 0;
    }
    while (s[0] && s[1] && n < MAX_BYTES) {
        unsigned v;
        if (sscanf(s, "%2x", &v) != 1) {
            break;
        }
        out[n++] = (uint8_t)v;
        s += 2;
    }
    return n;
}

static void print_hex(const uint8_t *b, size_t n)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        printf("%02x", b[i]);
    }
    if (n == 0u) {
        printf("-");
    }
    printf("\n");
}

/* value of key=... in the tokens, or NULL */
static const char *field(char **tok, int ntok, const char *key)
{
    int i;
    size_t k = strlen(key);
    for (i = 1; i < ntok; ++i) {
        if (!strncmp(tok[i], key, k) && tok[i][k] == '=') {
            return tok[i] + k + 1;
        }
    }
    return NULL;
}

static unsigned long long num(char **tok, int ntok, const char *key, unsigned long long dflt)
{
    const char *v = field(tok, ntok, key);
    return v ? strtoull(v, NULL, 0) : dflt;
}

int main(void)
{
    char line[16384];
    static c3t_encoder_t enc;
    static c3t_command_parser_t parser;
    while (fgets(line, sizeof line, stdin) != NULL) {
        char *tok[64];
        int ntok = 0;
        char *p = strtok(line, " \t\r\n");
        size_t n;
        while (p != NULL && ntok < 64) {
            tok[ntok++] = p;
            p = strtok(NULL, " \t\r\n");
        }
        if (ntok == 0) {
            continue;
        }
        c3t_encoder_init(&enc);
        enc.seq = (uint32_t)num(tok, ntok, "seq", 0);
        if (!strcmp(tok[0], "crc") && ntok == 2) {
            n = parse_hex(tok[1], in_buf);
            printf("%04x\n", c3t_crc16(in_buf, n));
        } else if (!strcmp(tok[0], "cobs") && ntok == 2) {
            n = parse_hex(tok[1], in_buf);
            print_hex(out_buf, c3t_cobs_encode(in_buf, n, out_buf, sizeof out_buf));
        } else if (!strcmp(tok[0], "uncobs") && ntok == 2) {
            int ok;
            n = parse_hex(tok[1], in_buf);
            n = c3t_cobs_decode(in_buf, n, out_buf, sizeof out_buf, &ok);
            if (ok) {
                print_hex(out_buf, n);
            } else {
                printf("error\n");
            }
        } else if (!strcmp(tok[0], "imu")) {
            int16_t samples[1024];
            size_t count = 0;
            const char *s = field(tok, ntok, "samples");
            unsigned ch = (unsigned)num(tok, ntok, "ch", 6);
            while (s != NULL && *s && count < 1024u) {
                char *end;
                samples[count++] = (int16_t)strtol(s, &end, 0);
                s = *end == ',' ? end + 1 : end;
                if (end == s && *s != ',') {
                    break;
                }
            }
            n = (ch && count % ch == 0u)
                    ? c3t_encode_imu(&enc, (uint32_t)num(tok, ntok, "t", 0), samples, (uint8_t)(count / ch),
                                     (uint8_t)ch, out_buf, sizeof out_buf)
                    : 0u;
            if (n) {
                print_hex(out_buf, n);
            } else {
                printf("error\n");
            }
        } else if (!strcmp(tok[0], "info")) {
            static c3t_device_info_t info;
            unsigned i;
            unsigned long long id = num(tok, ntok, "device_id", 0);
            const char *name = field(tok, ntok, "name");
            double acc = atof(field(tok, ntok, "acc") ? field(tok, ntok, "acc") : "16");
            double gyro = atof(field(tok, ntok, "gyro") ? field(tok, ntok, "gyro") : "2000");
            memset(&info, 0, sizeof info);
            info.protocol_min = C3T_PROTOCOL_VERSION;
            info.protocol_max = C3T_PROTOCOL_VERSION;
            info.fw_major = 1;
            info.n_channels = 6;
            info.max_samples_per_frame = (uint8_t)num(tok, ntok, "spf", 10);
            info.sample_rate_hz = (float)atof(field(tok, ntok, "rate") ? field(tok, ntok, "rate") : "50");
            info.boot_id = (uint32_t)num(tok, ntok, "boot_id", 1);
            for (i = 0; i < 8u; ++i) {
                info.device_id[i] = (uint8_t)(id >> (8u * i));
            }
            for (i = 0; i < 6u; ++i) {
                info.channels[i].kind = (uint8_t)(i < 3u ? C3T_KIND_ACC : C3T_KIND_GYRO);
                info.channels[i].axis = (uint8_t)(i % 3u);
                info.channels[i].unit = (uint8_t)(i < 3u ? C3T_UNIT_G : C3T_UNIT_DEG_PER_S);
                info.channels[i].range = (float)(i < 3u ? acc : gyro);
                info.channels[i].scale = (float)((i < 3u ? acc : gyro) / 32768.0);
            }
            strncpy(info.name, name ? name : "", C3T_MAX_NAME);
            print_hex(out_buf, c3t_encode_info(&enc, (uint32_t)num(tok, ntok, "t", 0), &info, out_buf, sizeof out_buf));
        } else if (!strcmp(tok[0], "event")) {
            const char *msg = field(tok, ntok, "msg");
            msg = msg ? msg : "";
            print_hex(out_buf, c3t_encode_event(&enc, (uint32_t)num(tok, ntok, "t", 0),
                                                (uint8_t)num(tok, ntok, "code", 0),
                                                (uint16_t)num(tok, ntok, "detail", 0), msg, strlen(msg), out_buf,
                                                sizeof out_buf));
        } else if (!strcmp(tok[0], "command")) {
            const char *a = field(tok, ntok, "args");
            n = a ? parse_hex(a, in_buf) : 0u;
            print_hex(out_buf, c3t_encode_command(&enc, (uint8_t)num(tok, ntok, "code", 0), in_buf, n, out_buf,
                                                  sizeof out_buf));
        } else if (!strcmp(tok[0], "parse") && ntok == 2) {
            size_t i;
            int got = 0;
            c3t_command_t cmd;
            c3t_command_parser_init(&parser);
            n = parse_hex(tok[1], in_buf);
            for (i = 0; i < n && !got; ++i) {
                int r = c3t_command_parser_push(&parser, in_buf[i], &cmd);
                if (r == C3T_PARSE_COMMAND) {
                    got = 1;
                    printf("code=%u seq=%lu args=", cmd.code, (unsigned long)cmd.seq);
                    print_hex(cmd.args, cmd.n_args);
                } else if (r == C3T_PARSE_UNSUPPORTED) {
                    got = 1;
                    printf("unsupported version=%u\n", cmd.version);
                } else if (r == C3T_PARSE_ERROR) {
                    got = 1;
                    printf("error\n");
                }
            }
            if (!got) {
                printf("none\n");
            }
        } else {
            printf("error\n");
        }
        fflush(stdout);
    }
    return 0;
}

/*
 * c3t-imu-sim: a simulated IMU device, built on the host, speaking the c3t-edge wire protocol.
 *
 * Reads samples (ax,ay,az in g, gx,gy,gz in deg/s) from a CSV file and writes what a device would
 * send: protocol frames (default) or Edge-Impulse-forwarder text lines (--text), to stdout or to a
 * serial device / pty (--out PATH, where it also answers host commands). Run with --help.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "c3t_proto.h"
#include "sim_sensor.h"

#define SIM_VERSION_MAJOR 1
#define SIM_VERSION_MINOR 0
#define SIM_VERSION_PATCH 0
#define MAX_LINE 4096

typedef struct {
    const char *csv;
    const char *out;
    const char *name;
    double rate_hz;
    double speed; /* 0 = as fast as possible */
    int text;
    int acc_only; /* --acc-only: declare and send ax, ay, az only (a device without a gyroscope) */
    int samples_per_frame;
    int loop;
    long drop_every;
    long corrupt_every;
    long reset_at;
    long info_every;
    double acc_range_g;
    double gyro_range_dps;
    uint32_t seq_start;
    uint64_t time_start_us;
    uint64_t device_id;
    uint32_t boot_id;
    int wait_start;
    int hold;
    const char *axes;          /* --axes SPEC, NULL = x,y,z */
    double bias[SIM_CHANNELS]; /* --bias, g and deg/s */
    double gain[SIM_CHANNELS]; /* --scale */
    double rate_error_ppm;     /* --rate-error */
} options_t;

/* ------------------------------------------------------------------------------------ output */
static int out_fd = STDOUT_FILENO;
static int cmd_fd = -1; /* bidirectional port: where commands come from */

static void die(const char *msg)
{
    fprintf(stderr, "c3t-imu-sim: %s\n", msg);
    exit(1);
}

static void write_all(const uint8_t *buf, size_t len)
{
    while (len > 0u) {
        ssize_t n = write(out_fd, buf, len);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                continue;
            }
            if (errno == EPIPE || errno == EIO) {
                exit(0); /* the reader went away: a device would not care either */
            }
            die(strerror(errno));
        }
        buf += n;
        len -= (size_t)n;
    }
}

/* ------------------------------------------------------------------------------------ CSV */
typedef struct {
    FILE *fp;
    long line_no;
    int header_checked;
    double *rows; /* all rows, kept when --loop */
    size_t n_rows, cap_rows, next_row;
    int keep;
    int eof;
} csv_reader_t;

/* Parse up to 6 numbers separated by commas (spaces, tabs, semicolons tolerated). Returns count or -1. */
static int parse_row(const char *line, double v[SIM_CHANNELS])
{
    const char *p = line;
    int n = 0;
    for (;;) {
        char *end;
        while (*p == ' ' || *p == '\t') {
            ++p;
        }
        if (*p == '\0' || *p == '\n' || *p == '\r') {
            return n;
        }
        if (n == SIM_CHANNELS) {
            return -1;
        }
        v[n] = strtod(p, &end);
        if (end == p) {
            return -1;
        }
        ++n;
        p = end;
        while (*p == ' ' || *p == '\t') {
            ++p;
        }
        if (*p == ',' || *p == ';') {
            ++p;
        }
    }
}

static int csv_next(csv_reader_t *r, double v[SIM_CHANNELS])
{
    char line[MAX_LINE];
    if (r->eof) {
        if (r->n_rows == 0u) {
            return 0;
        }
        if (r->next_row >= r->n_rows) {
            r->next_row = 0;
        }
        memcpy(v, r->rows + SIM_CHANNELS * r->next_row++, sizeof(double) * SIM_CHANNELS);
        return 1;
    }
    while (fgets(line, sizeof line, r->fp) != NULL) {
        int n;
        const char *p = line;
        r->line_no++;
        while (*p == ' ' || *p == '\t') {
            ++p;
        }
        if (*p == '\0' || *p == '\n' || *p == '\r' || *p == '#') {
            continue;
        }
        n = parse_row(p, v);
        if (n < 0 && !r->header_checked) {
            r->header_checked = 1; /* a header row such as ax,ay,az,gx,gy,gz */
            continue;
        }
        r->header_checked = 1;
        if (n != SIM_CHANNELS) {
            fprintf(stderr, "c3t-imu-sim: CSV line %ld: expected 6 numbers ax,ay,az,gx,gy,gz\n", r->line_no);
            exit(2);
        }
        if (r->keep) {
            if (r->n_rows == r->cap_rows) {
                r->cap_rows = r->cap_rows ? 2u * r->cap_rows : 1024u;
                r->rows = realloc(r->rows, r->cap_rows * sizeof(double) * SIM_CHANNELS);
                if (r->rows == NULL) {
                    die("out of memory");
                }
            }
            memcpy(r->rows + SIM_CHANNELS * r->n_rows++, v, sizeof(double) * SIM_CHANNELS);
        }
        return 1;
    }
    if (ferror(r->fp)) {
        die("cannot read the CSV input");
    }
    if (!r->keep) {
        return 0;
    }
    r->eof = 1;
    r->next_row = 0;
    return csv_next(r, v);
}

/* ------------------------------------------------------------------------------------ device */
typedef struct {
    options_t opt;
    sim_sensor_t sensor;
    sim_clock_t clock;
    c3t_encoder_t enc;
    c3t_device_info_t info;
    c3t_command_parser_t parser;
    int running;
    uint64_t boot_sample; /* sample index (since program start) at which the device last booted */
    uint64_t imu_frames;  /* IMU frames generated (sent, dropped or corrupted) */
    uint64_t text_lines;
    struct timespec wall_start;
    uint8_t wire[C3T_MAX_WIRE_FRAME];
} device_t;

static uint32_t device_now_us(const device_t *d, uint64_t sample)
{
    return (uint32_t)(sim_clock_t_us(&d->clock, sample - d->boot_sample) & 0xFFFFFFFFu);
}

static void send_info(device_t *d, uint32_t t_us)
{
    size_t n = c3t_encode_info(&d->enc, t_us, &d->info, d->wire, sizeof d->wire);
    if (!d->opt.text) {
        write_all(d->wire, n);
    }
}

static void send_event(device_t *d, uint32_t t_us, uint8_t code, uint16_t detail, const char *msg)
{
    if (d->opt.text) {
        return;
    }
    write_all(d->wire, c3t_encode_event(&d->enc, t_us, code, detail, msg, strlen(msg), d->wire, sizeof d->wire));
}

static void boot(device_t *d, uint64_t sample)
{
    c3t_encoder_init(&d->enc);
    d->boot_sample = sample;
    if (sample == 0u) {
        d->enc.seq = d->opt.seq_start;
        d->clock.start_us = d->opt.time_start_us;
    } else {
        d->clock.start_us = 0;
        d->info.boot_id++;
    }
    if (d->opt.text) {
        const char *banner = sample == 0u ? "\r\n" : "c3t-imu-sim: boot\r\n";
        write_all((const uint8_t *)banner, strlen(banner));
        return;
    }
    send_info(d, device_now_us(d, sample));
    send_event(d, device_now_us(d, sample), C3T_EVENT_BOOT, 0, "c3t-imu-sim");
}

static void handle_command(device_t *d, const c3t_command_t *cmd, uint64_t sample)
{
    uint32_t now = device_now_us(d, sample);
    switch (cmd->code) {
    case C3T_CMD_START:
        send_event(d, now, C3T_EVENT_ACK, cmd->code, "");
        if (!d->running) {
            d->running = 1;
            send_event(d, now, C3T_EVENT_STARTED, 0, "");
        }
        break;
    case C3T_CMD_STOP:
        send_event(d, now, C3T_EVENT_ACK, cmd->code, "");
        if (d->running) {
            d->running = 0;
            send_event(d, now, C3T_EVENT_STOPPED, 0, "");
        }
        break;
    case C3T_CMD_SEND_INFO:
        send_event(d, now, C3T_EVENT_ACK, cmd->code, "");
        send_info(d, now);
        break;
    case C3T_CMD_HELLO:
        if (cmd->n_args < 1u || cmd->args[0] < d->info.protocol_min) {
            send_event(d, now, C3T_EVENT_NACK, cmd->code, "unsupported protocol version");
        } else {
            d->enc.version = cmd->args[0] < d->info.protocol_max ? cmd->args[0] : d->info.protocol_max;
            send_event(d, now, C3T_EVENT_ACK, cmd->code, "");
            send_info(d, now);
        }
        break;
    default:
        send_event(d, now, C3T_EVENT_NACK, cmd->code, "unknown command");
        break;
    }
}

/* Read and answer whatever commands arrived; wait up to timeout_ms for the first byte. */
static void poll_commands(device_t *d, int timeout_ms, uint64_t sample)
{
    struct pollfd pfd;
    uint8_t buf[256];
    if (cmd_fd < 0) {
        if (timeout_ms > 0) {
            struct timespec ts;
            ts.tv_sec = timeout_ms / 1000;
            ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
            nanosleep(&ts, NULL);
        }
        return;
    }
    pfd.fd = cmd_fd;
    pfd.events = POLLIN;
    while (poll(&pfd, 1, timeout_ms) > 0 && (pfd.revents & POLLIN)) {
        ssize_t i;
        ssize_t n = read(cmd_fd, buf, sizeof buf);
        if (n <= 0) {
            return;
        }
        for (i = 0; i < n; ++i) {
            c3t_command_t cmd;
            int got = c3t_command_parser_push(&d->parser, buf[i], &cmd);
            if (got == C3T_PARSE_COMMAND) {
                handle_command(d, &cmd, sample);
            } else if (got == C3T_PARSE_UNSUPPORTED) { /* dropped; the host learns why (PROTOCOL.md 3.4) */
                send_event(d, device_now_us(d, sample), C3T_EVENT_UNSUPPORTED, cmd.version,
                           "unsupported protocol version");
            }
        }
        timeout_ms = 0;
    }
}

static double wall_elapsed(const device_t *d)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - d->wall_start.tv_sec) + 1e-9 * (double)(now.tv_nsec - d->wall_start.tv_nsec);
}

/* Wait until the wall clock reaches device-stream time t_s (scaled by --speed), serving commands. */
static void pace(device_t *d, double t_s, uint64_t sample)
{
    if (d->opt.speed <= 0.0) {
        poll_commands(d, 0, sample);
        return;
    }
    for (;;) {
        double wait = t_s / d->opt.speed - wall_elapsed(d);
        if (wait <= 0.0) {
            poll_commands(d, 0, sample);
            return;
        }
        poll_commands(d, (int)ceil(wait * 1000.0), sample);
    }
}

/* Channels the device declares and sends: 3 (ax, ay, az) with --acc-only, else all SIM_CHANNELS. */
static int sent_channels(const device_t *d)
{
    return d->opt.acc_only ? 3 : SIM_CHANNELS;
}

static void emit_frame(device_t *d, const int16_t *raw, int n, uint64_t first_sample)
{
    long k;
    size_t len;
    uint32_t t_us = device_now_us(d, first_sample);
    d->imu_frames++;
    k = (long)d->imu_frames;
    if (d->opt.drop_every > 0 && k % d->opt.drop_every == 0) {
        d->enc.seq++; /* lost in the device's output: the sequence number is used up */
    } else {
        len = c3t_encode_imu(&d->enc, t_us, raw, (uint8_t)n, (uint8_t)sent_channels(d), d->wire, sizeof d->wire);
        if (len == 0u) {
            die("frame too large: lower --samples-per-frame");
        }
        if (d->opt.corrupt_every > 0 && k % d->opt.corrupt_every == 0) {
            /* flip bits of one byte in the middle of the encoded frame, never making a 0x00 */
            size_t at = (len - 1u) / 2u;
            uint8_t mask = (uint8_t)((d->wire[at] ^ 0x80u) ? 0x80u : 0x40u);
            d->wire[at] ^= mask;
        }
        write_all(d->wire, len);
    }
    if (d->opt.info_every > 0 && k % d->opt.info_every == 0) {
        send_info(d, t_us);
    }
}

static void emit_text_line(device_t *d, const int16_t *raw)
{
    char line[256];
    int i;
    size_t len = 0;
    d->text_lines++;
    if (d->opt.drop_every > 0 && (long)(d->text_lines % (uint64_t)d->opt.drop_every) == 0) {
        return;
    }
    for (i = 0; i < sent_channels(d); ++i) {
        len += (size_t)snprintf(line + len, sizeof line - len, "%s%.6f", i ? "," : "",
                                (double)raw[i] * (double)d->sensor.scale[i]);
    }
    if (d->opt.corrupt_every > 0 && (long)(d->text_lines % (uint64_t)d->opt.corrupt_every) == 0) {
        line[len / 2u] = '#';
    }
    len += (size_t)snprintf(line + len, sizeof line - len, "\r\n");
    write_all((const uint8_t *)line, len);
}

static void run(device_t *d, csv_reader_t *csv)
{
    int16_t batch[255 * SIM_CHANNELS];
    double v[SIM_CHANNELS];
    int n = 0;
    uint64_t sample = 0;      /* samples read since program start */
    uint64_t first = 0;       /* sample index of batch[0] */
    int have = 1;

    boot(d, 0);
    while (d->opt.wait_start && !d->running) {
        poll_commands(d, 100, sample);
        if (cmd_fd < 0) {
            break;
        }
    }
    while (have) {
        if (!d->running) {
            poll_commands(d, 50, sample);
            continue;
        }
        have = csv_next(csv, v);
        if (!have) {
            break;
        }
        pace(d, sim_clock_true_s(&d->clock, sample), sample);
        if (d->opt.text) {
            int16_t raw[SIM_CHANNELS];
            sim_sensor_measure(&d->sensor, v, raw);
            emit_text_line(d, raw);
            ++sample;
            if (d->opt.reset_at > 0 && d->text_lines == (uint64_t)d->opt.reset_at) {
                boot(d, sample);
            }
            continue;
        }
        if (n == 0) {
            first = sample;
        }
        {
            int16_t raw[SIM_CHANNELS];
            sim_sensor_measure(&d->sensor, v, raw);
            memcpy(batch + sent_channels(d) * n, raw, sizeof(int16_t) * (size_t)sent_channels(d));
        }
        ++n;
        ++sample;
        if (n == d->opt.samples_per_frame) {
            emit_frame(d, batch, n, first);
            n = 0;
            if (d->opt.reset_at > 0 && d->imu_frames == (uint64_t)d->opt.reset_at) {
                boot(d, sample);
            }
        }
    }
    if (n > 0) {
        emit_frame(d, batch, n, first); /* the last, shorter frame */
    }
    while (d->opt.hold && cmd_fd >= 0) {
        poll_commands(d, 100, sample);
    }
}

/* ------------------------------------------------------------------------------------ options */
static void usage(FILE *f)
{
    fputs("usage: c3t-imu-sim --csv FILE|- [options]\n"
          "\n"
          "A simulated IMU that streams CSV samples (ax,ay,az in g, gx,gy,gz in deg/s; one row per\n"
          "sample; an optional header row) as c3t-edge protocol frames (firmware_bridge/PROTOCOL.md).\n"
          "Device time starts at 0 with the first sample.\n"
          "\n"
          "  --csv FILE|-            samples to send ('-' = stdin)\n"
          "  --rate HZ               sample rate (default 50)\n"
          "  --out PATH              write to a serial device / pty (and answer host commands there)\n"
          "                          instead of stdout\n"
          "  --realtime              pace output to the sample rate (default: as fast as possible)\n"
          "  --speed X               pace at X times real time\n"
          "  --text                  plain-text lines (Edge Impulse data forwarder) instead of frames\n"
          "  --acc-only              a device without a gyroscope: DEVICE_INFO declares ax, ay, az only and\n"
          "                          frames (or text lines) carry those 3 values (the CSV keeps 6 columns)\n"
          "  --samples-per-frame N   samples per IMU frame, 1..255 (default 10)\n"
          "  --loop                  repeat the CSV forever (device time keeps running)\n"
          "  --acc-range G           accelerometer full scale, +/- g (default 16)\n"
          "  --gyro-range DPS        gyroscope full scale, +/- deg/s (default 2000)\n"
          "  --info-every N          resend DEVICE_INFO after every N IMU frames (default 0: at boot only)\n"
          "  --wait-start            stay stopped until the host sends START (needs --out)\n"
          "  --hold                  after the CSV ends, keep answering commands until killed (needs --out)\n"
          "  --name NAME             device name in DEVICE_INFO (default c3t-imu-sim)\n"
          "  --device-id N           64-bit device id (default 0x5133)\n"
          "faults, for tests:\n"
          "  --drop-every N          do not send every N-th IMU frame (its sequence number is used up)\n"
          "  --corrupt-every N       flip bits of one byte in every N-th IMU frame (never into 0x00)\n"
          "  --reset-at N            reboot after the N-th IMU frame: sequence numbers and device time\n"
          "                          restart at 0, a new boot id, DEVICE_INFO and a BOOT event again\n"
          "  --seq-start N           first sequence number (to test the 32-bit wrap)\n"
          "  --time-start-us N       device time of the first sample, us (to test the timestamp wrap)\n"
          "sensor faults, for calibration tests (applied in this order before quantisation):\n"
          "  --axes SPEC             axis mapping of acc and gyro, e.g. y,-x,z: reported x = physical y,\n"
          "                          reported y = -physical x, reported z = physical z (default x,y,z)\n"
          "  --scale S[,...]         gain error: 3 values (acc x,y,z) or 6 (acc, then gyro); 1 = none\n"
          "  --bias B,B,B,B,B,B      offset added to ax,ay,az (g) and gx,gy,gz (deg/s)\n"
          "  --rate-error PPM        the oscillator runs fast by PPM: samples come at rate*(1+PPM*1e-6)\n"
          "                          per true second (with --realtime/--speed) but are stamped nominally\n",
          f);
}

static double num_arg(const char *opt, const char *val, double lo, double hi)
{
    char *end;
    double v;
    if (val == NULL) {
        fprintf(stderr, "c3t-imu-sim: %s needs a value (see --help)\n", opt);
        exit(2);
    }
    v = strtod(val, &end);
    if (end == val || *end != '\0' || !(v >= lo && v <= hi)) {
        fprintf(stderr, "c3t-imu-sim: %s %s: expected a number in [%g, %g]\n", opt, val, lo, hi);
        exit(2);
    }
    return v;
}

/* Parse a comma-separated list of 'lo'..'hi' numbers into v; returns how many (at most max). */
static int num_list(const char *opt, const char *val, double *v, int max, double lo, double hi)
{
    int n = 0;
    const char *p = val;
    if (val == NULL) {
        num_arg(opt, val, 0, 0);
    }
    for (;;) {
        char *end;
        double x = strtod(p, &end);
        if (end == p || n == max || !(x >= lo && x <= hi)) {
            fprintf(stderr, "c3t-imu-sim: %s %s: expected up to %d comma-separated numbers in [%g, %g]\n", opt,
                    val, max, lo, hi);
            exit(2);
        }
        v[n++] = x;
        if (*end == '\0') {
            return n;
        }
        if (*end != ',') {
            num_list(opt, "?", v, 0, lo, hi);
        }
        p = end + 1;
    }
}

static void parse_options(int argc, char **argv, options_t *o)
{
    int i;
    memset(o, 0, sizeof *o);
    o->rate_hz = 50.0;
    o->samples_per_frame = 10;
    o->acc_range_g = 16.0;
    o->gyro_range_dps = 2000.0;
    o->name = "c3t-imu-sim";
    o->device_id = 0x5133u;
    o->boot_id = 1;
    for (i = 0; i < SIM_CHANNELS; ++i) {
        o->gain[i] = 1.0;
    }
    for (i = 1; i < argc; ++i) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--csv")) {
            if (val == NULL) {
                num_arg(a, val, 0, 0);
            }
            o->csv = val;
            ++i;
        } else if (!strcmp(a, "--out")) {
            if (val == NULL) {
                num_arg(a, val, 0, 0);
            }
            o->out = val;
            ++i;
        } else if (!strcmp(a, "--name")) {
            if (val == NULL) {
                num_arg(a, val, 0, 0);
            }
            o->name = val;
            ++i;
        } else if (!strcmp(a, "--rate")) {
            o->rate_hz = num_arg(a, val, 1e-3, 1e6);
            ++i;
        } else if (!strcmp(a, "--speed")) {
            o->speed = num_arg(a, val, 1e-3, 1e6);
            ++i;
        } else if (!strcmp(a, "--realtime")) {
            if (o->speed == 0.0) {
                o->speed = 1.0;
            }
        } else if (!strcmp(a, "--text")) {
            o->text = 1;
        } else if (!strcmp(a, "--acc-only")) {
            o->acc_only = 1;
        } else if (!strcmp(a, "--loop")) {
            o->loop = 1;
        } else if (!strcmp(a, "--wait-start")) {
            o->wait_start = 1;
        } else if (!strcmp(a, "--hold")) {
            o->hold = 1;
        } else if (!strcmp(a, "--samples-per-frame")) {
            o->samples_per_frame = (int)num_arg(a, val, 1, 255);
            ++i;
        } else if (!strcmp(a, "--drop-every")) {
            o->drop_every = (long)num_arg(a, val, 1, 1e15);
            ++i;
        } else if (!strcmp(a, "--corrupt-every")) {
            o->corrupt_every = (long)num_arg(a, val, 1, 1e15);
            ++i;
        } else if (!strcmp(a, "--reset-at")) {
            o->reset_at = (long)num_arg(a, val, 1, 1e15);
            ++i;
        } else if (!strcmp(a, "--info-every")) {
            o->info_every = (long)num_arg(a, val, 0, 1e15);
            ++i;
        } else if (!strcmp(a, "--acc-range")) {
            o->acc_range_g = num_arg(a, val, 1e-6, 1e6);
            ++i;
        } else if (!strcmp(a, "--gyro-range")) {
            o->gyro_range_dps = num_arg(a, val, 1e-6, 1e9);
            ++i;
        } else if (!strcmp(a, "--seq-start")) {
            o->seq_start = (uint32_t)num_arg(a, val, 0, 4294967295.0);
            ++i;
        } else if (!strcmp(a, "--time-start-us")) {
            o->time_start_us = (uint64_t)num_arg(a, val, 0, 4294967295.0);
            ++i;
        } else if (!strcmp(a, "--axes")) {
            sim_sensor_t probe;
            if (val == NULL) {
                num_arg(a, val, 0, 0);
            }
            if (sim_sensor_set_axes(&probe, val) != 0) {
                fprintf(stderr, "c3t-imu-sim: --axes %s: expected a signed permutation such as y,-x,z\n", val);
                exit(2);
            }
            o->axes = val;
            ++i;
        } else if (!strcmp(a, "--bias")) {
            if (num_list(a, val, o->bias, SIM_CHANNELS, -1e6, 1e6) != SIM_CHANNELS) {
                fprintf(stderr, "c3t-imu-sim: --bias needs 6 numbers: ax,ay,az (g),gx,gy,gz (deg/s)\n");
                exit(2);
            }
            ++i;
        } else if (!strcmp(a, "--scale")) {
            int n = num_list(a, val, o->gain, SIM_CHANNELS, 1e-3, 1e3);
            if (n != 3 && n != SIM_CHANNELS) {
                fprintf(stderr, "c3t-imu-sim: --scale needs 3 numbers (acc) or 6 (acc, gyro)\n");
                exit(2);
            }
            ++i;
        } else if (!strcmp(a, "--rate-error")) {
            o->rate_error_ppm = num_arg(a, val, -1e5, 1e5);
            ++i;
        } else if (!strcmp(a, "--device-id")) {
            char *end;
            if (val == NULL) {
                num_arg(a, val, 0, 0);
            }
            o->device_id = (uint64_t)strtoull(val, &end, 0);
            if (*end != '\0') {
                num_arg(a, "x", 0, 0);
            }
            ++i;
        } else {
            fprintf(stderr, "c3t-imu-sim: unknown option %s (see --help)\n", a);
            exit(2);
        }
    }
    if (o->csv == NULL) {
        fputs("c3t-imu-sim: --csv FILE|- is required (see --help)\n", stderr);
        exit(2);
    }
    if (C3T_IMU_WIRE_MAX((unsigned)o->samples_per_frame, SIM_CHANNELS) > C3T_MAX_WIRE_FRAME ||
        C3T_MIN_FRAME_SIZE + C3T_IMU_PREFIX_SIZE + 2u * (unsigned)o->samples_per_frame * SIM_CHANNELS >
            C3T_MAX_FRAME) {
        fprintf(stderr, "c3t-imu-sim: --samples-per-frame %d makes frames larger than %u bytes\n",
                o->samples_per_frame, C3T_MAX_FRAME);
        exit(2);
    }
}

static void open_output(const options_t *o)
{
    int fd;
    struct termios tio;
    struct stat st;
    if (o->out == NULL) {
        return;
    }
    if (stat(o->out, &st) == 0 && !S_ISREG(st.st_mode)) {
        fd = open(o->out, O_RDWR | O_NOCTTY); /* a serial device or pty: answer commands there */
    } else {
        fd = open(o->out, O_WRONLY | O_CREAT | O_TRUNC, 0644); /* a file: write only */
    }
    if (fd < 0) {
        fprintf(stderr, "c3t-imu-sim: cannot open %s: %s\n", o->out, strerror(errno));
        exit(1);
    }
    if (isatty(fd) && tcgetattr(fd, &tio) == 0) {
        /* raw mode: bytes pass unchanged in both directions */
        tio.c_iflag &= (tcflag_t) ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
        tio.c_oflag &= (tcflag_t)~OPOST;
        tio.c_lflag &= (tcflag_t) ~(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
        tio.c_cflag &= (tcflag_t) ~(CSIZE | PARENB);
        tio.c_cflag |= CS8;
        tcsetattr(fd, TCSANOW, &tio);
        cmd_fd = fd;
    } else if (fstat(fd, &st) == 0 && (S_ISCHR(st.st_mode) || S_ISSOCK(st.st_mode))) {
        cmd_fd = fd;
    }
    out_fd = fd;
}

int main(int argc, char **argv)
{
    static device_t dev;
    csv_reader_t csv;
    options_t *o = &dev.opt;

    signal(SIGPIPE, SIG_IGN);
    parse_options(argc, argv, o);
    memset(&csv, 0, sizeof csv);
    if (!strcmp(o->csv, "-")) {
        csv.fp = stdin;
    } else {
        csv.fp = fopen(o->csv, "r");
        if (csv.fp == NULL) {
            fprintf(stderr, "c3t-imu-sim: cannot open %s: %s\n", o->csv, strerror(errno));
            return 1;
        }
    }
    csv.keep = o->loop;
    open_output(o);

    sim_sensor_init(&dev.sensor, o->acc_range_g, o->gyro_range_dps);
    if (o->axes != NULL) {
        (void)sim_sensor_set_axes(&dev.sensor, o->axes);
    }
    memcpy(dev.sensor.bias, o->bias, sizeof o->bias);
    memcpy(dev.sensor.gain, o->gain, sizeof o->gain);
    dev.clock.rate_hz = o->rate_hz;
    dev.clock.rate_error_ppm = o->rate_error_ppm;
    memset(&dev.info, 0, sizeof dev.info);
    dev.info.protocol_min = C3T_PROTOCOL_VERSION;
    dev.info.protocol_max = C3T_PROTOCOL_VERSION;
    dev.info.fw_major = SIM_VERSION_MAJOR;
    dev.info.fw_minor = SIM_VERSION_MINOR;
    dev.info.fw_patch = SIM_VERSION_PATCH;
    dev.info.max_samples_per_frame = (uint8_t)o->samples_per_frame;
    dev.info.sample_rate_hz = (float)o->rate_hz;
    dev.info.boot_id = o->boot_id;
    {
        int i;
        for (i = 0; i < 8; ++i) {
            dev.info.device_id[i] = (uint8_t)(o->device_id >> (8 * i));
        }
    }
    strncpy(dev.info.name, o->name, C3T_MAX_NAME);
    sim_sensor_describe(&dev.sensor, &dev.info);
    dev.info.n_channels = (uint8_t)sent_channels(&dev);
    c3t_command_parser_init(&dev.parser);
    dev.running = !o->wait_start || cmd_fd < 0;
    clock_gettime(CLOCK_MONOTONIC, &dev.wall_start);

    run(&dev, &csv);
    if (csv.fp != stdin) {
        fclose(csv.fp);
    }
    free(csv.rows);
    return 0;
}

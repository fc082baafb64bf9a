/* The device's answers to host commands, and the six-axis IMU description (c3t_device.h). */
#include "c3t_device.h"

#define IMU6_CHANNELS 6u

void c3t_device_init(c3t_device_t *dev, c3t_encoder_t *enc, const c3t_device_info_t *info,
                     const c3t_device_io_t *io, uint8_t running)
{
    dev->enc = enc;
    dev->info = info;
    dev->io = *io;
    dev->running = running;
}

static void ack(const c3t_device_t *dev, uint8_t code)
{
    dev->io.send_event(C3T_EVENT_ACK, code, "");
}

static void start(c3t_device_t *dev)
{
    if (dev->running) return;
    dev->running = 1u;
    if (dev->io.start) dev->io.start();
    dev->io.send_event(C3T_EVENT_STARTED, 0u, "");
}

static void stop(c3t_device_t *dev)
{
    if (!dev->running) return;
    dev->running = 0u;
    if (dev->io.stop) dev->io.stop();
    dev->io.send_event(C3T_EVENT_STOPPED, 0u, "");
}

/* HELLO: speak the highest version both sides know, or refuse a host older than this device. */
static void hello(c3t_device_t *dev, const c3t_command_t *cmd)
{
    if (cmd->n_args < 1u || cmd->args[0] < dev->info->protocol_min) {
        dev->io.send_event(C3T_EVENT_NACK, cmd->code, "unsupported protocol version");
        return;
    }
    dev->enc->version = cmd->args[0] < dev->info->protocol_max ? cmd->args[0] : dev->info->protocol_max;
    ack(dev, cmd->code);
    dev->io.send_info();
}

static void run_command(c3t_device_t *dev, const c3t_command_t *cmd)
{
    switch (cmd->code) {
    case C3T_CMD_START:
        ack(dev, cmd->code);
        start(dev);
        break;
    case C3T_CMD_STOP:
        ack(dev, cmd->code);
        stop(dev);
        break;
    case C3T_CMD_SEND_INFO:
        ack(dev, cmd->code);
        dev->io.send_info();
        break;
    case C3T_CMD_HELLO:
        hello(dev, cmd);
        break;
    default:
        dev->io.send_event(C3T_EVENT_NACK, cmd->code, "unknown command");
    }
}

void c3t_device_handle(c3t_device_t *dev, int parse_result, const c3t_command_t *cmd)
{
    if (parse_result == C3T_PARSE_COMMAND) run_command(dev, cmd);
    if (parse_result == C3T_PARSE_UNSUPPORTED) {
        dev->io.send_event(C3T_EVENT_UNSUPPORTED, cmd->version, "unsupported protocol version");
    }
}

void c3t_device_info_imu6(c3t_device_info_t *info, const char *name, float sample_rate_hz,
                          uint8_t samples_per_frame, float acc_range_g, float gyro_range_dps)
{
    uint8_t i;
    info->protocol_min = C3T_PROTOCOL_VERSION;
    info->protocol_max = C3T_PROTOCOL_VERSION;
    info->fw_major = 0u;
    info->fw_minor = 0u;
    info->fw_patch = 0u;
    info->n_channels = IMU6_CHANNELS;
    info->max_samples_per_frame = samples_per_frame;
    info->sample_rate_hz = sample_rate_hz;
    info->boot_id = 0u;
    for (i = 0u; i < sizeof info->device_id; ++i) info->device_id[i] = 0u;
    for (i = 0u; i < IMU6_CHANNELS; ++i) {
        c3t_channel_t *c = &info->channels[i];
        c->kind = i < 3u ? C3T_KIND_ACC : C3T_KIND_GYRO;
        c->axis = (uint8_t)(i % 3u);
        c->unit = i < 3u ? C3T_UNIT_G : C3T_UNIT_DEG_PER_S;
        c->range = i < 3u ? acc_range_g : gyro_range_dps;
        c->scale = c->range / 32768.0f;
    }
    /* Like strncpy: the name, then zeros to the end of the field. */
    for (i = 0u; i <= C3T_MAX_NAME; ++i) {
        info->name[i] = (i < C3T_MAX_NAME && *name != '\0') ? *name++ : '\0';
    }
}

int16_t c3t_quantize(float value, float scale)
{
    float q = value / scale;
    q += (q >= 0.0f) ? 0.5f : -0.5f;
    if (q > 32767.0f) return 32767;
    if (q < -32768.0f) return -32768;
    return (int16_t)q;
}

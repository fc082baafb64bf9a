#include "sim_sensor.h"

#include <math.h>

void sim_sensor_init(sim_sensor_t *s, double acc_range_g, double gyro_range_dps)
{
    int i;
    s->acc_range_g = acc_range_g;
    s->gyro_range_dps = gyro_range_dps;
    for (i = 0; i < SIM_CHANNELS; ++i) {
        s->scale[i] = (float)((i < 3 ? acc_range_g : gyro_range_dps) / 32768.0);
        s->gain[i] = 1.0;
        s->bias[i] = 0.0;
    }
    for (i = 0; i < 3; ++i) {
        s->axis_from[i] = i;
        s->axis_sign[i] = 1;
    }
}

int sim_sensor_set_axes(sim_sensor_t *s, const char *spec)
{
    int from[3];
    int sign[3];
    int seen = 0;
    int i;
    const char *p = spec;
    for (i = 0; i < 3; ++i) {
        sign[i] = 1;
        if (*p == '+' || *p == '-') {
            sign[i] = *p == '-' ? -1 : 1;
            ++p;
        }
        if (*p < 'x' || *p > 'z') {
            return -1;
        }
        from[i] = *p - 'x';
        if (seen & (1 << from[i])) {
            return -1;
        }
        seen |= 1 << from[i];
        ++p;
        if (i < 2) {
            if (*p != ',') {
                return -1;
            }
            ++p;
        }
    }
    if (*p != '\0') {
        return -1;
    }
    for (i = 0; i < 3; ++i) {
        s->axis_from[i] = from[i];
        s->axis_sign[i] = sign[i];
    }
    return 0;
}

static int16_t quantize(double value, float scale)
{
    double q = floor(value / (double)scale + 0.5);
    if (!(q == q)) {
        return 0; /* NaN: a sensor would not produce it; send 0 */
    }
    if (q > 32767.0) {
        return 32767;
    }
    if (q < -32768.0) {
        return -32768;
    }
    return (int16_t)q;
}

void sim_sensor_measure(const sim_sensor_t *s, const double in[SIM_CHANNELS], int16_t out[SIM_CHANNELS])
{
    int i;
    for (i = 0; i < SIM_CHANNELS; ++i) {
        int base = i < 3 ? 0 : 3;
        int axis = i - base;
        double v = (double)s->axis_sign[axis] * in[base + s->axis_from[axis]];
        out[i] = quantize(s->gain[i] * v + s->bias[i], s->scale[i]);
    }
}

void sim_sensor_describe(const sim_sensor_t *s, c3t_device_info_t *info)
{
    int i;
    info->n_channels = SIM_CHANNELS;
    for (i = 0; i < SIM_CHANNELS; ++i) {
        c3t_channel_t *c = &info->channels[i];
        c->kind = (uint8_t)(i < 3 ? C3T_KIND_ACC : C3T_KIND_GYRO);
        c->axis = (uint8_t)(i % 3);
        c->unit = (uint8_t)(i < 3 ? C3T_UNIT_G : C3T_UNIT_DEG_PER_S);
        c->scale = s->scale[i];
        c->range = (float)(i < 3 ? s->acc_range_g : s->gyro_range_dps);
    }
}

uint64_t sim_clock_t_us(const sim_clock_t *c, uint64_t k)
{
    /* A device whose oscillator is off samples at rate*(1+e) but counts time with the same
     * oscillator, so its timestamps stay nominal; the host sees the drift (sim_clock_true_s). */
    return c->start_us + (uint64_t)floor((double)k * 1e6 / c->rate_hz + 0.5);
}

double sim_clock_true_s(const sim_clock_t *c, uint64_t k)
{
    return (double)k / (c->rate_hz * (1.0 + c->rate_error_ppm * 1e-6));
}

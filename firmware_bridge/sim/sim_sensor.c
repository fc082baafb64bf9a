#include "sim_sensor.h"

#include <math.h>

void sim_sensor_init(sim_sensor_t *s, double acc_range_g, double gyro_range_dps)
{
    int i;
    s->acc_range_g = acc_range_g;
    s->gyro_range_dps = gyro_range_dps;
    for (i = 0; i < SIM_CHANNELS; ++i) {
        s->scale[i] = (float)((i < 3 ? acc_range_g : gyro_range_dps) / 32768.0);
    }
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
    /* Calibration faults go here: transform in[] (axes, scale, bias) before quantising. */
    for (i = 0; i < SIM_CHANNELS; ++i) {
        out[i] = quantize(in[i], s->scale[i]);
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
    /* Rate error goes here: a device whose oscillator is off samples at rate*(1+e) but counts time
     * with the same oscillator, so its timestamps stay nominal while the host sees drift. */
    return c->start_us + (uint64_t)floor((double)k * 1e6 / c->rate_hz + 0.5);
}

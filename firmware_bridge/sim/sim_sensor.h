/* The simulated IMU: how one physical sample becomes the int16 counts a device sends.
 *
 * Everything that distorts a sample on its way to the wire belongs here, in this order:
 * physical value -> axis mapping -> scale error (gain) -> bias -> quantisation to the declared
 * scale -> clipping at the range. The calibration faults (--bias, --scale, --axes) plug into
 * sim_sensor_measure; the clock fault (--rate-error) plugs into sim_clock_t_us. */
#ifndef SIM_SENSOR_H
#define SIM_SENSOR_H

#include <stdint.h>

#include "c3t_proto.h"

#define SIM_CHANNELS 6

typedef struct {
    double acc_range_g;    /* +/- full scale of the accelerometer, g */
    double gyro_range_dps; /* +/- full scale of the gyroscope, deg/s */
    float scale[SIM_CHANNELS]; /* declared units per count (exactly what DEVICE_INFO sends) */
    /* Calibration faults (defaults: none). reported axis i of each sensor = axis_sign[i] * physical
     * axis axis_from[i] (the same mounting for acc and gyro); then reported = gain * value + bias. */
    int axis_from[3];
    int axis_sign[3];
    double gain[SIM_CHANNELS];
    double bias[SIM_CHANNELS];
} sim_sensor_t;

void sim_sensor_init(sim_sensor_t *s, double acc_range_g, double gyro_range_dps);
/* Parse an axis mapping such as "y,-x,z" (reported x = physical y, reported y = -physical x, ...)
 * into s; returns 0, or -1 when it is not a signed permutation of x, y, z. */
int sim_sensor_set_axes(sim_sensor_t *s, const char *spec);
/* in: ax, ay, az in g, gx, gy, gz in deg/s. out: counts, value = count * scale. */
void sim_sensor_measure(const sim_sensor_t *s, const double in[SIM_CHANNELS], int16_t out[SIM_CHANNELS]);
/* Fill the channel part of a device description (n_channels and channels[]). */
void sim_sensor_describe(const sim_sensor_t *s, c3t_device_info_t *info);

/* The device clock: microseconds since boot of sample k (counted from boot) at rate_hz. */
typedef struct {
    double rate_hz;
    uint64_t start_us; /* device time of sample 0 */
    double rate_error_ppm; /* oscillator error: samples come rate*(1+ppm*1e-6) per true second */
} sim_clock_t;

uint64_t sim_clock_t_us(const sim_clock_t *c, uint64_t k);
/* True (host) seconds after sample 0 at which sample k is taken: k / (rate * (1 + ppm * 1e-6)). */
double sim_clock_true_s(const sim_clock_t *c, uint64_t k);

#endif

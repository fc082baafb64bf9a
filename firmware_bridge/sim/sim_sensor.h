/* The simulated IMU: how one physical sample becomes the int16 counts a device sends.
 *
 * Everything that distorts a sample on its way to the wire belongs here, in this order:
 * physical value -> (future: axis mapping, scale error, bias) -> quantisation to the declared
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
} sim_sensor_t;

void sim_sensor_init(sim_sensor_t *s, double acc_range_g, double gyro_range_dps);
/* in: ax, ay, az in g, gx, gy, gz in deg/s. out: counts, value = count * scale. */
void sim_sensor_measure(const sim_sensor_t *s, const double in[SIM_CHANNELS], int16_t out[SIM_CHANNELS]);
/* Fill the channel part of a device description (n_channels and channels[]). */
void sim_sensor_describe(const sim_sensor_t *s, c3t_device_info_t *info);

/* The device clock: microseconds since boot of sample k (counted from boot) at rate_hz. */
typedef struct {
    double rate_hz;
    uint64_t start_us; /* device time of sample 0 */
} sim_clock_t;

uint64_t sim_clock_t_us(const sim_clock_t *c, uint64_t k);

#endif

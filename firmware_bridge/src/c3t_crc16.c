/* CRC-16/CCITT-FALSE, bitwise (no table: 2 bytes of RAM, fast enough for IMU rates). */
#include "c3t_proto.h"

uint16_t c3t_crc16_update(uint16_t crc, const uint8_t *data, size_t len)
{
    size_t i;
    unsigned bit;
    for (i = 0; i < len; ++i) {
        crc = (uint16_t)(crc ^ (uint16_t)((uint16_t)data[i] << 8));
        for (bit = 0; bit < 8u; ++bit) {
            if (crc & 0x8000u) {
                crc = (uint16_t)((uint16_t)(crc << 1) ^ 0x1021u);
            } else {
                crc = (uint16_t)(crc << 1);
            }
        }
    }
    return crc;
}

uint16_t c3t_crc16(const uint8_t *data, size_t len)
{
    return c3t_crc16_update(C3T_CRC16_INIT, data, len);
}

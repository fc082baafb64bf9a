/*
 * main.c - the c3t-edge device on a Cortex-M4F (QEMU mps2-an386): the CSV compiled into flash is the sensor.
 *
 * The same device library as the Arduino sketch (firmware_bridge/src), the same commands (START, STOP,
 * SEND_INFO, HELLO: answered by c3t_device_handle) and the same sample path: physical values (g, deg/s)
 * quantized to int16 counts at the scales DEVICE_INFO declares, sent as IMU frames of SAMPLES_PER_FRAME
 * samples on UART0.
 *
 * Timing: SysTick fires once per sample period (C3T_CSV_RATE_HZ x C3T_CSV_SPEED per host second) and counts
 * ticks; device time is ticks x the nominal period (1e6 / C3T_CSV_RATE_HZ us), so with a SPEED above 1 the
 * samples come faster but carry their nominal timestamps. Between ticks and received bytes the core sleeps
 * (WFI), so an idle QEMU uses no host CPU.
 *
 * At boot: DEVICE_INFO (BOOT flag, a boot id from timing jitter: this board has no random number generator),
 * a BOOT event, then nothing until START (a host connects after the boot and asks). START plays the CSV from
 * where it was (from its first row after boot or after its end); at its end the device sends a STOPPED event
 * and waits for START again, or, built with LOOP=1, starts over.
 */
#include <string.h>

#include "c3t_csv_samples.h"
#include "c3t_device.h"
#include "cmsdk.h"

#define SAMPLES_PER_FRAME 10u
#define N_CHANNELS 6u
#define ACC_RANGE_G 16.0f
#define GYRO_RANGE_DPS 2000.0f
#define UART_BAUD 115200u
#define RX_RING_SIZE 128u /* a power of two */

void c3t_systick_handler(void);
void c3t_uart0_rx_handler(void);

static volatile uint32_t tick_count;            /* sample periods since the sample clock started */
static volatile uint8_t rx_ring[RX_RING_SIZE];  /* bytes received, written by the UART interrupt */
static volatile uint32_t rx_head, rx_tail;

static c3t_encoder_t enc;
static c3t_device_info_t info;
static c3t_command_parser_t parser;
static c3t_device_t device; /* device.running: the CSV is playing */
static uint8_t wire_buf[C3T_IMU_WIRE_MAX(SAMPLES_PER_FRAME, N_CHANNELS) + 200u];
static int16_t batch[SAMPLES_PER_FRAME * N_CHANNELS];
static uint32_t n_batch, batch_t_us;
static uint32_t next_row; /* next CSV row to play */
static uint32_t now_us;   /* device time of the current tick */
static uint32_t now_rem;  /* remainder of 1e6 / rate carried between ticks, to keep device time exact */

void c3t_systick_handler(void)
{
    tick_count++;
}

void c3t_uart0_rx_handler(void)
{
    UART0_INTCLEAR = UART_INT_RX; /* first: a byte that arrives while draining raises the interrupt again */
    while (UART0_STATE & UART_STATE_RX_FULL) {
        uint8_t byte = (uint8_t)UART0_DATA;
        if (rx_head - rx_tail < RX_RING_SIZE) {
            rx_ring[rx_head & (RX_RING_SIZE - 1u)] = byte;
            rx_head++;
        }
    }
}

static void uart_init(void)
{
    UART0_BAUDDIV = C3T_SYSCLK_HZ / UART_BAUD;
    UART0_CTRL = UART_CTRL_TX_EN | UART_CTRL_RX_EN | UART_CTRL_RX_INT_EN;
    NVIC_ISER0 = 1u << UART0_RX_IRQ;
}

static void send(const uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len; ++i) {
        while (UART0_STATE & UART_STATE_TX_FULL) {
        }
        UART0_DATA = buf[i];
    }
}

/* Boot id: the low bits of SysTick read after short busy loops vary with how the host runs the emulated core
 * (the same way a jitter entropy source works on hardware without a random number generator).
 *
 * The counter is read only once it counts. Writing CVR clears it to 0, and it reloads from RVR on its next
 * clock: one cycle on silicon, but QEMU reloads it when its timer callback runs on the host, which can come
 * after the whole loop below. Every read was then 0 and every boot had the same id (0xdfde6ac5); a rebooted
 * device whose first frames match the previous boot's byte for byte (same boot id, sequence numbers and
 * times) is, by PROTOCOL.md section 4, a replay of frames the host already has, so the host dropped them as
 * duplicates and never saw the reboot. The spins spent waiting for the reload are jitter too. */
#define SYSTICK_RELOAD_WAIT_MAX 10000000u /* spins: a board whose SysTick never reloads still boots */

static uint32_t jitter_boot_id(void)
{
    uint32_t hash = 2166136261u; /* FNV-1a */
    uint32_t spins = 0u;
    SYST_RVR = 0x00FFFFFFu;
    SYST_CVR = 0u;
    SYST_CSR = 0x5u; /* enabled, processor clock, no interrupt */
    while (SYST_CVR == 0u && spins < SYSTICK_RELOAD_WAIT_MAX) {
        spins++;
    }
    hash = (hash ^ spins) * 16777619u;
    for (uint32_t round = 0; round < 64u; ++round) {
        for (volatile uint32_t spin = 0; spin < 100u + (hash & 0xFFu); spin = spin + 1u) {
        }
        hash = (hash ^ (SYST_CVR & 0xFFFFu)) * 16777619u;
    }
    SYST_CSR = 0u;
    return hash != 0u ? hash : 1u;
}

static void start_sample_clock(void)
{
    SYST_RVR = C3T_SYSCLK_HZ / (C3T_CSV_RATE_HZ * C3T_CSV_SPEED) - 1u;
    SYST_CVR = 0u;
    SYST_CSR = 0x7u; /* enabled, interrupt, processor clock */
}

static void send_info(void)
{
    send(wire_buf, c3t_encode_info(&enc, now_us, &info, wire_buf, sizeof wire_buf));
}

static void send_event(uint8_t code, uint16_t detail, const char *msg)
{
    send(wire_buf, c3t_encode_event(&enc, now_us, code, detail, msg, strlen(msg), wire_buf, sizeof wire_buf));
}

static void flush_batch(void)
{
    if (n_batch > 0u) {
        send(wire_buf, c3t_encode_imu(&enc, batch_t_us, batch, (uint8_t)n_batch, N_CHANNELS, wire_buf,
                                      sizeof wire_buf));
        n_batch = 0u;
    }
}

/* START: a new frame begins with the first sample played. */
static void start_playing(void)
{
    n_batch = 0u;
}

static void describe_device(uint32_t boot_id)
{
    c3t_device_info_imu6(&info, "c3t-qemu-m4", (float)C3T_CSV_RATE_HZ, SAMPLES_PER_FRAME, ACC_RANGE_G,
                         GYRO_RANGE_DPS);
    info.fw_major = 1u;
    info.boot_id = boot_id;
}

static void poll_commands(void)
{
    c3t_command_t cmd;
    while (rx_tail != rx_head) {
        uint8_t byte = rx_ring[rx_tail & (RX_RING_SIZE - 1u)];
        rx_tail++;
        c3t_device_handle(&device, c3t_command_parser_push(&parser, byte, &cmd), &cmd);
    }
}

/* The sensor: the next CSV row, quantized like a real IMU driver's reading. */
static void take_sample(void)
{
    const float *row = c3t_csv_samples[next_row];
    if (n_batch == 0u) batch_t_us = now_us;
    for (uint32_t c = 0; c < N_CHANNELS; ++c) {
        batch[n_batch * N_CHANNELS + c] = c3t_quantize(row[c], info.channels[c].scale);
    }
    if (++n_batch == SAMPLES_PER_FRAME) flush_batch();
    if (++next_row < C3T_CSV_N_SAMPLES) return;
    next_row = 0u;
    if (!C3T_CSV_LOOP) {
        flush_batch();
        device.running = 0u;
        send_event(C3T_EVENT_STOPPED, 0, "end of data");
    }
}

static void advance_device_time(void)
{
    now_us += 1000000u / C3T_CSV_RATE_HZ;
    now_rem += 1000000u % C3T_CSV_RATE_HZ;
    if (now_rem >= C3T_CSV_RATE_HZ) {
        now_rem -= C3T_CSV_RATE_HZ;
        now_us++;
    }
}

/* Sleep until an interrupt left work: a tick not yet handled or a received byte. */
static void wait_for_work(uint32_t ticks_done)
{
    __asm volatile("cpsid i" ::: "memory");
    if (tick_count == ticks_done && rx_head == rx_tail) {
        __asm volatile("wfi" ::: "memory"); /* a pending interrupt wakes the core even while masked */
    }
    __asm volatile("cpsie i" ::: "memory");
}

int main(void)
{
    uint32_t ticks_done = 0u;
    const uint8_t delimiter = 0u;
    /* STOP sends the partial frame before STOPPED. */
    const c3t_device_io_t io = {send_event, send_info, start_playing, flush_batch};
    uart_init();
    c3t_encoder_init(&enc);
    c3t_command_parser_init(&parser);
    describe_device(jitter_boot_id());
    c3t_device_init(&device, &enc, &info, &io, 0u);
    send(&delimiter, 1u); /* ends any partial frame a receiver may hold */
    send_info();          /* sequence 0, BOOT flag */
    send_event(C3T_EVENT_BOOT, 0, "c3t-qemu-m4");
    start_sample_clock();
    for (;;) {
        wait_for_work(ticks_done);
        poll_commands();
        while (ticks_done != tick_count) {
            ticks_done++;
            advance_device_time();
            if (device.running) take_sample();
        }
    }
}

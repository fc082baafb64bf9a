/*
 * startup.c - reset and vector table of the Cortex-M4F firmware for QEMU's mps2-an386 board.
 *
 * The core reads the initial stack pointer and the reset handler from the vector table at address 0.
 * The reset handler copies .data from flash to RAM, zeroes .bss, enables the FPU (the firmware is
 * built with -mfloat-abi=hard, so the first floating-point instruction would fault without it) and
 * calls main(). Exceptions without a handler of their own stop in c3t_fault_handler().
 */
#include <stdint.h>

#include "cmsdk.h"

extern uint32_t _stack_top, _data_load, _data_start, _data_end, _bss_start, _bss_end;
int main(void);
void c3t_reset_handler(void);
void c3t_fault_handler(void);
void c3t_systick_handler(void); /* main.c: the sample clock */
void c3t_uart0_rx_handler(void); /* main.c: one received byte */

void c3t_fault_handler(void)
{
    for (;;) {
        __asm volatile("bkpt #0");
    }
}

void c3t_reset_handler(void)
{
    const uint32_t *src = &_data_load;
    uint32_t *dst;
    for (dst = &_data_start; dst < &_data_end;) {
        *dst++ = *src++;
    }
    for (dst = &_bss_start; dst < &_bss_end;) {
        *dst++ = 0u;
    }
    SCB_CPACR |= (0xFu << 20); /* CP10 and CP11 (the FPU): full access */
    __asm volatile("dsb\n\tisb" ::: "memory");
    (void)main();
    c3t_fault_handler();
}

typedef void (*c3t_vector_t)(void);

/* 16 system exceptions, then the board's interrupts (AN386: IRQ 0 = UART0 RX). */
__attribute__((section(".vectors"), used)) static const c3t_vector_t c3t_vectors[17] = {
    (c3t_vector_t)(uintptr_t)&_stack_top, /* initial stack pointer */
    c3t_reset_handler,
    c3t_fault_handler, /* NMI */
    c3t_fault_handler, /* HardFault */
    c3t_fault_handler, /* MemManage */
    c3t_fault_handler, /* BusFault */
    c3t_fault_handler, /* UsageFault */
    0, 0, 0, 0,        /* reserved */
    c3t_fault_handler, /* SVCall */
    c3t_fault_handler, /* DebugMonitor */
    0,                 /* reserved */
    c3t_fault_handler, /* PendSV */
    c3t_systick_handler,
    c3t_uart0_rx_handler, /* IRQ 0 */
};

/*
 * cmsdk.h - the registers the firmware uses on the MPS2 AN386 (Cortex-M4F): the core's SysTick, NVIC and
 * coprocessor access, and the CMSDK APB UART0 (ARM DDI 0479, "Cortex-M System Design Kit").
 */
#ifndef C3T_CMSDK_H
#define C3T_CMSDK_H

#include <stdint.h>

#define C3T_REG(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

/* System control space */
#define SCB_CPACR C3T_REG(0xE000ED88u)
#define SYST_CSR C3T_REG(0xE000E010u) /* bit 0 enable, bit 1 interrupt, bit 2 processor clock */
#define SYST_RVR C3T_REG(0xE000E014u) /* reload value, 24 bits */
#define SYST_CVR C3T_REG(0xE000E018u) /* current value (counts down) */
#define NVIC_ISER0 C3T_REG(0xE000E100u)

/* The board clock (QEMU: 25 MHz for the processor, SysTick and the APB peripherals). */
#define C3T_SYSCLK_HZ 25000000u

/* CMSDK APB UART0 */
#define UART0_BASE 0x40004000u
#define UART0_DATA C3T_REG(UART0_BASE + 0x00u)
#define UART0_STATE C3T_REG(UART0_BASE + 0x04u) /* bit 0 TX buffer full, bit 1 RX buffer full */
#define UART0_CTRL C3T_REG(UART0_BASE + 0x08u)  /* bit 0 TX enable, bit 1 RX enable, bit 3 RX interrupt */
#define UART0_INTCLEAR C3T_REG(UART0_BASE + 0x0Cu) /* write bit 1: clear the RX interrupt */
#define UART0_BAUDDIV C3T_REG(UART0_BASE + 0x10u)
#define UART_STATE_TX_FULL 0x1u
#define UART_STATE_RX_FULL 0x2u
#define UART_CTRL_TX_EN 0x1u
#define UART_CTRL_RX_EN 0x2u
#define UART_CTRL_RX_INT_EN 0x8u
#define UART_INT_RX 0x2u
#define UART0_RX_IRQ 0u

#endif /* C3T_CMSDK_H */

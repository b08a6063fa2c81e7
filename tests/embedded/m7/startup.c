/* startup.c — the least a Cortex-M7 needs to reach main() on QEMU's mps2-an500: the vector table (the
 * initial stack pointer and the reset handler), .data copied from flash and .bss zeroed, the FPU turned on,
 * and semihosting (bkpt 0xab, which QEMU answers with -semihosting) to print and to exit with a status.
 * No C library startup: the program links with -nostartfiles.
 */
#include <stdint.h>
#include <string.h>

extern uint32_t data_start[], data_end[], data_load[], bss_start[], bss_end[], stack_top[];
int main(void);
void reset_handler(void);
void semihost_write(const char *s);
void semihost_exit(int status);

static int semihost(int op, const void *arg) {
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void semihost_write(const char *s) { semihost(0x04, s); }   /* SYS_WRITE0 */

void semihost_exit(int status) {
    /* SYS_EXIT: ADP_Stopped_ApplicationExit exits QEMU with 0, any other reason with 1 */
    semihost(0x18, (const void *)(uintptr_t)(status == 0 ? 0x20026 : 0x20024));
    for (;;)
        ;
}

static void fault_handler(void) {
    semihost_write("fault\n");
    semihost_exit(1);
}

void reset_handler(void) {
    volatile uint32_t *cpacr = (volatile uint32_t *)0xE000ED88;
    *cpacr |= 0xFu << 20;   /* CP10 and CP11 (the FPU): full access */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    memcpy(data_start, data_load, (size_t)((char *)data_end - (char *)data_start));
    memset(bss_start, 0, (size_t)((char *)bss_end - (char *)bss_start));
    semihost_exit(main());
}

/* the initial stack pointer, then reset, NMI, HardFault, MemManage, BusFault and UsageFault */
__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))stack_top, reset_handler, fault_handler, fault_handler, fault_handler, fault_handler, fault_handler,
};

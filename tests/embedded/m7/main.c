/* main.c — a generated model with embedded weights on a Cortex-M7 (QEMU's mps2-an500), as a bare-metal
 * application would run it: the runtime built with all five NNRT_NO_* switches, the model in static memory
 * of the header's sizes (NAME_init: state, arena and one thread's scratch; no weight memory, the embedded
 * weights are read in place from flash), one run on the --main program's pseudo-random input
 * (nnrt_fill_random, seed 1), and each output printed over semihosting as its bits in hex and as a
 * decimal, for comparing with the x86 build. Exits 0 (QEMU's status) when all went well.
 *
 *     arm-none-eabi-gcc -mcpu=cortex-m7 -mthumb -mfpu=fpv5-d16 -mfloat-abi=hard -std=c11 -O2 $SWITCHES \
 *        -DMODEL_H='"m.h"' -DMODEL=cifar_resnet20 -DMEM=CIFAR_RESNET20 -DIN_SIZE=CIFAR_RESNET20_IMAGE_SIZE \
 *        -DOUT_SIZE=CIFAR_RESNET20_OUTPUT_SIZE -Iruntime -nostartfiles -T mps2_an500.ld main.c startup.c m.c \
 *        RUNTIME_FILES.c -lm -lc -lgcc
 *     qemu-system-arm -machine mps2-an500 -nographic -semihosting-config enable=on,target=native -kernel a.elf
 */
#include MODEL_H
#include "nnrt.h"

#include <stdint.h>
#include <string.h>

void semihost_write(const char *s);

#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define FN(suffix) CAT(MODEL, suffix)
#define BYTES(what) CAT(MEM, what)

/* RAM: the model's state, its intermediates and one thread's scratch (at least one byte each) */
static _Alignas(64) unsigned char state[BYTES(_STATE_BYTES)], arena[BYTES(_ARENA_BYTES) + 1];
static _Alignas(64) unsigned char scratch[BYTES(_SCRATCH_BYTES_PER_THREAD) + 1];
static float in[IN_SIZE], out[OUT_SIZE];

static char *put_str(char *p, const char *s) {
    while (*s)
        *p++ = *s++;
    return p;
}

static char *put_uint(char *p, uint32_t v, int digits) {
    char d[10];
    int n = 0;
    do
        d[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0 || n < digits);
    while (n)
        *p++ = d[--n];
    return p;
}

/* "out[i] 0xBITS DECIMAL": the bits exactly, and the value to 6 decimals for a reader */
static void print_output(int i, float v) {
    char line[80], *p = put_str(line, "out[");
    p = put_uint(p, (uint32_t)i, 1);
    p = put_str(p, "] 0x");
    uint32_t bits;
    memcpy(&bits, &v, 4);
    for (int s = 28; s >= 0; s -= 4)
        *p++ = "0123456789abcdef"[(bits >> s) & 15];
    *p++ = ' ';
    if (v < 0) {
        *p++ = '-';
        v = -v;
    }
    if (v < 4e9f) {
        uint32_t whole = (uint32_t)v, micro = (uint32_t)((v - (float)whole) * 1e6f + 0.5f);
        if (micro >= 1000000)
            whole++, micro -= 1000000;
        p = put_uint(p, whole, 1);
        *p++ = '.';
        p = put_uint(p, micro, 6);
    } else {
        p = put_str(p, "large");
    }
    *p++ = '\n';
    *p = '\0';
    semihost_write(line);
}

int main(void) {
    MODEL *m = FN(_init)(state, arena, scratch, NULL, 1);
    if (!m) {
        semihost_write("error: NAME_init failed\n");
        return 1;
    }
    nnrt_fill_random(in, IN_SIZE, 1);
    if (FN(_load_embedded)(m) != 0 || FN(_run)(m, in, out) != 0) {
        semihost_write("error: ");
        semihost_write(FN(_last_error)(m));
        semihost_write("\n");
        return 1;
    }
    for (int i = 0; i < OUT_SIZE; i++)
        print_output(i, out[i]);
    semihost_write("done\n");
    return 0;
}

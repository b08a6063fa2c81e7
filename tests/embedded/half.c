/* half.c — runtime/kernels/nnk_half.h's conversions, for run_embedded.py to compare with numpy and PyTorch.
 *
 * Writes to the file given: every 16-bit pattern widened from F16 and from BF16 (65536 floats each), then
 * n float bit patterns (a splitmix64 sequence, and every edge: zeros, subnormals, the largest and smallest
 * halves, halfway cases, inf, NaN) narrowed to F16 and to BF16 (n uint16 each), all little-endian as the
 * host stores them. The patterns themselves are written first (n uint32), so that the comparison needs
 * no copy of the generator.
 *
 *     cc -std=c11 -Iruntime tests/embedded/half.c -o half && ./half OUT.bin
 */
#include "kernels/nnk_half.h"

#include <stdio.h>

static uint64_t next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

enum { RANDOM = 1 << 20 };
static uint32_t bits[RANDOM + 1024];

int main(int argc, char **argv) {
    if (argc != 2)
        return 2;
    FILE *f = fopen(argv[1], "wb");
    if (!f)
        return 1;
    size_t n = 0;
    uint64_t s = 1;
    for (int i = 0; i < RANDOM; i++)
        bits[n++] = (uint32_t)next(&s);
    /* around every F16 exponent (and subnormals): the value, its halfway points, and one ulp around them */
    for (uint32_t e = 90; e <= 145 && n + 16 <= sizeof bits / sizeof *bits; e++)
        for (uint32_t m = 0; m < 3; m++) {
            uint32_t base = e << 23 | m << 13;
            uint32_t v[] = {base, base | 0x1000, (base | 0x1000) + 1, (base | 0x1000) - 1, base | 0x80000000u};
            for (size_t j = 0; j < sizeof v / sizeof *v; j++)
                bits[n++] = v[j];
        }
    uint32_t edges[] = {0, 0x80000000u, 1, 0x7f7fffffu, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0x7f800001u, 0x477fe000u,
                        0x477fefffu, 0x477ff000u, 0x33000000u, 0x33000001u, 0x387fc000u, 0x38800000u, 0x3f800000u};
    for (size_t j = 0; j < sizeof edges / sizeof *edges; j++)
        bits[n++] = edges[j];
    for (uint32_t h = 0; h < 65536; h++) {
        float w[2] = {nnk_f16_to_f32((uint16_t)h), nnk_bf16_to_f32((uint16_t)h)};
        fwrite(w, sizeof w, 1, f);
    }
    uint32_t count = (uint32_t)n;
    fwrite(&count, 4, 1, f);
    fwrite(bits, 4, n, f);
    for (size_t i = 0; i < n; i++) {
        float x;
        memcpy(&x, &bits[i], 4);
        uint16_t h[2] = {nnk_f32_to_f16(x), nnk_f32_to_bf16(x)};
        fwrite(h, sizeof h, 1, f);
    }
    return fclose(f) != 0;
}

/*
 * fma_peak.c — this machine's fp32 peak on one core, for `make bench`: 12 independent chains of
 * fused multiply-adds on 16 floats each (enough to hide the FMA latency on current x86 cores), the best
 * of five rounds of about a tenth of a second. Prints GFLOP/s. With AVX-512 the chains are zmm
 * registers; elsewhere they are the compiler's 16-float vectors, split as the machine allows.
 *
 *     cc -O2 -march=native -ffp-contract=fast tools/fma_peak.c -o fma_peak && ./fma_peak
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <time.h>

#if defined(__AVX512F__)
#include <immintrin.h>
typedef __m512 v16;
#define FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#else
typedef float v16 __attribute__((vector_size(64)));
#define FMA(a, b, c) ((a) * (b) + (c))   /* one FMA with -ffp-contract=fast */
#endif

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(void) {
    float init[16 * 14];
    for (int i = 0; i < 16 * 14; i++)
        init[i] = i < 16 * 12 ? (float)i : i < 16 * 13 ? 0.9999999f : 1e-7f;
    v16 acc[12], mul, add;
    __builtin_memcpy(acc, init, sizeof acc);
    __builtin_memcpy(&mul, init + 16 * 12, sizeof mul);
    __builtin_memcpy(&add, init + 16 * 13, sizeof add);
    long iters = 1L << 23;
    double best = 0;
    for (int round = 0; round < 5; round++) {
        double t = seconds();
        for (long n = 0; n < iters; n++)
            for (int i = 0; i < 12; i++)
                acc[i] = FMA(acc[i], mul, add);
        t = seconds() - t;
        double rate = (double)iters * 12 * 16 * 2 / t / 1e9;
        best = rate > best ? rate : best;
    }
    float out[16 * 12];
    __builtin_memcpy(out, acc, sizeof out);
    float sum = 0;
    for (int i = 0; i < 16 * 12; i++)
        sum += out[i];
    printf("%.1f\n", best);
    return sum == 12345.0f;   /* uses the result, so that the loop stays */
}

/*
 * fma_peak.c — this machine's fp32 peak on one core, for `make bench`: 12 independent chains of fused
 * multiply-adds, each one vector register of the target's own width, the best of five rounds of 50 to
 * 100 ms (shorter rounds are repeated longer first, which also lets the clock settle). Prints
 * `264.4 GFLOP/s on AVX-512: 12 accumulators of zmm, 16 floats`, the width chosen by the target:
 *
 *     AVX-512        zmm, 16 floats   (__AVX512F__)
 *     AVX2 / FMA3    ymm,  8 floats   (__AVX__ and __FMA__)
 *     NEON           q,    4 floats   (__ARM_NEON and __ARM_FEATURE_FMA: every aarch64)
 *     otherwise      the compiler's 16-byte vectors, a multiply and an add (one FMA if it contracts)
 *
 * 12 accumulators plus the two operands fit every one of these register files (16 ymm, 32 zmm or q), so
 * nothing spills, and 12 chains cover an FMA latency of 4 to 6 cycles on two FMA units. (Vectors wider
 * than the registers, as 16 floats on AVX2, need 24 ymm registers and spill: on Zen 5 at
 * -march=x86-64-v3 that read 91 GFLOP/s instead of 133, and about half the peak on older AVX2 cores.)
 *
 * The documented peak is cores × FMA units × lanes × 2 (an FMA is two flops) × clock; per core, as here:
 *     AMD EPYC Zen 2/3, AVX2: 2 FMA pipes of 256 bits      8 lanes × 2 × 2 × ~3.2 GHz   ≈ 102 GFLOP/s
 *     AMD EPYC Zen 4, AVX-512 on two 256-bit pipes         16 lanes × 1 × 2 × ~3.55 GHz ≈ 114 GFLOP/s
 *     Intel Xeon with two 512-bit FMA units                16 lanes × 2 × 2 × 3.6-3.85 GHz ≈ 230-247 GFLOP/s
 *     AMD EPYC Zen 5, two 512-bit FMA pipes                16 lanes × 2 × 2 × ~4.1 GHz  ≈ 264 GFLOP/s
 * (the clock is the one a core holds under vector load, often below the rated turbo).
 *
 *     cc -O2 -march=native -ffp-contract=fast tools/fma_peak.c -o fma_peak && ./fma_peak
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <time.h>

#if defined(__AVX512F__)
#include <immintrin.h>
typedef __m512 vec;
#define FMA(a, b, c) _mm512_fmadd_ps(a, b, c)   /* a·b + c */
#define ISA "AVX-512"
#define REGS "zmm, 16 floats"
#elif defined(__AVX__) && defined(__FMA__)
#include <immintrin.h>
typedef __m256 vec;
#define FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define ISA "AVX2/FMA3"
#define REGS "ymm, 8 floats"
#elif defined(__ARM_NEON) && defined(__ARM_FEATURE_FMA)
#include <arm_neon.h>
typedef float32x4_t vec;
#define FMA(a, b, c) vfmaq_f32(a, b, c)   /* a + b·c: the accumulator is fmla's destination, no copies */
#define ISA "NEON"
#define REGS "q, 4 floats"
#else
typedef float vec __attribute__((vector_size(16)));
#define FMA(a, b, c) ((a) * (b) + (c))   /* one FMA where the target has it, with -ffp-contract=fast */
#define ISA "portable C"
#define REGS "16-byte vectors, 4 floats"
#endif

#define LANES ((int)(sizeof(vec) / sizeof(float)))
#define CHAINS 12

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static vec load(const float *p) {
    vec v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}

static float sum(vec v) {
    float f[LANES], s = 0;
    __builtin_memcpy(f, &v, sizeof v);
    for (int i = 0; i < LANES; i++)
        s += f[i];
    return s;
}

int main(void) {
    float init[16 * (CHAINS + 2)];
    for (int i = 0; i < LANES * (CHAINS + 2); i++)
        init[i] = i < LANES * CHAINS ? (float)i : i < LANES * (CHAINS + 1) ? 0.9999999f : 1e-7f;
    /* Twelve named variables rather than an array, so that no compiler keeps them in memory. */
    vec a0 = load(init), a1 = load(init + LANES), a2 = load(init + 2 * LANES), a3 = load(init + 3 * LANES),
        a4 = load(init + 4 * LANES), a5 = load(init + 5 * LANES), a6 = load(init + 6 * LANES),
        a7 = load(init + 7 * LANES), a8 = load(init + 8 * LANES), a9 = load(init + 9 * LANES),
        a10 = load(init + 10 * LANES), a11 = load(init + 11 * LANES);
    vec mul = load(init + LANES * CHAINS), add = load(init + LANES * (CHAINS + 1));
    long iters = 1L << 22;
    double best = 0;
    for (int round = 0; round < 5;) {
        double t = seconds();
        for (long n = 0; n < iters; n++) {
            a0 = FMA(a0, mul, add);
            a1 = FMA(a1, mul, add);
            a2 = FMA(a2, mul, add);
            a3 = FMA(a3, mul, add);
            a4 = FMA(a4, mul, add);
            a5 = FMA(a5, mul, add);
            a6 = FMA(a6, mul, add);
            a7 = FMA(a7, mul, add);
            a8 = FMA(a8, mul, add);
            a9 = FMA(a9, mul, add);
            a10 = FMA(a10, mul, add);
            a11 = FMA(a11, mul, add);
        }
        t = seconds() - t;
        if (t < 0.05) {   /* too short to time (or the clock still rising): longer rounds, not counted */
            iters *= 2;
            continue;
        }
        double rate = (double)iters * CHAINS * LANES * 2 / t / 1e9;
        best = rate > best ? rate : best;
        round++;
    }
    float total = sum(a0) + sum(a1) + sum(a2) + sum(a3) + sum(a4) + sum(a5) + sum(a6) + sum(a7) + sum(a8) +
                  sum(a9) + sum(a10) + sum(a11);
    printf("%.1f GFLOP/s on " ISA ": %d accumulators of " REGS "\n", best, CHAINS);
    return total == 12345.0f;   /* uses the result, so that the loop stays */
}

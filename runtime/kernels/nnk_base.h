/*
 * nnk_base.h — what every nnk kernel header shares: the libc/libm includes and small helpers (dot
 * product, branch-free exp and erf, laned sum and maximum, strided offsets, valid window ranges).
 *
 * Names starting with `nnk__` are internal to the kernels; generated code calls only the `nnk_` ones.
 * Conventions for the whole library: float32 tensors, contiguous, NCHW; outputs first, dimensions last;
 * `long` for flat element counts and offsets, `int` for a single dimension. Kernels never allocate: a
 * kernel that needs scratch memory takes a pointer to it and its header gives a size macro in floats.
 */
#ifndef NNK_BASE_H
#define NNK_BASE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Largest rank nnk_transpose accepts (it keeps per-axis strides in local arrays); other kernels take any. */
#define NNK_MAX_RANK 8

/* a[n] · b[n]. Eight independent partial sums: without -ffast-math a compiler may not reorder one running
   sum, but it can vectorise eight of them, and the shorter chains are also a little more accurate. */
static inline float nnk__dot(const float *restrict a, const float *restrict b, long n)
{
    float acc[8] = {0};
    long body = n - n % 8;   /* (a split written so that gcc 12 sees the tail's trip count is below 8) */
    for (long i = 0; i < body; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += a[i + j] * b[i + j];
    float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (long i = body; i < n; i++)
        sum += a[i] * b[i];
    return sum;
}

/* e^x within about 2 ulp, written without branches so that the loops calling it vectorise (libm's expf
   does not). Cephes' method: x = n·ln2 + r with |r| <= ln2/2, e^r from a degree-7 polynomial, times 2^n
   built in the exponent bits, in two halves so that results near overflow and subnormal results come out
   right. Above 88.72 the result is inf, below -104 it is 0, and NaN stays NaN. */
static inline float nnk__exp(float x)
{
    float xc = x < -104.0f ? -104.0f : x > 88.7228394f ? 88.7228394f : x;
    float t = xc * 1.44269504088896341f + 12582912.0f;   /* 1.5·2^23: round(x/ln2) lands in t's low bits */
    float n = t - 12582912.0f;
    float r = (xc - n * 0.693359375f) + n * 2.12194440e-4f;   /* ln2 in two parts, so r stays exact */
    float p = ((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r + 4.1665795894e-2f) * r +
               1.6666665459e-1f) * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    uint32_t tb;
    memcpy(&tb, &t, sizeof tb);
    int32_t ni = (int32_t)(tb - 0x4B400000u), half = ni / 2;
    uint32_t b1 = (uint32_t)(half + 127) << 23, b2 = (uint32_t)(ni - half + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, sizeof s1);
    memcpy(&s2, &b2, sizeof s2);
    float y = p * s1 * s2;
    return x < -104.0f ? 0.0f : x > 88.7228394f ? INFINITY : y;
}

/* erf(x) within 7e-7 (absolute), branch-free like nnk__exp: Abramowitz and Stegun 7.1.26,
   erf|x| = 1 - t·P(t)·e^(-x²) with t = 1/(1 + 0.3275911|x|), and the sign of x. */
static inline float nnk__erf(float x)
{
    float a = fabsf(x), t = 1.0f / (1.0f + 0.3275911f * a);
    float poly = ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t + 0.254829592f) * t;
    return copysignf(1.0f - poly * nnk__exp(-a * a), x);
}

/* Σ a[n] and max a[n] (-inf when n is 0; NaNs are skipped), in 16 independent lanes so that they
   vectorise: a compiler may not reorder one running sum or maximum. */
static inline float nnk__sum(const float *a, long n)
{
    float acc[16] = {0};
    long body = n - n % 16;
    for (long i = 0; i < body; i += 16)
        for (int j = 0; j < 16; j++)
            acc[j] += a[i + j];
    float sum = 0.0f;
    for (long i = body; i < n; i++)
        sum += a[i];
    for (int j = 0; j < 16; j++)
        sum += acc[j];
    return sum;
}

static inline float nnk__max(const float *a, long n)
{
    float acc[16];
    for (int j = 0; j < 16; j++)
        acc[j] = -INFINITY;
    long body = n - n % 16;
    for (long i = 0; i < body; i += 16)
        for (int j = 0; j < 16; j++)
            acc[j] = a[i + j] > acc[j] ? a[i + j] : acc[j];
    float max = -INFINITY;
    for (long i = body; i < n; i++)
        max = a[i] > max ? a[i] : max;
    for (int j = 0; j < 16; j++)
        max = acc[j] > max ? acc[j] : max;
    return max;
}

/* Element offset of flat index i of a tensor of shape dims[rank] read with per-axis strides stride[rank]:
   i is split into one index per axis (last axis fastest) and each is weighted by its axis' stride. */
static inline long nnk__offset(long i, int rank, const int *dims, const long *stride)
{
    long off = 0;
    for (int ax = rank - 1; ax >= 0; ax--) {
        off += (i % dims[ax]) * stride[ax];
        i /= dims[ax];
    }
    return off;
}

/* The outputs o in [*lo, *hi) of a sliding window whose input position o*step + shift lies in [0, n),
   clipped to [0, outs). Convolution and pooling use it to take the zero-padding test out of their inner
   loops: only the valid range is visited, and padded cells are simply never read. */
static inline void nnk__valid_range(int *lo, int *hi, int outs, int n, int step, int shift)
{
    int first = shift >= 0 ? 0 : (-shift + step - 1) / step;   /* ceil(-shift / step) */
    int end = shift >= n ? 0 : (n - 1 - shift) / step + 1;      /* floor((n-1-shift) / step) + 1 */
    *lo = first;
    *hi = end < outs ? end : outs;
}

#endif

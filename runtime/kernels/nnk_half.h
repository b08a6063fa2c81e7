/*
 * nnk_half.h — 16-bit weights: IEEE half precision (F16) and bfloat16 (BF16) to and from float.
 *
 * nnc --embed-weights=f16|bf16 keeps a model's weights 16-bit in read-only memory; the generated code
 * widens the ones an op reads (nnk_widen_f16, nnk_widen_bf16) into its part of the arena just before the
 * op runs, so that RAM holds only the largest op's weights as floats, never all of them. Widening is
 * exact; narrowing (nnc does it at compile time, after folding batch norms) rounds to nearest even, with
 * subnormals, infinities and NaN (made quiet) kept.
 */
#ifndef NNK_HALF_H
#define NNK_HALF_H

#include <stdint.h>
#include <string.h>

static inline float nnk__bits_f32(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline float nnk_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = h >> 10 & 0x1f, m = h & 0x3ff;
    if (e == 0x1f)   /* inf, or NaN with its payload */
        return nnk__bits_f32(sign | 0x7f800000u | m << 13);
    if (e != 0)      /* normal: the exponent rebiased from 15 to 127 */
        return nnk__bits_f32(sign | (e + 112) << 23 | m << 13);
    float magnitude = (float)m * 0x1p-24f;   /* zero or subnormal: exact in float */
    return sign ? -magnitude : magnitude;
}

static inline float nnk_bf16_to_f32(uint16_t b) { return nnk__bits_f32((uint32_t)b << 16); }

static inline uint16_t nnk_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = x >> 16 & 0x8000, e = x >> 23 & 0xff, m = x & 0x7fffff;
    if (e == 0xff)   /* inf, or NaN made quiet */
        return (uint16_t)(sign | 0x7c00 | (m ? 0x200 | m >> 13 : 0));
    if (e >= 143)    /* 2^16 and above: past the largest half, 65504, whatever the rounding */
        return (uint16_t)(sign | 0x7c00);
    uint32_t h, rem, halfway;
    if (e > 112) {   /* normal */
        h = (e - 112) << 10 | m >> 13;
        rem = m & 0x1fff;
        halfway = 0x1000;
    } else {         /* subnormal or zero: (m | 2^23) * 2^(e-150) in steps of 2^-24 */
        uint32_t shift = 126 - e;
        if (shift > 24)
            return (uint16_t)sign;
        m |= 0x800000;
        h = m >> shift;
        rem = m & ((1u << shift) - 1);
        halfway = 1u << (shift - 1);
    }
    if (rem > halfway || (rem == halfway && (h & 1)))
        h++;   /* a carry goes on into the exponent, up to inf: still the nearest */
    return (uint16_t)(sign | h);
}

static inline uint16_t nnk_f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000)   /* NaN, made quiet */
        return (uint16_t)(x >> 16 | 0x40);
    x += 0x7fff + (x >> 16 & 1);
    return (uint16_t)(x >> 16);
}

static inline void nnk_widen_f16(float *restrict dst, const uint16_t *restrict src, long n)
{
    for (long i = 0; i < n; i++)
        dst[i] = nnk_f16_to_f32(src[i]);
}

static inline void nnk_widen_bf16(float *restrict dst, const uint16_t *restrict src, long n)
{
    for (long i = 0; i < n; i++)
        dst[i] = nnk_bf16_to_f32(src[i]);
}

#endif

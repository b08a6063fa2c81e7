/*
 * nnk_norm.h — normalisations: eval-mode batch norm, layer norm, softmax.
 *
 * Batch norm folds its four vectors into one scale and shift per channel, as PyTorch does on the CPU.
 * Layer norm is the corrected two-pass algorithm (Chan, Golub and LeVeque) in float: the mean m, then the
 * deviations d = x - m, whose sum Σd corrects m for its rounding and whose Σd² gives the variance, so a
 * large common offset in a row does not eat the variance; every sum is cascaded (16 lanes over blocks of
 * 256, the blocks' sums added pairwise), so its error grows with log D, not D. No double (which would be
 * soft-float calls on a Cortex-M4 or M33), no compensated (Kahan) sum, which -ffast-math folds away: under
 * reassociation the sums only change order. Softmax subtracts the row maximum before exponentiating.
 */
#ifndef NNK_NORM_H
#define NNK_NORM_H

#include "nnk_base.h"

NNK__NO_TRAPS_BEGIN

/* y[N,C,S] = (x - mean[C]) / √(var[C] + eps) · gamma[C] + beta[C]  (S: product of spatial dims, may be 1) */
static inline void nnk_batchnorm(float *y, const float *x, const float *restrict gamma,
                                 const float *restrict beta, const float *restrict mean,
                                 const float *restrict var, int N, int C, long S, float eps)
{
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            float scale = gamma[c] / sqrtf(var[c] + eps);
            float shift = beta[c] - mean[c] * scale;
            long base = ((long)n * C + c) * S;
            for (long s = 0; s < S; s++)
                y[base + s] = x[base + s] * scale + shift;
        }
}

/* Over n <= 256 floats: Σ x[i] into s[0], or with `squares` the deviations' Σ (x[i] - m) and Σ (x[i] - m)²
   into s[0] and s[1]; in 16 lanes (so that it vectorises) added pairwise. */
static inline void nnk__block_moments(float *s, const float *x, int n, float m, int squares)
{
    float a1[16] = {0}, a2[16] = {0};
    int body = n - n % 16;
    /* the whole vectors of 16, lane by lane: as one vector of the compiler's where it has them (clang 14
       made strided 4-float pieces of the arrays, at 1 us a row of 768), else the arrays; the same sums */
#if defined(__GNUC__)
    typedef float lanes __attribute__((vector_size(64)));
    lanes v1 = {0}, v2 = {0}, xv;
    for (int i = 0; i < body; i += 16) {
        memcpy(&xv, x + i, sizeof xv);
        if (squares) {
            lanes d = xv - m;
            v1 += d;
            v2 += d * d;
        } else
            v1 += xv;
    }
    memcpy(a1, &v1, sizeof a1);
    memcpy(a2, &v2, sizeof a2);
#else
    for (int i = 0; i < body; i += 16)
        for (int j = 0; j < 16; j++) {
            if (squares) {
                float d = x[i + j] - m;
                a1[j] += d;
                a2[j] += d * d;
            } else
                a1[j] += x[i + j];
        }
#endif
    for (int i = body; i < n; i++) {   /* the rest, into the first lanes */
        if (squares) {
            float d = x[i] - m;
            a1[i - body] += d;
            a2[i - body] += d * d;
        } else
            a1[i - body] += x[i];
    }
    for (int w = 8; w > 0; w /= 2)
        for (int j = 0; j < w; j++) {
            a1[j] += a1[j + w];
            a2[j] += a2[j + w];
        }
    s[0] = a1[0];
    s[1] = a2[0];
}

/* The same over any n: the sums of blocks of 256 added pairwise as they come (a binary counter of partial
   sums), so that the rounding error grows with log n. */
static inline void nnk__moments(float *s, const float *x, long n, float m, int squares)
{
    float partial[64][2], b[2];
    int depth = 0;
    long blocks = 0;
    for (long i = 0; i < n; i += 256) {
        nnk__block_moments(b, x + i, n - i < 256 ? (int)(n - i) : 256, m, squares);
        for (long k = ++blocks; (k & 1) == 0; k >>= 1) {
            depth--;
            b[0] = partial[depth][0] + b[0];
            b[1] = partial[depth][1] + b[1];
        }
        partial[depth][0] = b[0];
        partial[depth][1] = b[1];
        depth++;
    }
    s[0] = s[1] = 0.0f;
    while (depth-- > 0) {
        s[0] = partial[depth][0] + s[0];
        s[1] = partial[depth][1] + s[1];
    }
}

/* y[M,D] = (x - mean) / √(var + eps) · gamma[D] + beta[D], mean and biased var over each row of x[M,D].
   The deviations x - mean pass through a block on the stack, so that under -ffast-math (x - mean) - fix
   cannot become x - (mean + fix), which would lose fix again. y may be x. */
static inline void nnk_layernorm(float *y, const float *x, const float *restrict gamma,
                                 const float *restrict beta, long M, int D, float eps)
{
    for (long m = 0; m < M; m++) {
        const float *xr = x + m * D;
        float *yr = y + m * D, s[2], dev[256];
        nnk__moments(s, xr, D, 0.0f, 0);
        float mean = s[0] / (float)D;
        nnk__moments(s, xr, D, mean, 1);
        /* mean + fix is the row's mean to about an ulp of the deviations (rather than of the mean) */
        float fix = s[0] / (float)D, var = s[1] / (float)D - fix * fix;
        var = var < 0.0f ? 0.0f : var;   /* (rounding; NaN stays) */
        float rstd = 1.0f / sqrtf(var + eps);
        for (int d0 = 0; d0 < D; d0 += 256) {
            int n = D - d0 < 256 ? D - d0 : 256;
            for (int j = 0; j < n; j++)
                dev[j] = xr[d0 + j] - mean;
            for (int j = 0; j < n; j++)
                yr[d0 + j] = (dev[j] - fix) * rstd * gamma[d0 + j] + beta[d0 + j];
        }
    }
}

/* y[outer,D,inner] = softmax of x[outer,D,inner] over the middle axis: e^(x - max) / Σ e^(x - max) */
static inline void nnk_softmax(float *y, const float *x, long outer, int D, long inner)
{
    for (long o = 0; o < outer; o++)
        for (long i = 0; i < inner; i++) {
            const float *xr = x + o * D * inner + i;
            float *yr = y + o * D * inner + i;
            float max = xr[0];
            for (int d = 1; d < D; d++)
                max = xr[d * inner] > max ? xr[d * inner] : max;
            float sum = 0.0f;
            for (int d = 0; d < D; d++)   /* (apart from the sum, so that this loop vectorises) */
                yr[d * inner] = nnk__exp_neg(xr[d * inner] - max);
            for (int d = 0; d < D; d++)
                sum += yr[d * inner];
            float inv = 1.0f / sum;
            for (int d = 0; d < D; d++)
                yr[d * inner] *= inv;
        }
}

/* Folds an eval-mode batch norm into the layer before it, once at load time:
   s = gamma / sqrt(var + eps);  w[O, per] *= s[o];  b[o] = (b[o] - mean[o]) * s[o] + beta[o].
   (b holds the layer's bias, or zeros when it had none.) In float only, so that a Cortex-M4's
   single-precision FPU does it without soft-float calls: each weight is within 2 ulp (2.4e-7 relative)
   of the exact fold and each bias within 4 ulp of its largest term (tests/embedded/fold.c), far inside
   any tolerance a model's outputs are held to. */
static inline void nnk_fold_batchnorm(float *w, float *b, const float *gamma, const float *beta, const float *mean,
                                      const float *var, int O, long per, float eps)
{
    for (int o = 0; o < O; o++) {
        float s = gamma[o] / sqrtf(var[o] + eps);
        for (long i = 0; i < per; i++)
            w[(long)o * per + i] *= s;
        b[o] = (b[o] - mean[o]) * s + beta[o];
    }
}

NNK__NO_TRAPS_END

#endif

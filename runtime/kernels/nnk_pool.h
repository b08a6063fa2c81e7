/*
 * nnk_pool.h — 2-D max, average and adaptive-average pooling, NCHW.
 *
 * Max and average pooling share the convolution's loop structure (see nnk_conv.h): fold each window tap
 * into a whole output plane, over the valid range only, so padded cells are never read. For max pooling
 * that is the same as treating them as -inf. Average pooling is count_include_pad=True with
 * ceil_mode=False: every window lies inside the input plus its padding (bottom/right padding being what
 * OH/OW imply), so the divisor is always KH*KW, padded cells counting as zeros.
 */
#ifndef NNK_POOL_H
#define NNK_POOL_H

#include "nnk_base.h"

NNK__NO_TRAPS_BEGIN

/* y[N,C,OH,OW] = max over each KH×KW window of x[N,C,H,W], stride SH,SW, padding PT,PL (ignored cells).
   A NaN in a window gives NaN, as in PyTorch. */
static inline void nnk_maxpool2d(float *restrict y, const float *restrict x, int N, int C, int H, int W,
                                 int OH, int OW, int KH, int KW, int SH, int SW, int PT, int PL)
{
    long plane = (long)OH * OW;
    for (long nc = 0; nc < (long)N * C; nc++) {
        const float *xp = x + nc * H * W;
        float *yp = y + nc * plane;
        for (long i = 0; i < plane; i++)
            yp[i] = -INFINITY;
        for (int kh = 0; kh < KH; kh++) {
            int hoff = kh - PT, oh0, oh1;    /* output row oh reads input row oh*SH + hoff */
            nnk__valid_range(&oh0, &oh1, OH, H, SH, hoff);
            for (int kw = 0; kw < KW; kw++) {
                int woff = kw - PL, ow0, ow1;
                nnk__valid_range(&ow0, &ow1, OW, W, SW, woff);
                for (int oh = oh0; oh < oh1; oh++) {
                    float *yr = yp + (long)oh * OW;
                    const float *xr = xp + (long)(oh * SH + hoff) * W;
                    for (int ow = ow0; ow < ow1; ow++) {
                        float v = xr[(long)ow * SW + woff];
                        yr[ow] = (v > yr[ow] || isnan(v)) ? v : yr[ow];
                    }
                }
            }
        }
    }
}

NNK__NO_TRAPS_END

/* y[N,C,OH,OW] = mean over each KH×KW window of x[N,C,H,W] zero-padded by PT,PL (divisor KH*KW) */
static inline void nnk_avgpool2d(float *restrict y, const float *restrict x, int N, int C, int H, int W,
                                 int OH, int OW, int KH, int KW, int SH, int SW, int PT, int PL)
{
    long plane = (long)OH * OW;
    float count = (float)(KH * KW);
    for (long nc = 0; nc < (long)N * C; nc++) {
        const float *xp = x + nc * H * W;
        float *yp = y + nc * plane;
        for (long i = 0; i < plane; i++)
            yp[i] = 0.0f;
        for (int kh = 0; kh < KH; kh++) {
            int hoff = kh - PT, oh0, oh1;    /* output row oh reads input row oh*SH + hoff */
            nnk__valid_range(&oh0, &oh1, OH, H, SH, hoff);
            for (int kw = 0; kw < KW; kw++) {
                int woff = kw - PL, ow0, ow1;
                nnk__valid_range(&ow0, &ow1, OW, W, SW, woff);
                for (int oh = oh0; oh < oh1; oh++) {
                    float *yr = yp + (long)oh * OW;
                    const float *xr = xp + (long)(oh * SH + hoff) * W;
                    for (int ow = ow0; ow < ow1; ow++)
                        yr[ow] += xr[(long)ow * SW + woff];
                }
            }
        }
        for (long i = 0; i < plane; i++)
            yp[i] /= count;
    }
}

/* nn.AvgPool2d with ceil_mode or count_include_pad=False: the mean over each window, divided, as PyTorch
   divides, by the window's cells within the input and its padding PT, PL, PB, PR (include_pad), or
   within the input alone; a last, partial window of ceil_mode counts only what it covers. */
static inline void nnk_avgpool2d_windows(float *restrict y, const float *restrict x, int N, int C, int H, int W, int OH,
                                         int OW, int KH, int KW, int SH, int SW, int PT, int PL, int PB, int PR,
                                         int include_pad)
{
    for (long nc = 0; nc < (long)N * C; nc++) {
        const float *xp = x + nc * H * W;
        float *yp = y + nc * OH * OW;
        for (int oh = 0; oh < OH; oh++) {
            int h0 = oh * SH - PT, h1 = h0 + KH < H + PB ? h0 + KH : H + PB;
            int ih0 = h0 > 0 ? h0 : 0, ih1 = h1 < H ? h1 : H;
            for (int ow = 0; ow < OW; ow++) {
                int w0 = ow * SW - PL, w1 = w0 + KW < W + PR ? w0 + KW : W + PR;
                int iw0 = w0 > 0 ? w0 : 0, iw1 = w1 < W ? w1 : W;
                float sum = 0.0f;
                for (int ih = ih0; ih < ih1; ih++)
                    for (int iw = iw0; iw < iw1; iw++)
                        sum += xp[(long)ih * W + iw];
                int cells = include_pad ? (h1 - h0) * (w1 - w0) : (ih1 - ih0) * (iw1 - iw0);
                yp[(long)oh * OW + ow] = cells > 0 ? sum / (float)cells : 0.0f;
            }
        }
    }
}

/* The sums of a plane of n pixels of WIDTH interleaved channels: sums[c] = Σ_i x[i·WIDTH + c], each in
   NNK_MEAN_LANES partial sums (pixel i goes to sum i % NNK_MEAN_LANES, in order) added pairwise at the end.
   Independent sums keep the adds from waiting on each other. One body, two instances with WIDTH a constant
   (which gcc needs to vectorise it): nnk__plane_sums_1 for a plain plane, nnk__plane_sums_16 for a block of
   the blocked layout, so that the plain and the blocked global pools give the same bits. With GNU C the
   16-channel one keeps each partial sum in a vector of 16 floats (the same adds, lane by lane): clang 14
   kept the 8 × 16 sums of the loop in memory, at 0.074 ms for ResNet-50's pool (2048 channels of 7×7)
   against 0.005 by gcc and by the vectors (a Zen 5 core, warm). */
enum { NNK_MEAN_LANES = 8 };

#define NNK__PLANE_SUMS(WIDTH)                                                                              \
    static inline void nnk__plane_sums_##WIDTH(float *restrict sums, const float *restrict x, long n)        \
    {                                                                                                       \
        float s[NNK_MEAN_LANES][WIDTH] = {{0}};                                                             \
        long i = 0;                                                                                         \
        for (; i + NNK_MEAN_LANES <= n; i += NNK_MEAN_LANES)                                                \
            for (int k = 0; k < NNK_MEAN_LANES; k++)                                                        \
                for (int c = 0; c < WIDTH; c++)                                                             \
                    s[k][c] += x[(i + k) * WIDTH + c];                                                      \
        for (int k = 0; k < NNK_MEAN_LANES && i + k < n; k++)   /* (the bound on k tells the compiler too) */ \
            for (int c = 0; c < WIDTH; c++)                                                                 \
                s[k][c] += x[(i + k) * WIDTH + c];                                                          \
        for (int c = 0; c < WIDTH; c++)                                                                     \
            sums[c] = ((s[0][c] + s[1][c]) + (s[2][c] + s[3][c])) + ((s[4][c] + s[5][c]) + (s[6][c] + s[7][c])); \
    }
NNK__PLANE_SUMS(1)
#if defined(__GNUC__)
typedef float nnk__sum16 __attribute__((vector_size(64)));
static inline void nnk__plane_sums_16(float *restrict sums, const float *restrict x, long n)
{
    nnk__sum16 s[NNK_MEAN_LANES], v;
    memset(s, 0, sizeof s);
    long i = 0;
    for (; i + NNK_MEAN_LANES <= n; i += NNK_MEAN_LANES)
        for (int k = 0; k < NNK_MEAN_LANES; k++) {
            memcpy(&v, x + (i + k) * 16, sizeof v);
            s[k] += v;
        }
    for (int k = 0; k < NNK_MEAN_LANES && i + k < n; k++) {
        memcpy(&v, x + (i + k) * 16, sizeof v);
        s[k] += v;
    }
    v = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    memcpy(sums, &v, sizeof v);
}
#else
NNK__PLANE_SUMS(16)
#endif
#undef NNK__PLANE_SUMS

/* Planes [p0, p1) (of N·C) of y[N,C,OH,OW] = mean of x[N,C,H,W] over rows floor(i*H/OH) .. ceil((i+1)*H/OH) - 1
   and the same for columns (nn.AdaptiveAvgPool2d); windows may overlap, and OH/OW may exceed H/W. To 1×1,
   the mean of the whole plane (nnk__plane_sums_1). */
static inline void nnk_adaptive_avgpool2d_planes(float *restrict y, const float *restrict x, int H, int W, int OH, int OW,
                                                 long p0, long p1)
{
    if (OH == 1 && OW == 1) {
        for (long nc = p0; nc < p1; nc++) {
            nnk__plane_sums_1(y + nc, x + nc * H * W, (long)H * W);
            y[nc] /= (float)((long)H * W);
        }
        return;
    }
    for (long nc = p0; nc < p1; nc++) {
        const float *xp = x + nc * H * W;
        float *yp = y + nc * OH * OW;
        for (int oh = 0; oh < OH; oh++) {
            int h0 = (int)((long)oh * H / OH), h1 = (int)(((long)(oh + 1) * H + OH - 1) / OH);
            for (int ow = 0; ow < OW; ow++) {
                int w0 = (int)((long)ow * W / OW), w1 = (int)(((long)(ow + 1) * W + OW - 1) / OW);
                float sum = 0.0f;
                for (int h = h0; h < h1; h++)
                    for (int w = w0; w < w1; w++)
                        sum += xp[(long)h * W + w];
                yp[(long)oh * OW + ow] = sum / (float)((h1 - h0) * (w1 - w0));
            }
        }
    }
}

/* The shape of one pooling, as generated code writes it (a static const struct, designated initialisers). */
typedef struct {
    int N, C, H, W, OH, OW;
    int kh, kw, sh, sw;
    int pt, pl, pb, pr;          /* zero padding: top, left, bottom, right */
    int ceil_mode, count_include_pad;
} nnk_pool_params;

/* nn.MaxPool2d (a window past the input, from ceil_mode or padding, ignores what it does not cover). */
static inline void nnk_maxpool(float *restrict y, const float *restrict x, const nnk_pool_params *p)
{
    nnk_maxpool2d(y, x, p->N, p->C, p->H, p->W, p->OH, p->OW, p->kh, p->kw, p->sh, p->sw, p->pt, p->pl);
}

/* nn.AvgPool2d: the divisor is the window's size unless ceil_mode or count_include_pad=False make it vary. */
static inline void nnk_avgpool(float *restrict y, const float *restrict x, const nnk_pool_params *p)
{
    if (p->ceil_mode || !p->count_include_pad)
        nnk_avgpool2d_windows(y, x, p->N, p->C, p->H, p->W, p->OH, p->OW, p->kh, p->kw, p->sh, p->sw, p->pt, p->pl, p->pb, p->pr,
                              p->count_include_pad);
    else
        nnk_avgpool2d(y, x, p->N, p->C, p->H, p->W, p->OH, p->OW, p->kh, p->kw, p->sh, p->sw, p->pt, p->pl);
}

#endif

/*
 * nnk_winograd.h — 3×3 stride-1 convolution by Winograd's F(4×4, 3×3) and F(2×2, 3×3), on channel-blocked
 * activations. F(4×4, 3×3) is described here; F(2×2, 3×3) is the same with 4×4 input tiles, 16 positions and
 * its own transforms (the m = 2 of nnk_conv2d_winograd_batch).
 *
 * A 4×4 tile of output is computed from a 6×6 tile of input d as Y = Aᵀ [ Σ_c (G g Gᵀ) ⊙ (Bᵀ d B) ] A:
 * 36 products per input channel instead of 144, so the multiply-adds of the layer fall by 4× (less the
 * transforms, which cost a few operations per tile and channel, against O of the products). The sum over
 * input channels, for each of the 36 positions, is a matrix product — the same direct tile of
 * nnk_conv_nchwc.h as a 1×1 convolution, with the transformed tiles as its pixels. Everything is done
 * 16 channels a vector, in the blocked layout: the transforms are additions of whole vectors.
 *
 * The filter transform U = G g Gᵀ is done once, at load time, in double (nnk_pack_winograd): U holds
 * 36 values per weight of 9, so a packed weight takes 4× the floats of the one in the file.
 *
 * The work is cut into units of up to NNK_WINO_CHUNK tiles (numbered across the batch, so that a batch of
 * small planes fills whole chunks) × NNK_WINO_GROUP blocks of output channels, a chunk's groups one after
 * the other; a unit transforms its tiles' input (all channels) into the thread's scratch, unless the unit
 * before it in the thread did so for the same chunk, multiplies, and transforms back, adding the bias and
 * the epilogue as it stores. Every output element is computed by the same operations whichever thread
 * does it. Rounding: the
 * transforms add and scale values of up to 8× their size before the products, so the result is not the
 * direct convolution's to the bit; its error against float64 is about 2e-6 RMS relative (measured on
 * random layers, tests/kernels), well inside the 1e-4 of the tests.
 */
#ifndef NNK_WINOGRAD_H
#define NNK_WINOGRAD_H

#include "nnk_conv_nchwc.h"

enum {
    NNK_WINO_CHUNK = 28,   /* tiles a unit at most (nnk__wino_chunk) */
    NNK_WINO_GROUP = 4,    /* blocks of output channels a unit: its input transform serves 64 channels */
};

/* Floats of scratch a thread needs for a layer of C input channels: the transformed input of a chunk
   (36 × C × chunk) and the products of one group (36 × 64 × chunk). */
#define NNK_WINO_SCRATCH(C) (36L * NNK_WINO_CHUNK * ((long)(C) + NNK_WINO_GROUP * NNK_CB))

/* Tiles of one image: m×m output pixels each (m = 4 for F(4×4, 3×3), 2 for F(2×2, 3×3)), the last ones
   partly past the plane. */
static inline long nnk__wino_tiles(const nnk_conv_params *p, int m) { return (long)((p->OH + m - 1) / m) * ((p->OW + m - 1) / m); }

/* Tiles a chunk, of `all` (C input channels): all of them when they are NNK_WINO_CHUNK or fewer (each
   unit then reads its part of the transformed weight once, as it comes from memory); else
   runs of 14, one run of the AVX-512 tile, or of 28 where a unit's part of the weight (36 × C × 64 floats)
   is too large to stay in L2 from one chunk to the next (C of 128 or more); or all chunks of one length
   when the last would have fewer than 7 (a run of 7 is a full tile of 7 × 4 blocks). */
static inline long nnk__wino_chunk(long all, int C)
{
    long run = C >= 128 ? 28 : 14, chunks = (all + run - 1) / run;
    return all <= NNK_WINO_CHUNK ? all : all % run == 0 || all % run >= 7 ? run : (all + chunks - 1) / chunks;
}

/* Units of a batch of N images by F(m×m, 3×3): chunks of tiles (nnk__wino_chunk), numbered across the batch
   (a chunk may hold the last tiles of one image and the first of the next), times groups of output blocks. */
static inline long nnk__wino_groups(const nnk_conv_params *p) { return (p->O / NNK_CB + NNK_WINO_GROUP - 1) / NNK_WINO_GROUP; }
static inline long nnk_winograd_units(const nnk_conv_params *p, long N, int m)
{
    long all = N * nnk__wino_tiles(p, m), clen = nnk__wino_chunk(all, p->C);
    return (all + clen - 1) / clen * nnk__wino_groups(p);   /* chunks × groups */
}

/* w[O][C][3][3] → u[n²][O/16][C/16][16 in][16 out] for F(m×m, 3×3), n = m + 2: u = G g Gᵀ for each (out,
   in), G of n rows. dst holds n²/9 of w's floats (4× for F(4×4), 16/9 for F(2×2)). */
static inline void nnk_pack_winograd(float *restrict u, const float *restrict w, int O, int C, int m)
{
    static const double G4[6][3] = {
        {1.0 / 4, 0, 0}, {-1.0 / 6, -1.0 / 6, -1.0 / 6}, {-1.0 / 6, 1.0 / 6, -1.0 / 6},
        {1.0 / 24, 1.0 / 12, 1.0 / 6}, {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1},
    };
    static const double G2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
    const double(*G)[3] = m == 4 ? G4 : G2;
    const int n = m + 2;
    long OB = O / NNK_CB, CBn = C / NNK_CB;
    for (int o = 0; o < O; o++)
        for (int c = 0; c < C; c++) {
            const float *g = w + ((long)o * C + c) * 9;
            double t[6][3];
            for (int i = 0; i < n; i++)
                for (int j = 0; j < 3; j++)
                    t[i][j] = G[i][0] * g[j] + G[i][1] * g[3 + j] + G[i][2] * g[6 + j];
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++) {
                    double v = t[i][0] * G[j][0] + t[i][1] * G[j][1] + t[i][2] * G[j][2];
                    u[((((long)(i * n + j) * OB + o / NNK_CB) * CBn + c / NNK_CB) * NNK_CB + c % NNK_CB) * NNK_CB + o % NNK_CB] = (float)v;
                }
        }
}

/* nnk_pack_winograd in place: w has room for its packed floats; tmp holds O*C*9. */
static inline void nnk_pack_winograd_in_place(float *restrict w, int O, int C, int m, float *restrict tmp)
{
    memcpy(tmp, w, (size_t)O * (size_t)C * 9 * sizeof *tmp);
    nnk_pack_winograd(w, tmp, O, C, m);
}

/* How a convolution's weight is rearranged at load: for the direct tiles on blocked or on plain input
   (nnk_pack_conv_nchwc), or for Winograd's F(4×4, 3×3) or F(2×2, 3×3) (nnk_pack_winograd). C is a group's
   input channels (the weight's second dimension); Winograd takes groups = 1. */
enum { NNK_PACK_BLOCKED = 1, NNK_PACK_PLAIN = 2, NNK_PACK_WINOGRAD = 3, NNK_PACK_WINOGRAD2 = 4 };

/* The m of F(m×m, 3×3) a packing is for (0: the direct tiles'), and the packing for an m. */
#define NNK_PACK_WINOGRAD_M(how) ((how) == NNK_PACK_WINOGRAD ? 4 : (how) == NNK_PACK_WINOGRAD2 ? 2 : 0)
#define NNK_PACK_FOR_WINOGRAD(m) ((m) == 4 ? NNK_PACK_WINOGRAD : NNK_PACK_WINOGRAD2)

/* Floats the weight's slot must hold for nnk_pack_conv: (m + 2)² for each 3×3 filter for Winograd. */
#define NNK_PACK_CONV_FLOATS(O, C, KH, KW, how)                                                                    \
    (NNK_PACK_WINOGRAD_M(how) ? (NNK_PACK_WINOGRAD_M(how) + 2L) * (NNK_PACK_WINOGRAD_M(how) + 2) * (O) * (C)       \
                              : NNK_PACK_CONV_NCHWC_FLOATS(O, C, KH, KW, (how) == NNK_PACK_PLAIN))

static inline void nnk_pack_conv(float *restrict w, int O, int C, int KH, int KW, int groups, int how, float *restrict tmp)
{
    if (NNK_PACK_WINOGRAD_M(how))
        nnk_pack_winograd_in_place(w, O, C, NNK_PACK_WINOGRAD_M(how), tmp);
    else
        nnk_pack_conv_nchwc_in_place(w, O, C, KH, KW, groups, how == NNK_PACK_PLAIN, tmp);
}

/* The taps of a kernel that ever read the input, where the others read only its zero padding (a 3×3 layer on
   a 1×1 plane: the centre alone): nnk_pack_conv of the window of kh × kw taps from (kh0, kw0) of each KH × KW
   filter, for the direct tiles (how is NNK_PACK_BLOCKED or NNK_PACK_PLAIN), which then run as a kh × kw
   convolution from the window's first input pixel. The taps left out multiply zeros, so the sums are those
   of the whole kernel, but where one of their weights is not finite: 0 × ±inf and 0 × NaN are NaN, and so
   is every output of that channel, which bias[o] = NaN makes them (bias: the layer's, already folded).
   w holds O·C·KH·KW floats as loaded and has room for the window's packing (NNK_PACK_CONV_FLOATS); tmp holds
   O·C·KH·KW. */
static inline void nnk_pack_conv_taps(float *restrict w, int O, int C, int KH, int KW, int groups, int how, int kh0, int kw0,
                                      int kh, int kw, float *restrict bias, float *restrict tmp)
{
    memcpy(tmp, w, (size_t)O * (size_t)C * (size_t)KH * (size_t)KW * sizeof *tmp);
    float *win = tmp;   /* the window's filters, compacted in place: each lands at or before where it was read */
    for (int o = 0; o < O; o++) {
        const float *f = tmp + (long)o * C * KH * KW;
        for (long t = 0; t < (long)C * KH * KW; t++) {
            int i = (int)(t / KW % KH), j = (int)(t % KW);
            if (i >= kh0 && i < kh0 + kh && j >= kw0 && j < kw0 + kw)
                *win++ = f[t];
            else if (!isfinite(f[t]))
                bias[o] = NAN;
        }
    }
    nnk_pack_conv_nchwc(w, tmp, O, C, kh, kw, groups, how == NNK_PACK_PLAIN);
}

/* The transforms' vectors: WL floats of a block's 16 channels at a time, in the target's registers
   (zmm, ymm, a 4-float vector where the compiler has vector types, else one float). Each operation is a
   separate multiply, add or subtract, so that the AVX-512 and AVX2 paths compute the same bits (the
   portable and plain ones too, unless the compiler contracts their C arithmetic into fused multiply-adds,
   as gcc does by default outside ISO C mode). */
#if NNK_CONV_NCHWC_AVX512F
typedef __m512 nnk__wv;
enum { NNK__WL = 16 };
#define NNK__W_LD(p)     _mm512_loadu_ps(p)
#define NNK__W_ST(p, v)  _mm512_storeu_ps(p, v)
#define NNK__W_ZERO()    _mm512_setzero_ps()
#define NNK__W_ADD(a, b) _mm512_add_ps(a, b)
#define NNK__W_SUB(a, b) _mm512_sub_ps(a, b)
#define NNK__W_MUL(s, a) _mm512_mul_ps(_mm512_set1_ps(s), a)
#elif NNK_CONV_NCHWC_AVX2_FMA
typedef __m256 nnk__wv;
enum { NNK__WL = 8 };
#define NNK__W_LD(p)     _mm256_loadu_ps(p)
#define NNK__W_ST(p, v)  _mm256_storeu_ps(p, v)
#define NNK__W_ZERO()    _mm256_setzero_ps()
#define NNK__W_ADD(a, b) _mm256_add_ps(a, b)
#define NNK__W_SUB(a, b) _mm256_sub_ps(a, b)
#define NNK__W_MUL(s, a) _mm256_mul_ps(_mm256_set1_ps(s), a)
#elif NNK_CONV_NCHWC_VECTOR
typedef float nnk__wv __attribute__((vector_size(16)));   /* (SSE's and NEON's width: the same ABI everywhere) */
enum { NNK__WL = 4 };
static inline nnk__wv nnk__w_ld(const float *p) { nnk__wv v; memcpy(&v, p, sizeof v); return v; }
#define NNK__W_LD(p)     nnk__w_ld(p)
#define NNK__W_ST(p, v)  memcpy(p, &(v), sizeof(nnk__wv))
#define NNK__W_ZERO()    ((nnk__wv){0})
#define NNK__W_ADD(a, b) ((a) + (b))
#define NNK__W_SUB(a, b) ((a) - (b))
#define NNK__W_MUL(s, a) ((s) * (a))
#else
typedef float nnk__wv;
enum { NNK__WL = 1 };
#define NNK__W_LD(p)     (*(p))
#define NNK__W_ST(p, v)  (*(p) = (v))
#define NNK__W_ZERO()    0.0f
#define NNK__W_ADD(a, b) ((a) + (b))
#define NNK__W_SUB(a, b) ((a) - (b))
#define NNK__W_MUL(s, a) ((s) * (a))
#endif

/* Bᵀ of F(m×m, 3×3) applied to the n = m + 2 vectors d, into r (each a statement, so that no compiler
   fuses them). n = 6: 4d0 - 5d2 + d4, -4(d1 + d2) + (d3 + d4), 4(d1 - d2) + (d4 - d3), 2(d3 - d1) + (d4 - d2),
   2(d1 - d3) + (d4 - d2), 4d1 - 5d3 + d5; n = 4: d0 - d2, d1 + d2, d2 - d1, d1 - d3. */
static inline __attribute__((always_inline)) void nnk__wino_bt(int n, nnk__wv *restrict r, const nnk__wv *restrict d)
{
    if (n == 4) {
        r[0] = NNK__W_SUB(d[0], d[2]);
        r[1] = NNK__W_ADD(d[1], d[2]);
        r[2] = NNK__W_SUB(d[2], d[1]);
        r[3] = NNK__W_SUB(d[1], d[3]);
        return;
    }
    nnk__wv s12 = NNK__W_ADD(d[1], d[2]), s34 = NNK__W_ADD(d[3], d[4]), m12 = NNK__W_SUB(d[1], d[2]);
    nnk__wv m43 = NNK__W_SUB(d[4], d[3]), m31 = NNK__W_SUB(d[3], d[1]), m42 = NNK__W_SUB(d[4], d[2]);
    nnk__wv a0 = NNK__W_MUL(4.0f, d[0]), b0 = NNK__W_MUL(5.0f, d[2]), a5 = NNK__W_MUL(4.0f, d[1]), b5 = NNK__W_MUL(5.0f, d[3]);
    nnk__wv c1 = NNK__W_MUL(4.0f, s12), c2 = NNK__W_MUL(4.0f, m12), c3 = NNK__W_MUL(2.0f, m31);
    a0 = NNK__W_SUB(a0, b0);
    a5 = NNK__W_SUB(a5, b5);
    r[0] = NNK__W_ADD(a0, d[4]);
    r[1] = NNK__W_SUB(s34, c1);
    r[2] = NNK__W_ADD(c2, m43);
    r[3] = NNK__W_ADD(c3, m42);
    r[4] = NNK__W_SUB(m42, c3);
    r[5] = NNK__W_ADD(a5, d[5]);
}

/* Aᵀ applied to the n vectors m, into r[0..n-3]. n = 6: m0 + (m1 + m2) + (m3 + m4), (m1 - m2) + 2(m3 - m4),
   (m1 + m2) + 4(m3 + m4), (m1 - m2) + 8(m3 - m4) + m5; n = 4: (m0 + m1) + m2, (m1 - m2) - m3. */
static inline __attribute__((always_inline)) void nnk__wino_at(int n, nnk__wv *restrict r, const nnk__wv *restrict m)
{
    if (n == 4) {
        nnk__wv s01 = NNK__W_ADD(m[0], m[1]), s12 = NNK__W_SUB(m[1], m[2]);
        r[0] = NNK__W_ADD(s01, m[2]);
        r[1] = NNK__W_SUB(s12, m[3]);
        return;
    }
    nnk__wv p12 = NNK__W_ADD(m[1], m[2]), q12 = NNK__W_SUB(m[1], m[2]), p34 = NNK__W_ADD(m[3], m[4]), q34 = NNK__W_SUB(m[3], m[4]);
    nnk__wv p2 = NNK__W_MUL(2.0f, q34), p4 = NNK__W_MUL(4.0f, p34), p8 = NNK__W_MUL(8.0f, q34);
    nnk__wv s0 = NNK__W_ADD(m[0], p12);
    nnk__wv s3 = NNK__W_ADD(q12, p8);
    r[0] = NNK__W_ADD(s0, p34);
    r[1] = NNK__W_ADD(q12, p2);
    r[2] = NNK__W_ADD(p12, p4);
    r[3] = NNK__W_ADD(s3, m[5]);
}

/* V = Bᵀ d B for the 16 channels of one block, d the n×n input pixels from x (rows xr floats apart, pixels
   NNK_CB), those past `rows` or `cols` zeros → v at v + xi * vs, xi = n i + j. */
static inline __attribute__((always_inline)) void nnk__wino_in(int n, float *restrict v, long vs, const float *restrict x, long xr, int rows, int cols)
{
    for (int l = 0; l < NNK_CB; l += NNK__WL) {
        nnk__wv t[6][6], d[6], r[6];
        for (int j = 0; j < n; j++) {
            for (int i = 0; i < n; i++)
                d[i] = i < rows && j < cols ? NNK__W_LD(x + i * xr + j * NNK_CB + l) : NNK__W_ZERO();
            nnk__wino_bt(n, r, d);
            for (int i = 0; i < n; i++)
                t[i][j] = r[i];
        }
        for (int i = 0; i < n; i++) {
            nnk__wino_bt(n, r, t[i]);
            for (int j = 0; j < n; j++)
                NNK__W_ST(v + (long)(n * i + j) * vs + l, r[j]);
        }
    }
}

/* Y = Aᵀ m A + bias for one block: m at m + xi * ms (16 floats each, xi = n i + j) → y[n-2][n-2][16]. */
static inline __attribute__((always_inline)) void nnk__wino_out(int n, float y[4][4][NNK_CB], const float *restrict m, long ms, const float bias[NNK_CB])
{
    for (int l = 0; l < NNK_CB; l += NNK__WL) {
        nnk__wv t[4][6], c[6], r[4], b = NNK__W_LD(bias + l);
        for (int j = 0; j < n; j++) {
            for (int i = 0; i < n; i++)
                c[i] = NNK__W_LD(m + (i * n + j) * ms + l);
            nnk__wino_at(n, r, c);
            for (int i = 0; i < n - 2; i++)
                t[i][j] = r[i];
        }
        for (int i = 0; i < n - 2; i++) {
            nnk__wino_at(n, r, t[i]);
            for (int j = 0; j < n - 2; j++) {
                nnk__wv o = NNK__W_ADD(r[j], b);
                NNK__W_ST(y[i][j] + l, o);
            }
        }
    }
}

/* One row of cols output pixels (16 channels each) from o (cols × 16 floats), with the epilogue: relu, the
   residual, relu, as each is asked, where the tiles too would apply it in registers (nnk__fusable);
   any other activation by nnk_epilogue after. */
static inline void nnk__wino_store(float *restrict y, const float *restrict o, const float *restrict res, int cols, int act1,
                                   int act2)
{
    if (!nnk__fusable(1, res, act1, act2)) {
        memcpy(y, o, (size_t)cols * NNK_CB * sizeof *y);
        nnk_epilogue(y, res, (long)cols * NNK_CB, act1, act2);
        return;
    }
    for (int c = 0; c < cols; c++)
        for (int l = 0; l < NNK_CB; l++) {
            float v = o[c * NNK_CB + l];
            if (act1 == NNK_ACT_RELU)
                v = v < 0.0f ? 0.0f : v;
            if (res) {
                v += res[c * NNK_CB + l];
                if (act2 == NNK_ACT_RELU)
                    v = v < 0.0f ? 0.0f : v;
            }
            y[c * NNK_CB + l] = v;
        }
}

/* Units [u0, u1) of a batch of N images (nnk_winograd_units) of y = act2(act1(conv3x3(x, w) + b) + res) by
   F(m×m, 3×3), m = 4 or 2: x blocked and padded ([C/16][H][W][16], p->H and p->W its padded plane, padding
   0, stride 1), y and res blocked, u packed by nnk_pack_winograd for the same m; scratch holds
   NNK_WINO_SCRATCH(p->C) floats. F(2×2, 3×3) does 16 products a tile of 2×2 pixels, 2.25× fewer
   multiply-adds than direct against F(4×4, 3×3)'s 4×, from a transformed weight of 16/9 of the floats
   instead of 4× and with about the direct convolution's rounding: for planes where the larger tiles would
   be few (a 14×14 plane: 49 tiles of 2×2, 16 of 4×4). */
static inline __attribute__((always_inline)) void nnk__winograd_batch(int m, float *restrict y, const float *restrict x,
                                                                      const float *restrict u, const float *restrict b,
                                                                      const float *restrict res, int act1, int act2,
                                                                      const nnk_conv_params *p, long N, long u0, long u1,
                                                                      float *restrict scratch)
{
    const int OB = p->O / NNK_CB, CBn = p->C / NNK_CB, TW = (p->OW + m - 1) / m, n = m + 2, P = n * n;
    const long tiles = nnk__wino_tiles(p, m), all = N * tiles, clen = nnk__wino_chunk(all, p->C);
    /* V[cb][P][chunk][16] and M[group block][P][chunk][16] for the P = (m + 2)² positions: a transform writes
       (or reads) P runs of one block's region, which stays in L1 while the chunk's tiles fill it */
    const long vs = (long)NNK_WINO_CHUNK * NNK_CB, ms = vs;   /* floats between positions */
    const long vb = P * vs;                                   /* ... and between blocks */
    const long in_img = (long)p->C * p->H * p->W, out_img = (long)p->O * p->OH * p->OW, plane = (long)p->OH * p->OW;
    float *V = scratch, *M = scratch + CBn * vb;
    /* the products: a 1×1 "convolution" of the chunk's tiles, for one position */
    nnk__conv_tile t = {
        .xp = NNK_CB, .xc = vb, .xh = 0, .xw = 0, .wb = (long)CBn * NNK_CB * NNK_CB, .yb = vb, .yp = NNK_CB, .cbs = CBn, .kh = 1, .kw = 1, .ic = NNK_CB,
    };
    const nnk__tiles tiles16 = nnk__tiles_for(t.xp);
    const long groups = nnk__wino_groups(p);
    long have = -1;   /* the chunk whose transformed input V holds */
    for (long unit = u0; unit < u1; unit++) {
        /* the units chunk by chunk, each chunk's groups of output blocks in a row, so that the chunk's input is
           transformed once for all the groups a thread computes. On a Zen 5 core, warm: F(2x2) on 14x14, 256
           channels (4 groups) 0.69 → 0.665 ms; F(4x4) on 28x28, 128 channels 0.39-0.45 → 0.35 ms; in
           ResNet-50 its 14x14 layers 0.65-0.68 → 0.61-0.66 ms (1 thread), no slower on 2 */
        long chunk = unit / groups;
        int ob0 = (int)(unit % groups) * NNK_WINO_GROUP, nb = OB - ob0 < NNK_WINO_GROUP ? OB - ob0 : NNK_WINO_GROUP;
        long t0 = chunk * clen, nt = all - t0 < clen ? all - t0 : clen;
        struct { long n; int h0, w0; } at[NNK_WINO_CHUNK];   /* the chunk's tiles: image, first row and column */
        for (long k = 0; k < nt; k++) {
            long tile = (t0 + k) % tiles;
            at[k].n = (t0 + k) / tiles, at[k].h0 = (int)(tile / TW) * m, at[k].w0 = (int)(tile % TW) * m;
        }
        /* Bᵀ d B of every tile of the chunk, every input block (zeros past the padded plane) */
        if (chunk != have) {
            for (int cb = 0; cb < CBn; cb++)
                for (long k = 0; k < nt; k++) {
                    const int h0 = at[k].h0, w0 = at[k].w0;
                    const float *xi = x + at[k].n * in_img + (((long)cb * p->H + h0) * p->W + w0) * NNK_CB;
                    nnk__wino_in(n, V + cb * vb + k * NNK_CB, vs, xi, (long)p->W * NNK_CB, p->H - h0, p->W - w0);
                }
            have = chunk;
        }
        /* the P products, for the unit's blocks of output channels */
        for (int xi = 0; xi < P; xi++) {
            t.pf = xi < P - 1 ? OB * t.wb : 0;   /* the next position's weights, as this one's are read */
            nnk__conv_blocks(&tiles16, M + xi * ms, V + xi * vs, u + (long)xi * OB * t.wb + ob0 * t.wb, NULL, NULL, &t, NULL, ob0, nb, OB,
                             (int)nt);
        }
        /* Aᵀ m A, the bias and the epilogue, into the plane */
        for (int j = 0; j < nb; j++) {
            int ob = ob0 + j;
            float bias[NNK_CB];
            for (int l = 0; l < NNK_CB; l++)
                bias[l] = b ? b[ob * NNK_CB + l] : 0.0f;
            for (long k = 0; k < nt; k++) {
                const int h0 = at[k].h0, w0 = at[k].w0;
                int rows = p->OH - h0 < m ? p->OH - h0 : m, cols = p->OW - w0 < m ? p->OW - w0 : m;
                float out[4][4][NNK_CB];
                nnk__wino_out(n, out, M + j * vb + k * NNK_CB, ms, bias);
                for (int i = 0; i < rows; i++) {
                    long o = at[k].n * out_img + (long)ob * plane * NNK_CB + ((long)(h0 + i) * p->OW + w0) * NNK_CB;
                    nnk__wino_store(y + o, out[i][0], res ? res + o : NULL, cols, act1, act2);
                }
            }
        }
    }
}
static inline void nnk_conv2d_winograd_batch(int m, float *restrict y, const float *restrict x, const float *restrict u,
                                             const float *restrict b, const float *restrict res, int act1, int act2,
                                             const nnk_conv_params *p, long N, long u0, long u1, float *restrict scratch)
{
    if (m == 4)   /* (each m its own copy, whose transforms' sizes are constants: F(4×4) 12 % faster than one for both) */
        nnk__winograd_batch(4, y, x, u, b, res, act1, act2, p, N, u0, u1, scratch);
    else
        nnk__winograd_batch(2, y, x, u, b, res, act1, act2, p, N, u0, u1, scratch);
}

#endif

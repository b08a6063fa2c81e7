/* gemm_edges.c — nnk_gemm on every block edge, against a plain double reference, with a hash of the bits.
 *
 * The blocked product (runtime/kernels/nnk_gemm.h) is called for shapes on and around every edge of its
 * blocking (MR = 8 rows, the 12- and 4-column vectors of the NEON sub-tiles, NR = 48, KC = 256, MC = 64,
 * NC = 480), with each source of A and B (row-major, packed weights, columns of a weight, im2col of a
 * convolution), each bias (none, per row, per column), and the epilogues (relu, residual + relu, sigmoid).
 * Then nnk_dwconv2d_part (depthwise and grouped conv2d on vectorised rows) on rows of one to several vectors
 * and strides, padding and dilation, whose NEON and x86 FMA paths also do the same fused multiply-adds.
 * Each case is checked against the same product in double (max|Δ| / max(1, max|ref|) <= 1e-5), and again
 * split into parts as threads would compute it (rows at multiples of MR, columns anywhere), which must give
 * the same bits. Scratch is exactly NNK_GEMM_SCRATCH_FOR the case's M, N and K, followed by a guard that
 * no call may write. Prints `ok - NAME` or `FAIL - NAME: detail` per case, then `N passed, N failed`; with a
 * file argument, also writes one line per case, its name and an FNV-1a hash of its output's bits, for
 * comparing builds (the NEON tile and the x86 FMA tiles do the same fused multiply-adds in the same order,
 * so their hashes are equal).
 *
 *     cc -std=c11 -O2 -Iruntime tests/cross/gemm_edges.c -lm && ./a.out [HASHES]
 */
#include "kernels/nnk.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;
static FILE *hashes;

static uint32_t rng = 12345;
static float frand(void) {   /* uniform in [-1, 1), 2^-23 steps */
    rng = rng * 1664525u + 1013904223u;
    return (float)(rng >> 9) * 0x1p-22f - 1.0f;
}
static float *randv(long n) {
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    for (long i = 0; i < n; i++)
        p[i] = frand();
    return p;
}

static uint32_t fnv(const float *p, long n) {
    uint32_t h = 2166136261u;
    const unsigned char *b = (const unsigned char *)p;
    for (long i = 0; i < n * 4; i++)
        h = (h ^ b[i]) * 16777619u;
    return h;
}

static double act(double v, int a) {
    switch (a) {
    case NNK_ACT_RELU: return v < 0 ? 0 : v;
    case NNK_ACT_RELU6: return v < 0 ? 0 : v > 6 ? 6 : v;
    case NNK_ACT_SIGMOID: return 1 / (1 + exp(-v));
    default: return v;
    }
}

/* Scratch of `floats` followed by GUARD floats of a pattern that nnk_gemm must leave alone. */
enum { GUARD = 64 };
static float *scratch_of(long floats) {
    float *p = malloc((size_t)(floats + GUARD) * sizeof *p);
    for (long i = 0; i < GUARD; i++)
        p[floats + i] = -1234.5f;
    return p;
}
static int guard_intact(const float *p, long floats) {
    for (long i = 0; i < GUARD; i++)
        if (p[floats + i] != -1234.5f)
            return 0;
    return 1;
}

/* Compares got[M][N] with the double reference and reports the case. */
static void report(const char *name, const float *got, const double *ref, long n, const float *split, int nsplit, int guard) {
    double worst = 0, scale = 1;
    for (long i = 0; i < n; i++)
        scale = fmax(scale, fabs(ref[i]));
    for (long i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (!(d <= worst))
            worst = d;
    }
    int same = 1;
    for (int s = 0; s < nsplit; s++)
        same = same && memcmp(got, split + (long)s * n, (size_t)n * sizeof *got) == 0;
    if (worst / scale <= 1e-5 && same && guard) {
        printf("ok - %s\n", name);
        passed++;
    } else {
        printf("FAIL - %s: %s%s max|d|/max(1,|ref|) = %.3g\n", name, same ? "" : "split results differ;",
               guard ? "" : " wrote past its scratch;", worst / scale);
        failed++;
    }
    if (hashes)
        fprintf(hashes, "%s %08x\n", name, (unsigned)fnv(got, n));
}

enum { A_ROWS, A_PACKED };

/* One product C[M,N] = A[M,K] · B[K,N] (+ bias, epilogue) with B of `bkind` (ROWS, COLS or PACKED). */
static void gemm_case(int M, int N, int K, int akind, int bkind, int bias, int epi) {
    static const int act1s[] = {NNK_ACT_NONE, NNK_ACT_RELU, NNK_ACT_RELU, NNK_ACT_SIGMOID, NNK_ACT_RELU6};
    static const int act2s[] = {NNK_ACT_NONE, NNK_ACT_NONE, NNK_ACT_RELU, NNK_ACT_NONE, NNK_ACT_RELU6};
    int act1 = act1s[epi], act2 = act2s[epi], has_res = epi == 2 || epi == 4;
    float *a = randv((long)M * K), *bsrc = randv((long)K * N), *rb = randv(M), *cb = randv(N);
    long sfloats = NNK_GEMM_SCRATCH_FOR(M, N, K, akind == A_PACKED, bkind == NNK_B_PACKED);
    float *res = randv((long)M * N), *scratch = scratch_of(sfloats);
    float *wpack = NULL, *tmp = malloc((size_t)((long)M * K + (long)K * N + 1) * sizeof(float));
    const float *rbias = bias == 1 ? rb : NULL, *cbias = bias == 2 ? cb : NULL;
    /* B[k][n]: ROWS reads bsrc[k*N + n]; COLS and PACKED read a weight w[N][K] with w[n][k] = B[k][n] */
    float *w = malloc((size_t)((long)K * N + 1) * sizeof(float));
    for (int k = 0; k < K; k++)
        for (int n = 0; n < N; n++)
            w[(long)n * K + k] = bsrc[(long)k * N + n];
    double *ref = malloc((size_t)M * N * sizeof *ref);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = rbias ? rbias[m] : cbias ? cbias[n] : 0;
            for (int k = 0; k < K; k++)
                s += (double)a[(long)m * K + k] * bsrc[(long)k * N + n];
            s = act(s, act1);
            if (has_res)
                s = act(s + res[(long)m * N + n], act2);
            ref[(long)m * N + n] = s;
        }

    nnk_asrc as = {.p = a, .ld = K};
    if (akind == A_PACKED) {
        wpack = malloc((size_t)M * K * sizeof(float));
        memcpy(wpack, a, (size_t)M * K * sizeof(float));
        nnk_pack_weight(wpack, M, K, NNK_MR, tmp);
        as = (nnk_asrc){.p = wpack, .ld = M, .packed = 1};
    }
    nnk_bsrc bs = {.kind = NNK_B_ROWS, .p = bsrc, .ld = N};
    if (bkind == NNK_B_COLS)
        bs = (nnk_bsrc){.kind = NNK_B_COLS, .p = w, .ld = K};
    if (bkind == NNK_B_PACKED) {
        nnk_pack_weight(w, N, K, NNK_NR, tmp);
        bs = (nnk_bsrc){.kind = NNK_B_PACKED, .p = w, .ld = N};
    }
    long n_out = (long)M * N;
    float *c = malloc((size_t)(n_out + 1) * sizeof *c), *split = malloc((size_t)(2 * n_out + 1) * sizeof *c);
    nnk_gemm(c, N, M, N, K, &as, &bs, rbias, cbias, has_res ? res : NULL, act1, act2, scratch);

    /* split 1: rows in parts at multiples of MR (as conv2d's output channels are split) */
    int row_parts[] = {0, M / 16 * 8, M};
    for (int p = 0; p < 2; p++) {
        int m0 = row_parts[p], m1 = row_parts[p + 1];
        nnk_asrc ap = as;
        if (akind == A_PACKED)
            ap.first = m0;
        else
            ap.p = a + (long)m0 * K;
        nnk_gemm(split + (long)m0 * N, N, m1 - m0, N, K, &ap, &bs, rbias ? rbias + m0 : NULL, cbias,
                 has_res ? res + (long)m0 * N : NULL, act1, act2, scratch);
    }
    /* split 2: columns in parts, anywhere for ROWS and COLS, at multiples of NR for PACKED */
    int cut = bkind == NNK_B_PACKED ? N / 96 * 48 : N / 3 + 1;
    if (cut > N)
        cut = N;
    int col_parts[] = {0, cut, N};
    for (int p = 0; p < 2; p++) {
        int n0 = col_parts[p], n1 = col_parts[p + 1];
        nnk_bsrc bp = bs;
        bp.first = n0;
        nnk_gemm(split + n_out + n0, N, M, n1 - n0, K, &as, &bp, rbias, cbias ? cbias + n0 : NULL,
                 has_res ? res + n0 : NULL, act1, act2, scratch);
    }
    char name[160];
    static const char *const anames[] = {"A rows", "A packed"}, *const bnames[] = {"B rows", "B cols", "B packed"};
    static const char *const biases[] = {"", " rbias", " cbias"}, *const epis[] = {"", " relu", " +res relu", " sigmoid", " relu6 +res relu6"};
    snprintf(name, sizeof name, "gemm M %d N %d K %d %s %s%s%s", M, N, K, anames[akind], bnames[bkind], biases[bias],
             epis[epi]);
    report(name, c, ref, n_out, split, 2, guard_intact(scratch, sfloats));
    free(a), free(bsrc), free(rb), free(cb), free(res), free(scratch), free(wpack), free(tmp), free(w), free(ref);
    free(c), free(split);
}

/* A convolution through im2col: y[O, OH*OW] = w · im2col(x) + b, against a direct double loop. */
static void conv_case(int C, int H, int W, int O, int KH, int KW, int S, int P, int epi) {
    int OH = (H + 2 * P - KH) / S + 1, OW = (W + 2 * P - KW) / S + 1, act1 = epi ? NNK_ACT_RELU : NNK_ACT_NONE;
    long K = (long)C * KH * KW, npix = (long)OH * OW;
    float *x = randv((long)C * H * W), *w = randv(O * K), *b = randv(O);
    float *y = malloc((size_t)O * npix * sizeof *y), *split = malloc((size_t)O * npix * sizeof *y);
    long sfloats = NNK_GEMM_SCRATCH_FOR(O, npix, K, 0, 0);
    float *scratch = scratch_of(sfloats);
    double *ref = malloc((size_t)O * npix * sizeof *ref);
    for (int o = 0; o < O; o++)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
                double s = b[o];
                for (int c = 0; c < C; c++)
                    for (int kh = 0; kh < KH; kh++)
                        for (int kw = 0; kw < KW; kw++) {
                            int ih = oh * S + kh - P, iw = ow * S + kw - P;
                            if (ih >= 0 && ih < H && iw >= 0 && iw < W)
                                s += (double)w[((long)o * C + c) * KH * KW + kh * KW + kw] * x[((long)c * H + ih) * W + iw];
                        }
                ref[(long)o * npix + oh * OW + ow] = act(s, act1);
            }
    nnk_conv2d_gemm(y, x, w, 0, O, 0, b, NULL, act1, 0, C, H, W, O, OH, OW, 0, (int)npix, KH, KW, S, S, P, P, 1, 1,
                    scratch);
    /* the pixels in three parts, as three threads */
    int cuts[] = {0, (int)npix / 3, (int)npix * 2 / 3 + 1, (int)npix};
    for (int p = 0; p < 3; p++)
        nnk_conv2d_gemm(split, x, w, 0, O, 0, b, NULL, act1, 0, C, H, W, O, OH, OW, cuts[p], cuts[p + 1], KH, KW, S, S, P,
                        P, 1, 1, scratch);
    char name[160];
    snprintf(name, sizeof name, "conv2d_gemm C %d %dx%d O %d k %dx%d s %d p %d%s", C, H, W, O, KH, KW, S, P,
             epi ? " relu" : "");
    report(name, y, ref, O * npix, split, 1, guard_intact(scratch, sfloats));
    free(x), free(w), free(b), free(y), free(split), free(scratch), free(ref);
}

/* A depthwise or grouped conv2d on nnk_dwconv.h's rows (Cg input channels a group, Cg = 1 depthwise), stride S,
   padding P, dilation D; whole, and in three ranges of output channels as three threads. */
static void dwconv_case(int C, int Cg, int H, int W, int O, int K, int S, int P, int D, int epi) {
    int G = C / Cg, Og = O / G, OH = (H + 2 * P - D * (K - 1) - 1) / S + 1, OW = (W + 2 * P - D * (K - 1) - 1) / S + 1;
    int act1 = epi ? NNK_ACT_RELU : NNK_ACT_NONE;
    long npix = (long)OH * OW, taps = (long)Cg * K * K;
    nnk_conv_params shape = {C, H, W, O, OH, OW, K, K, S, S, P, P, D, D, G};
    float *x = randv((long)C * H * W), *w = randv(O * taps), *b = randv(O);
    float *y = malloc((size_t)O * npix * sizeof *y), *split = malloc((size_t)O * npix * sizeof *y);
    long sfloats = NNK_DWCONV_SCRATCH(Cg, OH, OW, K, K, S, S, D, D);
    float *scratch = scratch_of(sfloats);
    double *ref = malloc((size_t)O * npix * sizeof *ref);
    for (int o = 0; o < O; o++)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
                double s = b[o];
                for (int c = 0; c < Cg; c++)
                    for (int kh = 0; kh < K; kh++)
                        for (int kw = 0; kw < K; kw++) {
                            int ih = oh * S + kh * D - P, iw = ow * S + kw * D - P;
                            if (ih >= 0 && ih < H && iw >= 0 && iw < W)
                                s += (double)w[o * taps + (c * K + kh) * K + kw] * x[((long)(o / Og * Cg + c) * H + ih) * W + iw];
                        }
                ref[(long)o * npix + oh * OW + ow] = act(s, act1);
            }
    nnk_dwconv2d_part(y, x, w, b, NULL, act1, 0, &shape, 0, O, scratch);
    int cuts[] = {0, O / 3, O * 2 / 3 + 1, O};
    for (int p = 0; p < 3; p++)
        nnk_dwconv2d_part(split, x, w, b, NULL, act1, 0, &shape, cuts[p], cuts[p + 1], scratch);
    char name[160];
    snprintf(name, sizeof name, "dwconv2d C %d/%d %dx%d O %d k %d s %d p %d d %d%s", C, Cg, H, W, O, K, S, P, D, epi ? " relu" : "");
    report(name, y, ref, O * npix, split, 1, guard_intact(scratch, sfloats));
    free(x), free(w), free(b), free(y), free(split), free(scratch), free(ref);
}

int main(int argc, char **argv) {
    if (argc > 1 && !(hashes = fopen(argv[1], "w"))) {
        perror(argv[1]);
        return 2;
    }
#if defined(NNK_GEMM_NEON)
    printf("# gemm path: NEON\n");
#elif defined(NNK_GEMM_AVX512F)
    printf("# gemm path: AVX-512\n");
#elif defined(NNK_GEMM_AVX2_FMA)
    printf("# gemm path: AVX2+FMA\n");
#elif defined(NNK_GEMM_VECTOR)
    printf("# gemm path: vector types\n");
#else
    printf("# gemm path: scalar\n");
#endif
    /* every row count around MR and MC, every column count around the 4- and 12-column vectors, NR and NC,
       depths around KC; the options cycle so that each meets many shapes */
    static const int Ms[] = {1, 3, 7, 8, 9, 16, 63, 64, 65, 72};
    static const int Ns[] = {1, 2, 4, 5, 8, 11, 12, 13, 23, 24, 25, 36, 37, 47, 48, 49, 60, 95, 96, 97};
    static const int Ks[] = {1, 2, 17, 255, 256, 257};
    int i = 0;
    for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++)
        for (size_t ni = 0; ni < sizeof Ns / sizeof *Ns; ni++, i++) {
            int M = Ms[mi], N = Ns[ni], K = Ks[i % 6];
            int bkind = N % 48 == 0 && i % 3 == 2 ? NNK_B_PACKED : i % 2 ? NNK_B_COLS : NNK_B_ROWS;
            int akind = M % 8 == 0 && i % 4 == 1 ? A_PACKED : A_ROWS;
            gemm_case(M, N, K, akind, bkind, i % 3, i % 5);
        }
    /* past NC (480 columns) and MC, with a packed B and a deep K */
    gemm_case(9, 481, 300, A_ROWS, NNK_B_ROWS, 2, 2);
    gemm_case(70, 530, 40, A_ROWS, NNK_B_COLS, 1, 1);
    gemm_case(24, 528, 513, A_PACKED, NNK_B_PACKED, 2, 0);
    gemm_case(136, 96, 600, A_PACKED, NNK_B_ROWS, 1, 2);
    gemm_case(130, 50, 70, A_ROWS, NNK_B_ROWS, 0, 3);
    gemm_case(72, 528, 300, A_PACKED, NNK_B_PACKED, 1, 4);
    conv_case(3, 13, 11, 10, 3, 3, 1, 1, 1);
    conv_case(16, 14, 14, 24, 3, 3, 2, 1, 0);
    conv_case(33, 7, 9, 17, 1, 1, 1, 0, 1);
    conv_case(5, 20, 20, 8, 5, 5, 1, 2, 0);
    /* rows of 1 to 3 vectors and a part of one, strides 1 to 3, padding past the kernel's reach, dilation */
    dwconv_case(5, 1, 13, 13, 5, 3, 1, 1, 1, 1);
    dwconv_case(7, 1, 30, 29, 7, 7, 1, 3, 1, 0);
    dwconv_case(4, 1, 17, 23, 8, 3, 2, 1, 1, 1);
    dwconv_case(3, 1, 11, 14, 3, 5, 3, 4, 2, 0);
    dwconv_case(16, 4, 9, 9, 16, 3, 1, 1, 1, 1);
    dwconv_case(24, 8, 12, 7, 12, 3, 2, 2, 1, 0);
    printf("%d passed, %d failed\n", passed, failed);
    if (hashes)
        fclose(hashes);
    return failed ? 1 : 0;
}

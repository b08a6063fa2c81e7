/*
 * select_kernels.c — how each op is computed: the last pass, run at every -O level, after fusion and
 * before memory planning.
 *
 * For each op it sets op->impl: the family of implementation (a blocked product, a direct loop nest,
 * a dot product, staged attention, ...), the micro-kernel of the registry (runtime/kernels/
 * nnk_ukernels.def) that the target runs, how the threads share the work, whether a weight is
 * rearranged once at load time for the micro-kernel, and the scratch memory the op needs. Memory
 * planning sizes scratch from it, `--emit ir` and `--emit dot` show it, and the C emitter only prints
 * what was chosen here. Every choice is a function of the op's shapes and the target alone.
 */
#include "nnc.h"

#include "kernels/nnk.h"

#include <string.h>

/* ---------------------------------------------------------------- targets and the registry */

const Target targets[] = {
#define TARGET(ID, NAME, ISA, MACROS, CFLAGS, ABOUT) {NAME, #ISA, MACROS, CFLAGS, ABOUT},
#include "targets.def"
#undef TARGET
    {0},
};

static const Ukernel ukernels[] = {
#define UKERNEL(FAMILY, ISA, NAME, MR, NR) {#FAMILY, #ISA, #NAME, MR, NR},
#include "kernels/nnk_ukernels.def"
#undef UKERNEL
};

/* The best target this CPU runs: the one whose instructions it has (x86 asks cpuid). */
const Target *target_native(void) {
    const char *name = "generic";
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        name = "x86-64-v4";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        name = "x86-64-v3";
#elif defined(__aarch64__)
    name = "armv8-a";
#endif
    return target_named(name);
}

const Target *target_named(const char *name) {
    if (strcmp(name, "native") == 0)
        return target_native();
    for (const Target *t = targets; t->name; t++)
        if (strcmp(t->name, name) == 0)
            return t;
    return NULL;
}

/* The micro-kernel of `family` for the target's ISA, or the portable one when the ISA has none yet. */
static const Ukernel *ukernel_for(const char *family, const Target *t) {
    const Ukernel *portable = NULL;
    for (size_t i = 0; i < sizeof ukernels / sizeof *ukernels; i++) {
        const Ukernel *u = &ukernels[i];
        if (strcmp(u->family, family) != 0)
            continue;
        if (strcmp(u->isa, t->isa) == 0)
            return u;
        if (strcmp(u->isa, "portable") == 0)
            portable = u;
    }
    return portable;
}

/* ---------------------------------------------------------------- the choices */

/* Output planes at least this large are split between threads by pixels (each thread then gathers only
   its own patches), smaller ones by output channels. */
enum { SPLIT_PIXELS_FROM = 512 };

/* Winograd's F(4x4, 3x3) pays where a transformed weight (4x the floats of the direct one, streamed from
   memory once a unit, the next product's prefetched) serves enough tiles of 4x4 pixels, counted over the
   batch, and where its tiles do not waste what it saves: 36 products a tile against 9 a pixel, at least 2x
   fewer (not on planes of 2x2 or 5x5 pixels). 49 tiles or more (a 25x25 plane, a batch of small ones).
   Where the plane holds fewer, F(2x2, 3x3) does where it has 16 tiles of 2x2 (a 7x7 plane) and saves
   1.5x or more (16 products a tile): its weight is 16/9 of the direct one's, its rounding about the direct
   convolution's. ResNet-50's 14x14 layers on a Sapphire Rapids core, in the model: F(2x2) 0.87 ms, F(4x4)
   1.1-1.2 (9.4 MB of transformed weight each, from memory), direct 1.4. Its 7x7 layers of 512 channels
   (16 tiles of 2x2, 17 MB of weight) took 1.9 by F(2x2) against 1.8 direct there, when each of a chunk's
   8 groups of output blocks transformed its input again; transformed once for all, on a Zen 5 core:
   1.0-1.1 against 1.25-1.3 direct (ResNet-18 13.6 → 12.6 ms, 1 thread). (F(4x4) on 16 tiles of 128
   channels took Wide ResNet-50-2's error at 64x64 against PyTorch from 5.4e-5 to 1.15e-4 of its largest
   output, past the 1e-4 nnc holds to; F(2x2) adds about 1e-6.) */
enum { WINOGRAD_MIN_TILES = 49, WINOGRAD2_MIN_TILES = 16 };

/* The m of the F(m x m, 3x3) that a 3x3 stride-1 convolution to y runs by: 4, 2, or 0 (direct). */
static int winograd_tile(const Tensor *y) {
    int64_t pixels = y->dims[0] * y->dims[2] * y->dims[3];
    int64_t tiles4 = y->dims[0] * ((y->dims[2] + 3) / 4) * ((y->dims[3] + 3) / 4);
    int64_t tiles2 = y->dims[0] * ((y->dims[2] + 1) / 2) * ((y->dims[3] + 1) / 2);
    if (tiles4 >= WINOGRAD_MIN_TILES && 9 * pixels >= 2 * 36 * tiles4)
        return 4;
    if (tiles2 >= WINOGRAD2_MIN_TILES && 2 * 9 * pixels >= 3 * 16 * tiles2)
        return 2;
    return 0;
}

bool no_winograd;

/* The window of a blocked conv2d's kernel whose taps ever read its input, when that is not the whole kernel:
   its input is padded already (choose_layouts.c's pad_plane), and a tap that reads only the padding for
   every output pixel multiplies zeros. A 3x3 layer on a batch of 1x1 planes (the Fashion-MNIST ResNet's last
   stage) then does one tap of nine, a stride-2 one from 2x2 to 1x1 four. The layer's bias must be its own,
   to turn an output channel to NaN where a weight left out is not finite (nnk_pack_conv_taps). */
static void live_taps(const Op *op, Impl *impl) {
    const Tensor *x = op->in.items[0], *y = op->out;
    const Op *pad = x->producer;
    const Attrs *a = &op->a;
    if (!pad || pad->kind != OPK_PAD_PLANE || !a->has_bias)
        return;
    const Tensor *b = op->in.items[2], *src = pad->in.items[0];
    if (b->kind != TK_WEIGHT || b->uses != 1)
        return;
    int first[2], last[2];
    for (int d = 0; d < 2; d++) {
        int64_t lo = pad->a.pad[d], hi = lo + src->dims[2 + d], n = y->dims[2 + d];
        hi = hi < x->dims[2 + d] ? hi : x->dims[2 + d];
        first[d] = -1, last[d] = -1;
        for (int k = 0; k < a->kernel[d]; k++)
            for (int64_t o = 0; o < n; o++) {
                int64_t at = o * a->stride[d] + (int64_t)k * a->dilation[d];
                if (at >= lo && at < hi) {
                    first[d] = first[d] < 0 ? k : first[d];
                    last[d] = k;
                    break;
                }
            }
        if (first[d] < 0)   /* (every tap in the padding: the output is the bias, which the whole kernel computes) */
            return;
    }
    if (first[0] == 0 && first[1] == 0 && last[0] == a->kernel[0] - 1 && last[1] == a->kernel[1] - 1)
        return;
    for (int d = 0; d < 2; d++) {
        impl->tap0[d] = first[d];
        impl->taps[d] = last[d] - first[d] + 1;
    }
}

/* Keys beyond this make a thread's row block of attention scores too large: one thread does it all. */
enum { MHA_MAX_BLOCKED_KEYS = 65536 };

/* Whether weight w may be rearranged at load time into strips of `width` rows: nothing else reads it, and
   its rows fill whole units of `unit` rows (a multiple of width: attention's Q, K and V each start at a
   strip). */
static bool packable(const Tensor *w, int width, int64_t unit) {
    return w->kind == TK_WEIGHT && w->uses == 1 && unit % width == 0 && w->dims[0] % unit == 0;
}

static void pack(Impl *impl, const Tensor *w, int width, int64_t unit) {
    if (packable(w, width, unit)) {
        impl->pack_width = width;
    }
}

/* conv2d with groups. Depthwise ones (groups == channels), and those of few channels a group (ResNeXt's first
   stages, RegNet's groups of 8 or 16: fewer than DWCONV_MAX_K taps a group), on nnk_dwconv.h's vectorised
   rows, threads by output channels, each thread with a group's input channels padded in its scratch; groups
   of more channels a blocked product each, threads by output channels too (cut anywhere in a group, so that
   a layer of two groups still keeps every thread busy); the direct loop nest only for a depthwise kernel of
   more taps than nnk_dwconv.h's table. Measured on one Zen 5 core (AVX-512), on ResNeXt-50's and
   RegNetY-400MF's 3×3 layers as single ops: the rows 1.5-4.4× faster than a product a group up to 144 taps
   (16 channels), the product 1.6× faster at 288 (ResNeXt's last stage: 32 channels, a 7×7 plane); in a model
   under --profile, 2.6-5.9× (rows) and 1.7× (product) faster than the direct loop nest. */
enum { DWCONV_MAX_K = 256 };

static Impl choose_grouped_conv(const Graph *g, const Op *op) {
    const Tensor *x = op->in.items[0], *y = op->out;
    const Attrs *a = &op->a;
    int64_t Cg = x->dims[1] / a->groups, K = Cg * a->kernel[0] * a->kernel[1];
    Impl impl = {.family = IMPL_DIRECT, .split = SPLIT_GROUPS};
    if (Cg == 1 || K < DWCONV_MAX_K) {
        if (K <= NNK_DWCONV_MAX_TAPS) {
            impl.family = IMPL_DWCONV;
            impl.split = SPLIT_CHANNELS;
            impl.thread_scratch = NNK_DWCONV_SCRATCH(Cg, y->dims[2], y->dims[3], a->kernel[0], a->kernel[1], a->stride[0], a->stride[1],
                                                     a->dilation[0], a->dilation[1]);
        }
        return impl;
    }
    impl.family = IMPL_GEMM;
    impl.uk = ukernel_for("f32_gemm", g->target);
    impl.split = SPLIT_CHANNELS;
    impl.thread_scratch = NNK_GEMM_SCRATCH;
    return impl;
}

static Impl choose(const Graph *g, const Op *op) {
    const Tensor *x = op->in.len ? op->in.items[0] : NULL, *y = op->out;
    Impl impl = {.family = IMPL_LOOP};
    switch (op->kind) {
    case OPK_CONV2D: {
        if (y->layout == LAYOUT_NCHW16C) {   /* choose_layouts blocked it: the direct tiles, by runs of pixels */
            impl.family = IMPL_NCHWC;
            impl.split = SPLIT_RUNS;
            impl.pack_nchwc = true;   /* (choose_layouts blocks only a conv2d whose weight nothing else reads) */
            const Attrs *a = &op->a;
            live_taps(op, &impl);
            bool f43 = x->layout == LAYOUT_NCHW16C && a->groups == 1 && a->kernel[0] == 3 && a->kernel[1] == 3 && a->stride[0] == 1 && a->stride[1] == 1 &&
                       a->dilation[0] == 1 && a->dilation[1] == 1 && !impl.taps[0];
            if (f43 && !no_winograd) {
                impl.winograd = winograd_tile(y);
                if (impl.winograd)
                    impl.thread_scratch = NNK_WINO_SCRATCH(x->dims[1]);
            }
            break;
        }
        if (op->a.groups > 1) {
            impl = choose_grouped_conv(g, op);
            break;
        }
        const Attrs *a = &op->a;
        const Ukernel *uk = ukernel_for("f32_gemm", g->target);
        if (x->dims[2] * x->dims[3] == 1 && y->dims[2] * y->dims[3] == 1 && a->kernel[0] * a->kernel[1] == 1 && !a->pad[0] &&
            !a->pad[1] && x->dims[0] < uk->mr && x->layout != LAYOUT_NCHW16C) {
            /* a 1×1 convolution of 1×1 planes (its one output pixel reading input pixel 0, with no padding
               before it) is a linear layer ([N, C, 1, 1] is [N, C]): squeeze-and-excitation's
               at batch 1 (MobileNet-V3, EfficientNet, RegNet-Y), whose product had one column of the tile's 48,
               take the linear's sums of rows (MobileNet-V3-Large's 16 such layers 0.99 → 0.17 ms, a Zen 5 core) */
            impl.family = IMPL_DOT;
            impl.split = SPLIT_FEATURES;
            impl.pack_gemv = packable(op->in.items[1], 1, 1);
            break;
        }
        impl.family = IMPL_GEMM;
        impl.uk = uk;
        int64_t P = y->dims[2] * y->dims[3];
        /* a large plane by pixels; a batch of small ones as one product over all their pixels (no tile
           wasted on a plane narrower than NR); else by output channels */
        impl.split = P >= SPLIT_PIXELS_FROM ? SPLIT_PIXELS : y->dims[0] > 1 ? SPLIT_BATCH : SPLIT_CHANNELS;
        pack(&impl, op->in.items[1], impl.uk->mr, impl.uk->mr);
        int64_t K = tensor_numel(op->in.items[1]) / y->dims[1];   /* the product's sizes, as emit_ops.c gives them */
        impl.thread_scratch = impl.split == SPLIT_BATCH ? NNK_CONV_BATCH_SCRATCH_FOR(y->dims[1], y->dims[0] * P, K, impl.pack_width > 0)
                                                        : NNK_GEMM_SCRATCH_FOR(y->dims[1], P, K, impl.pack_width > 0, 0);
        break;
    }
    case OPK_LINEAR: {
        int64_t K = x->dims[x->rank - 1], M = tensor_numel(x) / K;
        const Ukernel *uk = ukernel_for("f32_gemm", g->target);
        impl.split = SPLIT_FEATURES;
        if (M < uk->mr) {   /* a classifier at batch 1: the tile would be mostly empty */
            impl.family = IMPL_DOT;
            impl.pack_gemv = packable(op->in.items[1], 1, 1);
            break;
        }
        impl.family = IMPL_GEMM;
        impl.uk = uk;
        pack(&impl, op->in.items[1], uk->nr, uk->nr);
        impl.thread_scratch = NNK_GEMM_SCRATCH_FOR(M, y->dims[y->rank - 1], K, 0, impl.pack_width > 0);
        break;
    }
    case OPK_MHA:
    case OPK_CROSS_ATTENTION: {
        const Tensor *mem = op->kind == OPK_MHA ? x : op->in.items[1];
        int64_t N = x->dims[0], L = x->dims[1], D = x->dims[2], S = mem->dims[1];
        int wi = op->kind == OPK_MHA ? 1 : 2;
        impl.scratch_floats = NNK_MHA_SCRATCH(N, L, S, D);   /* Q | K | V */
        if (S > MHA_MAX_BLOCKED_KEYS) {
            impl.family = IMPL_SERIAL;
            break;
        }
        impl.family = IMPL_BLOCKED;
        impl.uk = ukernel_for("f32_gemm", g->target);
        impl.split = SPLIT_FEATURES;   /* projections by features, heads by (batch, head) */
        if (packable(op->in.items[wi], impl.uk->nr, D) && packable(op->in.items[wi + 2], impl.uk->nr, D))
            pack(&impl, op->in.items[wi], impl.uk->nr, D);
        impl.thread_scratch = NNK_ATTEND_SCRATCH(S);
        break;
    }
    case OPK_SDPA: {
        int64_t S = VEC_AT(op->in, 1, Tensor *)->dims[x->rank - 2];
        impl.family = IMPL_BLOCKED;
        impl.uk = ukernel_for("f32_gemm", g->target);
        impl.split = SPLIT_BATCH;
        impl.scratch_floats = S;
        impl.thread_scratch = NNK_ATTEND_SCRATCH(S);
        break;
    }
    case OPK_RESHAPE:
    case OPK_SLICE:
    case OPK_TRANSPOSE:
        /* a view costs nothing (fold_shapes made slices and transposes views; plan_memory makes every
           reshape one); an output or a strided slice is copied */
        if ((y->view_of || op->kind == OPK_RESHAPE) && !is_graph_output(g, y))
            impl.family = IMPL_NONE;
        break;
    default: break;
    }
    return impl;
}

/* The registry's promise: the rows of one family share a tile, so that C generated for a generic target
   builds with whichever micro-kernel the compiler finds. */
static void check_registry(void) {
    size_t n = sizeof ukernels / sizeof *ukernels;
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (strcmp(ukernels[i].family, ukernels[j].family) == 0 &&
                (ukernels[i].mr != ukernels[j].mr || ukernels[i].nr != ukernels[j].nr))
                internal_error(NULL, "nnk_ukernels.def: %s and %s are of one family with different tiles", ukernels[i].name,
                               ukernels[j].name);
}

void pass_select_kernels(Graph *g) {
    check_registry();
    if (!g->target)
        g->target = target_native();
    for (int i = 0; i < g->ops.len; i++) {
        Op *op = g->ops.items[i];
        op->impl = choose(g, op);
    }
}

/* ---------------------------------------------------------------- in words, for --emit ir and dot */

const char *impl_text(const Op *op) {
    static const char *const family[] = {
        [IMPL_NONE] = "view", [IMPL_LOOP] = "loop", [IMPL_DIRECT] = "direct", [IMPL_DWCONV] = "dwconv", [IMPL_GEMM] = "gemm",
        [IMPL_DOT] = "dot", [IMPL_BLOCKED] = "blocked", [IMPL_SERIAL] = "serial", [IMPL_NCHWC] = "direct nchw16c",
    };
    static const char *const split[] = {
        [SPLIT_NONE] = "", [SPLIT_PIXELS] = "pixels", [SPLIT_CHANNELS] = "channels", [SPLIT_GROUPS] = "groups",
        [SPLIT_FEATURES] = "features", [SPLIT_BATCH] = "batch", [SPLIT_RUNS] = "runs",
    };
    const Impl *m = &op->impl;
    Buf b = {0};
    if (m->winograd)
        buf_printf(&b, "winograd F(%dx%d, 3x3) nchw16c", m->winograd, m->winograd);
    else
        buf_puts(&b, family[m->family]);
    if (m->uk)
        buf_printf(&b, " %s", m->uk->name);
    if (m->pack_width)
        buf_printf(&b, ", packed %d", m->pack_width);
    if (m->pack_gemv)
        buf_printf(&b, ", packed in panels of %d", NNK_GEMV_W);
    if (m->winograd)
        buf_printf(&b, ", packed %dx OI16i16o", (m->winograd + 2) * (m->winograd + 2));
    else if (m->pack_nchwc)
        buf_puts(&b, ", packed OIhw16i16o");
    if (m->taps[0])
        buf_printf(&b, ", taps %dx%d from (%d, %d) of %dx%d (the rest read only padding)", m->taps[0], m->taps[1], m->tap0[0], m->tap0[1],
                   op->a.kernel[0], op->a.kernel[1]);
    if (m->split)
        buf_printf(&b, ", threads by %s", m->winograd ? "tiles"
                                          : m->split == SPLIT_RUNS && op->out->dims[0] > 1 && op->out->dims[3] <= NNK_CONV_IMAGES_MAX_W
                                              ? "images"   /* a batch of small planes: a pixel of several images a unit */
                                              : split[m->split]);
    if (m->scratch_floats)
        buf_printf(&b, ", scratch %lld B", (long long)m->scratch_floats * 4);
    return buf_take(&b);
}

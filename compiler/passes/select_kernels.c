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

static Impl choose(const Graph *g, const Op *op) {
    const Tensor *x = op->in.len ? op->in.items[0] : NULL, *y = op->out;
    Impl impl = {.family = IMPL_LOOP};
    switch (op->kind) {
    case OPK_CONV2D: {
        if (op->a.groups > 1) {
            impl.family = IMPL_DIRECT;
            impl.split = SPLIT_GROUPS;
            break;
        }
        impl.family = IMPL_GEMM;
        impl.uk = ukernel_for("f32_gemm", g->target);
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
        [IMPL_NONE] = "view", [IMPL_LOOP] = "loop", [IMPL_DIRECT] = "direct", [IMPL_GEMM] = "gemm",
        [IMPL_DOT] = "dot", [IMPL_BLOCKED] = "blocked", [IMPL_SERIAL] = "serial",
    };
    static const char *const split[] = {
        [SPLIT_NONE] = "", [SPLIT_PIXELS] = "pixels", [SPLIT_CHANNELS] = "channels", [SPLIT_GROUPS] = "groups",
        [SPLIT_FEATURES] = "features", [SPLIT_BATCH] = "batch",
    };
    const Impl *m = &op->impl;
    Buf b = {0};
    buf_puts(&b, family[m->family]);
    if (m->uk)
        buf_printf(&b, " %s", m->uk->name);
    if (m->pack_width)
        buf_printf(&b, ", packed %d", m->pack_width);
    if (m->split)
        buf_printf(&b, ", threads by %s", split[m->split]);
    if (m->scratch_floats)
        buf_printf(&b, ", scratch %lld B", (long long)m->scratch_floats * 4);
    return buf_take(&b);
}

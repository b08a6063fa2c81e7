/*
 * plan_memory.c — place every intermediate tensor in one arena.
 *
 * Model inputs and outputs live in the caller's buffers; everything else gets a byte offset into one
 * arena that the generated code allocates once at load time. A tensor is live from the op that
 * writes it to the last op that reads it; two tensors may share bytes when their lifetimes do not
 * overlap. Placement is greedy by size (largest first, each at the lowest offset that does not collide
 * with an already placed tensor whose lifetime overlaps), which reaches the liveness lower bound on
 * the models we have measured. A reshape is free: its output is a view of its input's memory, and
 * extends that memory's lifetime. Ops that need scratch memory get it as a tensor live only during
 * the op.
 */
#include "nnc.h"

#include <stdlib.h>

enum { ALIGN = 64 };

typedef struct {
    Tensor *t;          /* NULL for scratch */
    Op *scratch_of;
    int64_t bytes;
    int first, last;    /* op indices of the lifetime, inclusive */
    int64_t offset;
} Interval;

/* Floats of scratch memory an op's kernel needs (the NNK_*_SCRATCH macros of runtime/kernels). */
int64_t op_scratch_floats(const Op *op) {
    const Tensor *x = op->in.items[0];
    switch (op->kind) {
    case OPK_MHA:
    case OPK_CROSS_ATTENTION: {
        const Tensor *mem = op->kind == OPK_MHA ? x : op->in.items[1];
        int64_t N = x->dims[0], L = x->dims[1], D = x->dims[2], S = mem->dims[1];
        return 2 * N * L * D + 2 * N * S * D + L * S;
    }
    case OPK_SDPA: {
        const Tensor *k = op->in.items[1];
        return x->dims[x->rank - 2] * k->dims[k->rank - 2];
    }
    default: return 0;
    }
}

static Tensor *base_of(Tensor *t) {
    while (t->view_of)
        t = t->view_of;
    return t;
}

static bool is_output(const Graph *g, const Tensor *t) {
    for (int i = 0; i < g->outputs.len; i++)
        if (g->outputs.items[i] == t)
            return true;
    return false;
}

static int by_size_desc(const void *a, const void *b) {
    const Interval *x = *(Interval *const *)a, *y = *(Interval *const *)b;
    if (x->bytes != y->bytes)
        return x->bytes < y->bytes ? 1 : -1;
    return x->first - y->first;
}

void plan_memory(Graph *g) {
    /* views: a reshape whose output is not a model output shares its input's memory */
    for (int i = 0; i < g->ops.len; i++) {
        Op *op = g->ops.items[i];
        if (op->kind == OPK_RESHAPE && !is_output(g, op->out))
            op->out->view_of = op->in.items[0];
    }
    Interval *iv = xcalloc((size_t)g->tensors.len + (size_t)g->ops.len + 1, sizeof *iv);
    int *slot = xcalloc((size_t)g->tensors.len + 1, sizeof *slot);   /* tensor id -> interval index + 1 */
    int n = 0;
    for (int i = 0; i < g->ops.len; i++) {
        Op *op = g->ops.items[i];
        Tensor *t = op->out;
        if (!t->view_of && !is_output(g, t)) {
            iv[n] = (Interval){.t = t, .bytes = tensor_bytes(t), .first = i, .last = i};
            slot[t->id] = ++n;
        }
        int64_t scratch = op_scratch_floats(op);
        if (scratch > 0)
            iv[n++] = (Interval){.scratch_of = op, .bytes = scratch * 4, .first = i, .last = i};
        for (int j = 0; j < op->in.len; j++) {
            Tensor *base = base_of(op->in.items[j]);
            if (base->kind == TK_ACT && slot[base->id])
                iv[slot[base->id] - 1].last = i;
        }
    }
    Interval **order = xcalloc((size_t)n + 1, sizeof *order);
    for (int i = 0; i < n; i++)
        order[i] = &iv[i];
    qsort(order, (size_t)n, sizeof *order, by_size_desc);

    int64_t arena = 0;
    Interval **placed = xcalloc((size_t)n + 1, sizeof *placed);
    int nplaced = 0;
    for (int i = 0; i < n; i++) {
        Interval *cur = order[i];
        int64_t offset = 0;
        /* walk the overlapping placed intervals in offset order, moving past each collision */
        for (bool moved = true; moved;) {
            moved = false;
            for (int j = 0; j < nplaced; j++) {
                Interval *p = placed[j];
                bool live_together = p->first <= cur->last && cur->first <= p->last;
                bool collide = p->offset < offset + cur->bytes && offset < p->offset + p->bytes;
                if (live_together && collide) {
                    offset = (p->offset + p->bytes + ALIGN - 1) / ALIGN * ALIGN;
                    moved = true;
                }
            }
        }
        cur->offset = offset;
        placed[nplaced++] = cur;
        if (offset + cur->bytes > arena)
            arena = offset + cur->bytes;
    }
    for (int i = 0; i < n; i++) {
        if (iv[i].t)
            iv[i].t->offset = iv[i].offset;
        else
            iv[i].scratch_of->scratch_offset = iv[i].offset;
    }
    for (int i = 0; i < g->tensors.len; i++) {
        Tensor *t = g->tensors.items[i];
        if (t->view_of)
            t->offset = base_of(t)->offset;
    }
    g->arena_bytes = (arena + ALIGN - 1) / ALIGN * ALIGN;
    free(iv);
    free(slot);
    free(order);
    free(placed);
}

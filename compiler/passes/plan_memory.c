/*
 * plan_memory.c — place every intermediate tensor in one arena.
 *
 * Model inputs and outputs live in the caller's buffers; everything else gets a byte offset into one
 * arena that the generated code allocates once at load time.
 *
 * Tensors first gather into buffers: a reshape (and any view fold_shapes made) shares its input's
 * memory, and an elementwise op whose input dies at that op writes its result over the input
 * (in place). A buffer is live from the first op that writes it to the last op that reads it. Two
 * buffers may share bytes when their lifetimes do not overlap. Placement is greedy by size: largest
 * first, each at the lowest offset where it collides with no already placed buffer of overlapping
 * lifetime. Ops whose kernels need scratch memory get a buffer live only during the op.
 *
 * The lower bound is the largest total of bytes live at one op; verify_memory_plan proves that no
 * two live buffers overlap.
 */
#include "nnc.h"

#include <stdlib.h>
#include <string.h>

enum { ALIGN = 64 };

typedef struct {
    Tensor *root;       /* NULL for scratch */
    Op *scratch_of;
    int64_t bytes;
    int first, last;    /* op indices of the lifetime, inclusive */
    int64_t offset;
} Buffer;

static Tensor *root_of(Tensor *t) {
    while (t->view_of)
        t = t->view_of;
    return t;
}

static bool shape_equal(const Tensor *a, const Tensor *b) {
    return a->rank == b->rank && memcmp(a->dims, b->dims, sizeof(int64_t) * (size_t)a->rank) == 0;
}

/* Kinds whose kernels allow the output to be the input (OPF_IN_PLACE in ops.def). */
static bool may_run_in_place(OpKind k) { return op_info[k].props & OPF_IN_PLACE; }

/* last[t->id]: the index of the last op that reads t (or -1); an output is read after the last op. */
static int *last_reads(const Graph *g) {
    int *last = xcalloc((size_t)g->tensors.len + 1, sizeof *last);
    for (int i = 0; i < g->tensors.len; i++)
        last[i] = -1;
    for (int i = 0; i < g->ops.len; i++) {
        Op *op = g->ops.items[i];
        for (int j = 0; j < op->in.len; j++)
            last[VEC_AT(op->in, j, Tensor *)->id] = i;
    }
    for (int i = 0; i < g->outputs.len; i++)
        last[VEC_AT(g->outputs, i, Tensor *)->id] = g->ops.len;
    return last;
}

/* Whether another input of op reads input j's memory through a different tensor (a view of it, at
   another offset or shape): writing the result over input j would then change what that input still
   has to read (`y * take(y, 0, 0)`). The same tensor twice (`y * y`) reads each element where it is
   written, so it may share. */
static bool aliased_elsewhere(const Op *op, int j) {
    Tensor *x = op->in.items[j], *r = root_of(x);
    for (int k = 0; k < op->in.len; k++) {
        Tensor *other = op->in.items[k];
        if (k != j && other != x && root_of(other) == r)
            return true;
    }
    return false;
}

/* Decides views (reshapes) and in-place ops: sets view_of on the tensors that share memory. */
static void share_memory(Graph *g) {
    int *last = last_reads(g);
    /* a buffer's last read is the last read of any tensor sharing it */
    int *root_last = xcalloc((size_t)g->tensors.len + 1, sizeof *root_last);
    for (int i = 0; i < g->tensors.len; i++)
        root_last[i] = last[i];
    for (int i = 0; i < g->ops.len; i++) {
        Op *op = g->ops.items[i];
        Tensor *y = op->out;
        if (is_graph_output(g, y)) {
            y->view_of = NULL;   /* an output is the caller's buffer, never a view */
            continue;
        }
        if (op->kind == OPK_RESHAPE) {
            y->view_of = op->in.items[0];
            y->view_offset = 0;
        } else if (!y->view_of && may_run_in_place(op->kind)) {
            for (int j = 0; j < op->in.len; j++) {
                Tensor *x = op->in.items[j], *r = root_of(x);
                if (r->kind == TK_ACT && !is_graph_output(g, r) && root_last[r->id] == i && shape_equal(x, y) &&
                    tensor_bytes(r) == tensor_bytes(y) && x->view_offset == 0 && x->view_of == NULL &&
                    !aliased_elsewhere(op, j)) {
                    y->view_of = x;
                    y->view_offset = 0;
                    break;
                }
            }
        }
        if (y->view_of) {
            Tensor *r = root_of(y);
            if (last[y->id] > root_last[r->id])
                root_last[r->id] = last[y->id];
        }
    }
    free(last);
    free(root_last);
}

static int by_size_desc(const void *a, const void *b) {
    const Buffer *x = *(Buffer *const *)a, *y = *(Buffer *const *)b;
    if (x->bytes != y->bytes)
        return x->bytes < y->bytes ? 1 : -1;
    return x->first - y->first;
}

static int by_offset(const void *a, const void *b) {
    const Buffer *x = *(Buffer *const *)a, *y = *(Buffer *const *)b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

static bool live_together(const Buffer *a, const Buffer *b) { return a->first <= b->last && b->first <= a->last; }

static int64_t length(const Buffer *b) { return b->last - b->first + 1; }

static int by_area_desc(const void *a, const void *b) {
    const Buffer *x = *(Buffer *const *)a, *y = *(Buffer *const *)b;
    int64_t ax = x->bytes * length(x), ay = y->bytes * length(y);
    return ax != ay ? (ax < ay ? 1 : -1) : by_size_desc(a, b);
}

static int by_first_use(const void *a, const void *b) {
    const Buffer *x = *(Buffer *const *)a, *y = *(Buffer *const *)b;
    return x->first != y->first ? x->first - y->first : by_size_desc(a, b);
}

static int by_length_desc(const void *a, const void *b) {
    const Buffer *x = *(Buffer *const *)a, *y = *(Buffer *const *)b;
    return length(x) != length(y) ? (length(x) < length(y) ? 1 : -1) : by_size_desc(a, b);
}

/* Places the buffers in the given order, each at the lowest offset where it collides with no
   already placed buffer of overlapping lifetime (or, best_fit, in the smallest such gap that holds it,
   else past them all); returns the arena size. */
static int64_t place(Buffer *bufs, int n, int (*order_by)(const void *, const void *), bool best_fit) {
    Buffer **order = xcalloc((size_t)n + 1, sizeof *order), **conf = xcalloc((size_t)n + 1, sizeof *conf);
    for (int i = 0; i < n; i++)
        order[i] = &bufs[i];
    qsort(order, (size_t)n, sizeof *order, order_by);
    int64_t arena = 0;
    for (int i = 0; i < n; i++) {
        Buffer *cur = order[i];
        int nconf = 0;
        for (int j = 0; j < i; j++)
            if (live_together(order[j], cur))
                conf[nconf++] = order[j];
        qsort(conf, (size_t)nconf, sizeof *conf, by_offset);
        int64_t offset = 0, best = -1, best_gap = 0;
        for (int j = 0; j < nconf; j++) {
            if (conf[j]->offset >= offset + cur->bytes) {
                if (!best_fit)
                    break;
                if (best < 0 || conf[j]->offset - offset < best_gap) {
                    best = offset;
                    best_gap = conf[j]->offset - offset;
                }
            }
            int64_t end = (conf[j]->offset + conf[j]->bytes + ALIGN - 1) / ALIGN * ALIGN;
            if (end > offset)
                offset = end;
        }
        cur->offset = best >= 0 ? best : offset;
        offset = cur->offset;
        if (offset + cur->bytes > arena)
            arena = offset + cur->bytes;
    }
    free(order);
    free(conf);
    return arena;
}

/* The buffers of the graph with their lifetimes; *n is set to their count. */
static Buffer *collect_buffers(const Graph *g, int *n) {
    Buffer *bufs = xcalloc((size_t)g->tensors.len + (size_t)g->ops.len + 1, sizeof *bufs);
    int *slot = xcalloc((size_t)g->tensors.len + 1, sizeof *slot);   /* root id -> buffer index + 1 */
    int count = 0;
    for (int i = 0; i < g->ops.len; i++) {
        Op *op = g->ops.items[i];
        Tensor *r = root_of(op->out);
        if (r->kind == TK_ACT && !is_graph_output(g, r) && !slot[r->id]) {
            bufs[count] = (Buffer){.root = r, .bytes = tensor_bytes(r), .first = i, .last = i};
            slot[r->id] = ++count;
        }
        int64_t scratch = op->impl.scratch_floats;
        if (scratch > 0)
            bufs[count++] = (Buffer){.scratch_of = op, .bytes = scratch * 4, .first = i, .last = i};
        for (int j = 0; j < op->in.len; j++) {
            Tensor *base = root_of(op->in.items[j]);
            if (slot[base->id] && bufs[slot[base->id] - 1].last < i)
                bufs[slot[base->id] - 1].last = i;
        }
        if (slot[r->id] && bufs[slot[r->id] - 1].last < i)
            bufs[slot[r->id] - 1].last = i;
    }
    free(slot);
    *n = count;
    return bufs;
}

void plan_memory(Graph *g) {
    if (!g->target)   /* the kernels, which say what scratch they need, are chosen first */
        pass_select_kernels(g);
    share_memory(g);
    int n;
    Buffer *bufs = collect_buffers(g, &n);

    /* the lower bound: the most bytes live at any one op */
    g->lower_bound = 0;
    g->peak_op = 0;
    for (int i = 0; i < g->ops.len; i++) {
        int64_t live = 0;
        for (int b = 0; b < n; b++)
            if (bufs[b].first <= i && i <= bufs[b].last)
                live += bufs[b].bytes;
        if (live > g->lower_bound) {
            g->lower_bound = live;
            g->peak_op = i;
        }
    }

    /* Greedy placement is sensitive to its order: try a few and keep the smallest arena. */
    int (*orders[])(const void *, const void *) = {by_size_desc, by_area_desc, by_first_use, by_length_desc};
    int64_t best = -1;
    int64_t *best_offsets = xcalloc((size_t)n + 1, sizeof *best_offsets);
    for (size_t k = 0; k < 2 * (sizeof orders / sizeof *orders); k++) {
        int64_t arena = place(bufs, n, orders[k / 2], k % 2);
        if (best < 0 || arena < best) {
            best = arena;
            for (int i = 0; i < n; i++)
                best_offsets[i] = bufs[i].offset;
        }
    }
    for (int i = 0; i < n; i++)
        bufs[i].offset = best_offsets[i];
    free(best_offsets);
    int64_t arena = best < 0 ? 0 : best;
    for (int i = 0; i < n; i++) {
        if (bufs[i].root)
            bufs[i].root->offset = bufs[i].offset;
        else
            bufs[i].scratch_of->scratch_offset = bufs[i].offset;
    }
    for (int i = 0; i < g->tensors.len; i++) {
        Tensor *t = g->tensors.items[i], *r = root_of(t);
        if (t != r && r->offset >= 0) {
            int64_t off = 0;
            for (Tensor *v = t; v->view_of; v = v->view_of)
                off += v->view_offset;
            t->offset = r->offset + off;
        }
    }
    g->arena_bytes = (arena + ALIGN - 1) / ALIGN * ALIGN;
    free(bufs);
}

/* The bytes of the arena a tensor occupies, or false when it lives elsewhere (inputs, outputs and
   weights, and their views). */
static bool arena_range(const Graph *g, const Tensor *t, int64_t *lo, int64_t *hi) {
    const Tensor *r = root_of((Tensor *)t);
    if (r->kind != TK_ACT || is_graph_output(g, r) || is_graph_output(g, t))
        return false;
    *lo = t->offset;
    *hi = t->offset + tensor_bytes(t);
    return true;
}

/* The part of the proof that looks through views: every view lies inside its root, and an op's result
   overlaps none of its inputs, except the one input it was planned to overwrite in place, element for
   element (same bytes, same shape). */
static bool verify_views(const Graph *g) {
    bool ok = true;
    for (int i = 0; i < g->tensors.len; i++) {
        const Tensor *t = g->tensors.items[i], *r = root_of((Tensor *)t);
        int64_t lo, hi;
        if (t != r && arena_range(g, t, &lo, &hi) && (lo < r->offset || hi > r->offset + tensor_bytes(r))) {
            fprintf(stderr, "memory plan: view %s lies outside %s\n", t->name, r->name);
            ok = false;
        }
    }
    for (int i = 0; i < g->ops.len; i++) {
        const Op *op = g->ops.items[i];
        int64_t ylo, yhi, xlo, xhi;
        if (op_is_view(op) || !arena_range(g, op->out, &ylo, &yhi))
            continue;
        for (int j = 0; j < op->in.len; j++) {
            const Tensor *x = op->in.items[j];
            if (!arena_range(g, x, &xlo, &xhi) || xhi <= ylo || yhi <= xlo)
                continue;
            bool in_place = op->out->view_of == x && may_run_in_place(op->kind) && xlo == ylo && shape_equal(x, op->out);
            if (!in_place) {
                fprintf(stderr, "memory plan: %s (op %d) writes over its input %s, which it still reads\n", op->out->name, op->id,
                        x->name);
                ok = false;
            }
        }
    }
    return ok;
}

/* Proves the plan: every buffer inside the arena, and no two buffers that are live at the same op
   share a byte. */
bool verify_memory_plan(const Graph *g) {
    int n;
    Buffer *bufs = collect_buffers(g, &n);
    bool ok = true;
    for (int i = 0; i < n; i++) {
        bufs[i].offset = bufs[i].root ? bufs[i].root->offset : bufs[i].scratch_of->scratch_offset;
        if (bufs[i].offset < 0 || bufs[i].offset + bufs[i].bytes > g->arena_bytes) {
            fprintf(stderr, "memory plan: buffer %d lies outside the arena\n", i);
            ok = false;
        }
    }
    for (int i = 0; i < n && ok; i++) {
        for (int j = i + 1; j < n; j++) {
            Buffer *a = &bufs[i], *b = &bufs[j];
            if (live_together(a, b) && a->offset < b->offset + b->bytes && b->offset < a->offset + a->bytes) {
                fprintf(stderr, "memory plan: %s and %s are live together and overlap\n", a->root ? a->root->name : "scratch",
                        b->root ? b->root->name : "scratch");
                ok = false;
            }
        }
    }
    free(bufs);
    return ok && verify_views(g);
}

/*
 * choose_layouts.c — channel-blocked activations between the convolutions that can use them.
 *
 * A conv2d whose output channels are a multiple of 16 runs fastest on the blocked layout NCHW16c of
 * runtime/kernels/nnk_conv_nchwc.h, reading its input where it lies (no im2col) and writing its output
 * in the same layout for the next one: with groups = 1, or groups of 16 channels or more (ResNeXt's later
 * stages), or groups of 4 or 8 with as many input as output channels (its first stages, computed with
 * a block's 16 channels, zeros between the groups, which still beats leaving the layout twice).
 * Depthwise convolutions (and groups of 2) stay on their own kernel, plain. This pass walks the ops in order and gives each
 * result a layout:
 *
 *   - such a convolution's result is blocked when its input is: blocked, or a model's input, which it reads
 *     plain when it has fewer than 16 channels or a multiple of none (an RGB image) and converts to
 *     blocked otherwise; a convolution of a plain intermediate stays plain (a blocked product), so that
 *     networks that keep leaving the layout (depthwise blocks, concatenations) pay no conversions;
 *     when it pads, a pad_plane op first copies its input into a zero-padded plane, so that the
 *     convolution's inner loops need no test;
 *   - an elementwise op whose operands all have its shape stays blocked when one of them is (the others
 *     are converted): an activation, a residual add;
 *   - max pooling, average pooling (divided by the window's size), batch norm and a concat of channels
 *     (parts of multiples of 16) stay blocked; a global average pool reads blocked and writes plain (for
 *     a 1×1 plane the two layouts are the same bytes);
 *   - every other op reads plain: a to_plain op converts a blocked input once, before its first such
 *     reader, and so does every model output.
 *
 * The conversions cost one pass over a tensor each; ResNet-style networks need one, for the input of
 * the classifier's pooling-free flatten at most. `--emit ir` shows each tensor's layout.
 */
#include "nnc.h"
#include "kernels/nnk.h"

#include <stdlib.h>
#include <string.h>

enum {
    CB = 16,
    GROUP_MIN = 4,   /* output channels of a group, at least, for a grouped conv2d on the blocked tiles */
};

static bool is_blocked(const Tensor *t) { return t->layout == LAYOUT_NCHW16C; }

/* Whether the output of conv2d `op` can be blocked, given its operands' layouts so far. */
static bool conv_blockable(const Op *op) {
    if (op->kind != OPK_CONV2D)
        return false;
    const Tensor *x = op->in.items[0], *y = op->out;
    if (y->rank != 4 || y->dims[1] % CB != 0 || tensor_numel(y) == 0)
        return false;
    int64_t groups = op->a.groups;
    if (groups > 1 && (!nnk_conv_nchwc_groups_ok((int)x->dims[1], (int)y->dims[1], (int)groups) || y->dims[1] / groups < GROUP_MIN))
        return false;
    /* a chain of blocked ops starts at a model's input: a plain intermediate (after a depthwise
       convolution, a concat, a broadcast) stays plain, which costs no conversion either way */
    if (!is_blocked(x) && x->kind != TK_INPUT)
        return false;
    if (op->a.residual && !is_blocked(op->in.items[op->a.residual]))
        return false;
    const Tensor *w = op->in.items[1];   /* rearranged at load for the tiles, so read by nothing else */
    if (w->kind != TK_WEIGHT || w->uses != 1)
        return false;
    return true;
}

static bool elementwise_blockable(const Op *op) {
    if (!(op_info[op->kind].props & OPF_ELEMENTWISE) || op->out->rank != 4 || op->out->dims[1] % CB != 0)
        return false;
    bool any = false;
    for (int j = 0; j < op->in.len; j++) {
        const Tensor *t = op->in.items[j];
        if (t->kind == TK_WEIGHT || t->rank != 4 || memcmp(t->dims, op->out->dims, sizeof(int64_t) * 4) != 0)
            return false;
        any |= is_blocked(t);
    }
    return any;
}

/* An average pool whose divisor is the window's size (nnk_avgpool_nchwc). */
static bool avgpool_blockable(const Op *op) {
    return op->kind == OPK_AVGPOOL && !op->a.ceil_mode && op->a.count_include_pad;
}

/* A concat of channels, each part a multiple of 16, one of them blocked: per image, blocked parts lie one
   after the other as plain ones do, so the copy is the same. */
static bool concat_blockable(const Op *op) {
    if (op->kind != OPK_CONCAT || op->a.axis != 1 || op->out->rank != 4)
        return false;
    bool any = false;
    for (int j = 0; j < op->in.len; j++) {
        const Tensor *t = op->in.items[j];
        if (t->kind == TK_WEIGHT || t->dims[1] % CB != 0)
            return false;
        any |= is_blocked(t);
    }
    return any;
}

typedef struct {
    Graph *g;
    Vec ops;          /* the new order */
    Tensor **plain;   /* tensor id -> its to_plain copy, once made */
    Tensor **blocked; /* tensor id -> its to_blocked copy, once made */
} Layouts;

/* A new op of `kind` reading x, before `before` (whose source location it takes), with a result of
   dims in `layout`. */
static Tensor *insert(Layouts *L, OpKind kind, Tensor *x, const Op *before, const int64_t *dims, Layout layout, const char *name) {
    Op *op = xcalloc(1, sizeof *op);   /* (not new_op, which appends to the order being rebuilt) */
    op->kind = kind;
    op->a.act = op_info[kind].act;
    op->loc = before->loc;
    op->chain = before->chain;
    vec_push(&L->ops, op);
    op_add_input(op, x);
    op->out = new_tensor(L->g, TK_ACT, name, 4, dims, before->loc);
    op->out->producer = op;
    op->out->layout = layout;
    op->out->ref_id = x->ref_id;   /* the same value (padded: a different size, which --bisect skips) */
    return op->out;
}

static Tensor *to_plain(Layouts *L, Tensor *t, const Op *before) {
    if (!L->plain[t->id])
        L->plain[t->id] = insert(L, OPK_TO_PLAIN, t, before, t->dims, LAYOUT_PLAIN, format("%s_plain", t->name));
    return L->plain[t->id];
}

static Tensor *to_blocked(Layouts *L, Tensor *t, const Op *before) {
    if (!L->blocked[t->id])
        L->blocked[t->id] = insert(L, OPK_TO_BLOCKED, t, before, t->dims, LAYOUT_NCHW16C, format("%s_blocked", t->name));
    return L->blocked[t->id];
}

/* The convolution's input zero-padded to exactly the plane its windows cover, its own padding then 0. */
static void pad_input(Layouts *L, Op *op) {
    Attrs *a = &op->a;
    Tensor *x = op->in.items[0];
    const Tensor *y = op->out;
    int64_t dims[4] = {x->dims[0], x->dims[1], (y->dims[2] - 1) * a->stride[0] + (int64_t)(a->kernel[0] - 1) * a->dilation[0] + 1,
                       (y->dims[3] - 1) * a->stride[1] + (int64_t)(a->kernel[1] - 1) * a->dilation[1] + 1};
    if (!a->pad[0] && !a->pad[1] && dims[2] <= x->dims[2] && dims[3] <= x->dims[3])
        return;
    Tensor *p = insert(L, OPK_PAD_PLANE, x, op, dims, x->layout, format("%s_padded", x->name));
    Op *pad = p->producer;
    pad->a.pad[0] = a->pad[0];
    pad->a.pad[1] = a->pad[1];
    op->in.items[0] = p;
    a->pad[0] = a->pad[1] = a->pad[2] = a->pad[3] = 0;
}

void pass_choose_layouts(Graph *g) {
    /* each op adds at most two tensors (a conversion or a padded copy per operand), each output one */
    size_t most = (size_t)g->tensors.len + 8 * (size_t)g->ops.len + (size_t)g->outputs.len + 16;
    Layouts L = {.g = g, .plain = xcalloc(most, sizeof(Tensor *)), .blocked = xcalloc(most, sizeof(Tensor *))};
    Vec old = g->ops;
    for (int i = 0; i < old.len; i++) {
        Op *op = old.items[i];
        if (conv_blockable(op)) {
            Tensor *x = op->in.items[0];
            if (!is_blocked(x) && x->dims[1] % CB == 0)
                op->in.items[0] = to_blocked(&L, x, op);
            pad_input(&L, op);
            op->out->layout = LAYOUT_NCHW16C;
        } else if (elementwise_blockable(op) || concat_blockable(op)) {   /* its other operands converted */
            for (int j = 0; j < op->in.len; j++) {
                Tensor *t = op->in.items[j];
                if (!is_blocked(t))
                    op->in.items[j] = to_blocked(&L, t, op);
            }
            op->out->layout = LAYOUT_NCHW16C;
        } else if ((op->kind == OPK_MAXPOOL || op->kind == OPK_BATCHNORM || avgpool_blockable(op)) && op->out->rank == 4 &&
                   is_blocked(op->in.items[0])) {
            op->out->layout = LAYOUT_NCHW16C;
        } else if (op->kind == OPK_ADAPTIVE_AVGPOOL && is_blocked(op->in.items[0]) && op->out->dims[2] == 1 && op->out->dims[3] == 1) {
            /* reads blocked, writes plain */
        } else {
            for (int j = 0; j < op->in.len; j++) {
                Tensor *t = op->in.items[j];
                if (is_blocked(t))
                    op->in.items[j] = to_plain(&L, t, op);
            }
        }
        vec_push(&L.ops, op);
    }
    for (int i = 0; i < g->outputs.len; i++) {
        Tensor *t = g->outputs.items[i];
        if (!is_blocked(t))
            continue;
        const Op *last = VEC_AT(L.ops, L.ops.len - 1, Op *);
        Tensor *p = to_plain(&L, t, last);
        /* the model's output keeps its name */
        p->name = t->name;
        t->name = format("%s_blocked", t->name);
        g->outputs.items[i] = p;
    }
    free(old.items);
    g->ops = L.ops;
    free(L.plain);
    free(L.blocked);
    for (int i = 0; i < g->ops.len; i++)
        VEC_AT(g->ops, i, Op *)->id = i;
    graph_recount_uses(g);
}

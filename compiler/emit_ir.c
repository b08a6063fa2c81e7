/*
 * emit_ir.c — the graph as text (--emit ir), as Graphviz (--emit dot), and as a list of weights
 * (--emit weights: one `KEY [d0, d1, ...]` a line, the format tools/torch_keys.py prints for
 * torchvision models, so the two can be compared line for line).
 *
 *   input  %image f32[1, 3, 224, 224]
 *   %3 = conv2d(%image, @conv1.weight) kernel=[7, 7] stride=[2, 2] pad=[3, 3, 3, 3] -> f32[1, 64, 112, 112]  # conv1, resnet50.net:18:9
 *   output %176 f32[1, 1000]
 */
#include "nnc.h"

static void tensor_ref(Buf *b, const Tensor *t) {
    switch (t->kind) {
    case TK_INPUT: buf_printf(b, "%%%s", t->name); break;
    case TK_WEIGHT: buf_printf(b, "@%s", t->name); break;
    case TK_ACT: buf_printf(b, "%%%d", t->id); break;
    }
}

static void pair_attr(Buf *b, const char *name, const int *v, int n) {
    buf_printf(b, " %s=[", name);
    for (int i = 0; i < n; i++)
        buf_printf(b, i ? ", %d" : "%d", v[i]);
    buf_puts(b, "]");
}

/* The attributes that matter for each kind, as name=value. */
static void op_attrs(Buf *b, const Op *op) {
    const Attrs *a = &op->a;
    switch (op->kind) {
    case OPK_CONV2D:
        pair_attr(b, "kernel", a->kernel, 2);
        pair_attr(b, "stride", a->stride, 2);
        pair_attr(b, "pad", a->pad, 4);
        if (a->dilation[0] != 1 || a->dilation[1] != 1)
            pair_attr(b, "dilation", a->dilation, 2);
        if (a->groups != 1)
            buf_printf(b, " groups=%d", a->groups);
        break;
    case OPK_MAXPOOL:
    case OPK_AVGPOOL:
        pair_attr(b, "kernel", a->kernel, 2);
        pair_attr(b, "stride", a->stride, 2);
        pair_attr(b, "pad", a->pad, 4);
        break;
    case OPK_BATCHNORM:
    case OPK_LAYERNORM: buf_printf(b, " eps=%g", a->eps); break;
    case OPK_MHA:
    case OPK_CROSS_ATTENTION:
    case OPK_SDPA: {
        static const char *const masks[] = {"", " attn_mask=add", " attn_mask=keep", " attn_mask=drop"};   /* the last input */
        if (op->kind != OPK_SDPA)
            buf_printf(b, " heads=%d", a->heads);
        if (a->causal)
            buf_puts(b, " causal");
        buf_puts(b, masks[a->mask]);
        break;
    }
    case OPK_INDEX_SELECT:
    case OPK_REDUCE: {
        static const char *const reduce[] = {[OPK_SUM] = "sum", [OPK_MEAN] = "mean", [OPK_MAX] = "max", [OPK_MIN] = "min"};
        buf_printf(b, " axis=%d", a->axis);
        if (op->kind == OPK_REDUCE)
            buf_printf(b, " %s", reduce[a->reduce]);
        break;
    }
    case OPK_FULL: buf_printf(b, " value=%g", a->value); break;
    case OPK_ARANGE: buf_printf(b, " start=%g step=%g", a->value, a->lo); break;
    case OPK_WHERE:
        if (a->scalars & 1)
            buf_printf(b, " a=%g", a->lo);
        if (a->scalars & 2)
            buf_printf(b, " b=%g", a->hi);
        break;
    case OPK_GELU:
        if (a->act == ACT_GELU_TANH)
            buf_puts(b, " approximate=tanh");
        break;
    case OPK_SCALAR:
        if (a->scalar_first)
            buf_printf(b, " %g %s x", a->value, operator_text(a->binop));
        else
            buf_printf(b, " x %s %g", operator_text(a->binop), a->value);
        break;
    case OPK_SOFTMAX:
    case OPK_CONCAT: buf_printf(b, " axis=%d", a->axis); break;
    case OPK_PAD:
        buf_printf(b, " axis=%d before=%lld after=%lld value=%g", a->axis, (long long)a->before, (long long)a->after, a->value);
        break;
    case OPK_SLICE: buf_printf(b, " axis=%d start=%lld step=%lld", a->axis, (long long)a->start, (long long)a->step); break;
    case OPK_TRANSPOSE: pair_attr(b, "perm", a->perm, op->out->rank); break;
    default: break;
    }
    if (op_info[op->kind].props & OPF_EPILOGUE) {   /* a fused epilogue */
        if (a->act1)
            buf_printf(b, " +%s", act_name[a->act1]);
        if (a->residual)
            buf_printf(b, " +residual");
        if (a->act2)
            buf_printf(b, " +%s", act_name[a->act2]);
    }
}

void emit_ir(FILE *out, const Graph *g) {
    Buf b = {0};
    buf_printf(&b, "model %s  # %d ops, arena %lld bytes (lower bound %lld), target %s\n", g->name, g->ops.len, (long long)g->arena_bytes,
               (long long)g->lower_bound, g->target ? g->target->name : "none");
    for (int i = 0; i < g->inputs.len; i++) {
        Tensor *t = g->inputs.items[i];
        buf_printf(&b, "input  %%%s f32%s\n", t->name, shape_text(t->rank, t->dims));
    }
    for (int i = 0; i < g->weights.len; i++) {
        Tensor *t = g->weights.items[i];
        buf_printf(&b, "weight @%s %s%s%s\n", t->name, t->dtype == DT_INDEX ? "index" : "f32", shape_text(t->rank, t->dims),
                   t->derived ? "  # derived at load time" : t->dtype == DT_INDEX ? format("  # values below %lld", (long long)t->index_limit) : "");
    }
    for (int i = 0; i < g->ops.len; i++) {
        Op *op = g->ops.items[i];
        buf_printf(&b, "%%%d = %s(", op->out->id, op_info[op->kind].name);
        for (int j = 0; j < op->in.len; j++) {
            if (j)
                buf_puts(&b, ", ");
            tensor_ref(&b, op->in.items[j]);
        }
        buf_puts(&b, ")");
        op_attrs(&b, op);
        buf_printf(&b, " -> f32%s%s", shape_text(op->out->rank, op->out->dims), op->out->layout == LAYOUT_NCHW16C ? " nchw16c" : "");
        if (op->out->view_of)
            buf_printf(&b, " (view of %%%d%s)", op->out->view_of->id, op->kind == OPK_RESHAPE || op->kind == OPK_SLICE || op->kind == OPK_TRANSPOSE ? "" : ", in place");
        if (op->out->offset >= 0)
            buf_printf(&b, " @arena+%lld", (long long)op->out->offset);
        if (op->impl.family != IMPL_LOOP && op->impl.family != IMPL_NONE)
            buf_printf(&b, " [%s]", impl_text(op));
        buf_printf(&b, "  # %s%s%s:%d:%d\n", op->label ? op->label : "", op->label ? ", " : "", op->loc.file ? op->loc.file->path : "?",
                   op->loc.line, op->loc.col);
    }
    for (int i = 0; i < g->outputs.len; i++) {
        Tensor *t = g->outputs.items[i];
        buf_puts(&b, "output ");
        tensor_ref(&b, t);
        buf_printf(&b, " f32%s\n", shape_text(t->rank, t->dims));
    }
    fputs(b.buf, out);
}

void emit_weight_list(FILE *out, const Graph *g) {
    for (int i = 0; i < g->weights.len; i++) {
        Tensor *t = g->weights.items[i];
        if (!t->derived)
            fprintf(out, "%s %s\n", t->name, shape_text(t->rank, t->dims));
    }
}

static void dot_node_name(Buf *b, const Tensor *t) {
    if (t->kind == TK_ACT)
        buf_printf(b, "op%d", t->producer->id);
    else
        buf_printf(b, "in%d", t->id);
}

void emit_dot(FILE *out, const Graph *g) {
    Buf b = {0};
    buf_printf(&b, "digraph \"%s\" {\n  rankdir=TB;\n  node [fontname=\"Helvetica\", fontsize=10];\n", g->name);
    for (int i = 0; i < g->inputs.len; i++) {
        Tensor *t = g->inputs.items[i];
        buf_printf(&b, "  in%d [shape=oval, label=\"%s\\n%s\"];\n", t->id, t->name, shape_text(t->rank, t->dims));
    }
    for (int i = 0; i < g->ops.len; i++) {
        Op *op = g->ops.items[i];
        Buf extra = {0};   /* fused epilogue and where the result lives */
        if (op->a.act1)
            buf_printf(&extra, " +%s", act_name[op->a.act1]);
        if (op->a.residual)
            buf_puts(&extra, " +residual");
        if (op->a.act2)
            buf_printf(&extra, " +%s", act_name[op->a.act2]);
        if (op->impl.family != IMPL_LOOP && op->impl.family != IMPL_NONE)
            buf_printf(&extra, "\\n%s", impl_text(op));
        if (op->out->view_of)
            buf_printf(&extra, "\\nview of %%%d", op->out->view_of->id);
        else if (op->out->offset >= 0)
            buf_printf(&extra, "\\narena+%lld", (long long)op->out->offset);
        buf_printf(&b, "  op%d [shape=box, label=\"%s%s%s%s\\n%s\"];\n", op->id, op_info[op->kind].name, op->label ? "\\n" : "",
                   op->label ? op->label : "", extra.buf ? extra.buf : "", shape_text(op->out->rank, op->out->dims));
        for (int j = 0; j < op->in.len; j++) {
            Tensor *t = op->in.items[j];
            if (t->kind == TK_WEIGHT)
                continue;
            buf_puts(&b, "  ");
            dot_node_name(&b, t);
            buf_printf(&b, " -> op%d;\n", op->id);
        }
    }
    for (int i = 0; i < g->outputs.len; i++) {
        Tensor *t = g->outputs.items[i];
        buf_printf(&b, "  out%d [shape=oval, label=\"output %d\\n%s\"];\n  ", i, i, shape_text(t->rank, t->dims));
        dot_node_name(&b, t);
        buf_printf(&b, " -> out%d;\n", i);
    }
    buf_puts(&b, "}\n");
    fputs(b.buf, out);
}

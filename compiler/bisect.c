/*
 * bisect.c — `nnc FILE.net --bisect`: which op of the optimised program computes a wrong result?
 *
 * The model is elaborated twice. The first graph, as written, is run by the reference evaluator
 * (reference.c) keeping every op's result. The second is optimised as for C (passes, kernel choices for
 * the target, memory plan), emitted with a hook that sees each op's result (EmitOptions.dumps), built,
 * and run on the same weights and inputs with --dump. Then the ops are compared in the order they run:
 * an optimised op's result is compared with the reference tensor whose value it holds (Tensor.ref_id:
 * a conv2d that absorbed its batch norm and relu holds the relu's), and the first one outside its
 * tolerance is reported as an error at its source line, with the block calls that led there.
 *
 * The tolerance of each tensor follows from how it is computed. An op that sums K products in float
 * rounds each of them: its result may be off by about K units in the last place of the largest terms
 * (taken as 2^-23 · (4 + 2K) relative to max|ref|), and an op passes on the error of its worst input
 * (doubled by those that can amplify it: division, exp, log, normalisations, softmax and attention). A wrong kernel is usually off by far
 * more; the figure is printed with every verdict so that a near miss can be judged.
 */
#include "nnc.h"

#include "kernels/nnk_conv_nchwc.h"

#include "reference.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum { MAX_REL_TOL_LOG2 = -6 };   /* tolerances are capped at 1/64 of max|ref|: beyond that nothing is checked */

/* How many products each element of op's result sums (1 for elementwise ops). */
static double reduction_length(const Op *op) {
    const Tensor *x = op->in.len ? op->in.items[0] : NULL, *y = op->out;
    const Attrs *a = &op->a;
    switch (op->kind) {
    case OPK_CONV2D: return (double)(x->dims[1] / a->groups) * a->kernel[0] * a->kernel[1];
    case OPK_LINEAR: return (double)x->dims[x->rank - 1];
    case OPK_MATMUL: {
        Tensor a2, b2;
        matmul_operands(op->in.items[0], op->in.items[1], &a2, &b2);
        return (double)a2.dims[a2.rank - 1];
    }
    case OPK_MHA:
    case OPK_CROSS_ATTENTION: {
        const Tensor *mem = op->kind == OPK_MHA ? x : op->in.items[1];
        return 2.0 * (double)x->dims[2] + (double)mem->dims[1];   /* the projections and the softmax */
    }
    case OPK_SDPA: return (double)x->dims[x->rank - 1] + (double)VEC_AT(op->in, 1, Tensor *)->dims[x->rank - 2];
    case OPK_LAYERNORM: return (double)x->dims[x->rank - 1];
    case OPK_SOFTMAX:
    case OPK_REDUCE: return (double)x->dims[a->axis];
    case OPK_MAXPOOL:
    case OPK_AVGPOOL: return (double)a->kernel[0] * a->kernel[1];
    case OPK_ADAPTIVE_AVGPOOL: return (double)(x->dims[2] / y->dims[2] + 1) * (double)(x->dims[3] / y->dims[3] + 1);
    default: return 1.0;
    }
}

/* Whether the op may multiply the relative error of its inputs by more than a small factor. */
static bool amplifies(const Op *op) {
    return op->kind == OPK_DIV || op->kind == OPK_EXP || op->kind == OPK_LOG || op->kind == OPK_RSQRT || op->kind == OPK_SOFTMAX ||
           op->kind == OPK_LAYERNORM || op->kind == OPK_BATCHNORM || op->kind == OPK_MHA || op->kind == OPK_CROSS_ATTENTION ||
           op->kind == OPK_SDPA || (op->kind == OPK_SCALAR && op->a.binop == OP_DIV);
}

/* rel[t]: the relative tolerance of every tensor of the reference graph (inputs and weights exact). */
double *reference_tolerances(const Graph *g) {
    double *rel = xcalloc((size_t)g->tensors.len + 1, sizeof *rel), cap = ldexp(1.0, MAX_REL_TOL_LOG2);
    for (int i = 0; i < g->ops.len; i++) {
        const Op *op = g->ops.items[i];
        double worst_in = 0;
        for (int j = 0; j < op->in.len; j++)
            worst_in = fmax(worst_in, rel[VEC_AT(op->in, j, Tensor *)->id]);
        double r = ldexp(4.0 + 2.0 * reduction_length(op), -23) + worst_in * (amplifies(op) ? 2.0 : 1.0);
        if (op->a.act != ACT_NONE || op->kind == OPK_SOFTMAX || op->kind == OPK_MHA || op->kind == OPK_SDPA)
            r += 1e-6;   /* the kernels' e^x and erf: within 2 ulp and 7e-7 */
        rel[op->out->id] = fmin(r, cap);
    }
    return rel;
}

static int run_command(const char *cmd) {
    int status = system(cmd);
    return status == -1 || !WIFEXITED(status) ? -1 : WEXITSTATUS(status);
}

/* The shell's single-quoted form of s. */
static const char *quoted(const char *s) {
    Buf b = {0};
    buf_puts(&b, "'");
    for (; *s; s++)
        buf_puts(&b, *s == '\'' ? "'\\''" : (char[2]){*s, 0});
    buf_puts(&b, "'");
    return buf_take(&b);
}

static float *read_dump(const char *path, int64_t n) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    float *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    bool ok = v && fread(v, sizeof *v, (size_t)n, f) == (size_t)n && fgetc(f) == EOF;
    fclose(f);
    if (!ok) {
        free(v);
        return NULL;
    }
    return v;
}

static const char *op_name(const Op *op) {
    return op->label ? format("%s %s", op_info[op->kind].name, op->label) : op_info[op->kind].name;
}

int bisect_main(Graph *ref, Graph *opt, const Target *target, const EmitOptions *emit, const RefOptions *o) {
    if (!ref || !opt) {
        fprintf(stderr, "nnc: internal error: --bisect: the model elaborated once but not twice\n");
        return 3;
    }
    if (o->inputs.len != 0 && o->inputs.len != ref->inputs.len) {
        fprintf(stderr, "nnc: error: model '%s' has %d input%s, found %d --input: give one for each, in order, or none\n", ref->name,
                ref->inputs.len, ref->inputs.len == 1 ? "" : "s", o->inputs.len);
        return 2;
    }
    /* the reference, keeping every op's result */
    double **vals = xcalloc((size_t)ref->tensors.len + 1, sizeof *vals);
    int status = reference_load(ref, o, vals);
    if (status >= 0)
        return status;
    char err[512];
    if (!reference_eval(ref, vals, true, err, sizeof err)) {
        fprintf(stderr, "nnc: error: --bisect: the reference: %s\n", err);
        return 1;
    }
    double *rel = reference_tolerances(ref);

    /* the optimised program, with dumps */
    opt->target = target;
    run_passes(opt, emit->opt_level);
    plan_memory(opt);
    if (!verify_graph(opt) || !verify_memory_plan(opt)) {
        fprintf(stderr, "nnc: internal error: the graph or its memory plan is inconsistent\n");
        return 3;
    }
    EmitOptions eo = *emit;
    eo.main_program = true;
    eo.dumps = true;
    eo.embed_weights = false;
    eo.header_name = "bisect.h";
    eo.break_op = getenv("NNC_TEST_BREAK");   /* tests only: one op made wrong on purpose */
    Buf c = {0}, h = {0};
    if (!emit_c(opt, &eo, &c, &h))
        return 1;
    char dir[] = "/tmp/nnc-bisect-......";
    memset(dir + 16, 'X', 6);   /* mkdtemp's template */
    if (!mkdtemp(dir)) {
        fprintf(stderr, "nnc: error: cannot create a temporary directory: %s\n", strerror(errno));
        return 2;
    }
    const char *exe = format("%s/bisect", dir), *dumps = format("%s/dumps", dir);
    if ((status = build_c_program(exe, eo.header_name, target, c.buf, h.buf)) != 0)
        return status;
    mkdir(dumps, 0700);
    Buf cmd = {0};
    buf_printf(&cmd, "%s --dump %s --threads %d", quoted(exe), quoted(dumps), emit->threads);
    if (o->weights)
        buf_printf(&cmd, " --weights %s", quoted(o->weights));
    for (int i = 0; i < o->inputs.len; i++)
        buf_printf(&cmd, " --input %s", quoted(o->inputs.items[i]));
    const char *log = format("%s/stderr", dir);
    buf_printf(&cmd, " > /dev/null 2> %s", quoted(log));   /* its warnings repeat the reference's */
    if (run_command(cmd.buf) != 0) {
        fprintf(stderr, "nnc: error: --bisect: the optimised program failed: %s\n", cmd.buf);
        FILE *f = fopen(log, "r");
        for (int ch; f && (ch = fgetc(f)) != EOF;)
            fputc(ch, stderr);
        if (f)
            fclose(f);
        return 1;
    }
    unlink(log);

    /* op by op, in the order the program ran them */
    int checked = 0, closest_op = -1;
    double closest = -1;
    status = 0;
    for (int i = 0; i < opt->ops.len && status == 0; i++) {
        const Op *op = opt->ops.items[i];
        const Tensor *t = op->out;
        int64_t n = tensor_numel(t);
        const double *want = t->ref_id < ref->tensors.len ? vals[t->ref_id] : NULL;
        if (!want || tensor_numel(ref->tensors.items[t->ref_id]) != n)
            continue;   /* (a value the graph as written does not have) */
        const char *path = format("%s/op_%d.bin", dumps, op->id);
        float *got = read_dump(path, n);
        if (!got) {
            fprintf(stderr, "nnc: error: --bisect: no dump of op %d (%s) in %s\n", op->id, op_name(op), path);
            status = 1;
            break;
        }
        if (t->layout == LAYOUT_NCHW16C) {   /* a blocked result (choose_layouts.c), compared in the plain layout */
            float *plain = xcalloc((size_t)n + 1, sizeof *plain);
            int64_t C = t->dims[1], HW = t->dims[2] * t->dims[3];
            for (int64_t b = 0; b < t->dims[0]; b++)
                nnk_from_nchwc(plain + b * C * HW, got + b * C * HW, (int)C, HW, 0, (int)C);
            free(got);
            got = plain;
        }
        double scale = 0, worst = 0;
        int64_t at = 0;
        for (int64_t k = 0; k < n; k++)
            scale = fmax(scale, fabs(want[k]));
        for (int64_t k = 0; k < n; k++) {
            double d = fabs((double)got[k] - want[k]);
            if (isnan(d) && !(isnan(got[k]) && isnan(want[k])))
                d = INFINITY;
            if (d > worst) {
                worst = d;
                at = k;
            }
        }
        double tol = rel[t->ref_id] * scale + 1e-30;
        checked++;
        if (!(worst <= tol)) {
            const Op *producer = VEC_AT(ref->tensors, t->ref_id, Tensor *)->producer;
            double k = fmax(reduction_length(op), producer ? reduction_length(producer) : 1);
            diag_error(op->loc, "%s computes its result %s wrongly: max |got - want| is %.3g at element %lld (got %.9g, want %.9g), "
                       "beyond its tolerance %.3g (%.2g of max|want| %.4g, for sums of %.0f products)",
                       op_name(op), shape_text(t->rank, t->dims), worst, (long long)at, (double)got[at], want[at], tol, rel[t->ref_id],
                       scale, k);
            diag_chain(op->chain);
            fprintf(stderr, "bisect: %d op%s before it agree with the reference\n", checked - 1, checked == 2 ? "" : "s");
            status = 1;
        } else if (worst / tol > closest) {
            closest = worst / tol;
            closest_op = i;
        }
        free(got);
    }
    if (status == 0) {
        printf("bisect: all %d ops of model '%s' agree with the reference", checked, opt->name);
        if (closest_op >= 0)
            printf(" (the closest: op %d, %s, at %.2g of its tolerance)", closest_op, op_name(opt->ops.items[closest_op]), closest);
        printf("\n");
    }
    for (int k = 0; k < opt->ops.len; k++)
        unlink(format("%s/op_%d.bin", dumps, VEC_AT(opt->ops, k, Op *)->id));
    rmdir(dumps);
    unlink(exe);
    rmdir(dir);
    return status;
}

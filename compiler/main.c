/*
 * main.c — the command line, and the pipeline as one straight sequence of calls:
 *
 *   load_program (lexer + parser, imports)  ->  elaborate  ->  passes  ->  plan_memory  ->  emit
 *
 * Exit status: 0 on success, 1 when the program has errors, 2 for a usage problem or a file that
 * cannot be read or written (as cc does).
 */
#include "nnc.h"
#include "reference.h"

#include <errno.h>
#include <math.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char usage[] =
    "usage: nnc FILE.net -o OUT.c [options]     compile a model to C (also writes OUT.h)\n"
    "       nnc FILE.net -o PROGRAM [options]   compile and build a program (as cc does)\n"
    "       nnc FILE.net --emit ir|dot|weights  print the graph, Graphviz, or the weight keys\n"
    "       nnc FILE.net --reference [--weights W] [--input IN]... [--output OUT]...\n"
    "                                           run the model with the reference evaluator\n"
    "       nnc --cflags | --libs               flags to build generated C against the runtime\n"
    "\n"
    "options:\n"
    "  -o OUT               OUT.c: write C and OUT.h; any other name: build the program OUT\n"
    "  --model NAME         the model to compile, when the file defines several\n"
    "  -D NAME=VALUE        override 'let NAME' with a constant expression (batch, size, ...)\n"
    "  --main               add a main() so that the C file builds into a program\n"
    "  --weights FILE       safetensors weights; with --embed-weights, put them into the C\n"
    "  --embed-weights[=f32|f16|bf16]  embed the weights of --weights in the generated C: as F32\n"
    "                       (default), or kept 16-bit in read-only memory and widened op by op into the\n"
    "                       arena when the model runs (F16: 11 significant bits, BF16: 8)\n"
    "  --emit c|ir|dot|weights  what to write (default c)\n"
    "  -O0, -O1, -O2        optimisation level (default -O2)\n"
    "  --no-blocked-layout  keep every tensor plain NCHW (by default -O2 gives the convolutions\n"
    "                       channel-blocked activations, NCHW16c)\n"
    "  --no-winograd        compute 3x3 convolutions directly (by default -O2 runs those on blocked\n"
    "                       planes by Winograd's F(4x4, 3x3), or F(2x2, 3x3) on 14x14 and 7x7 ones)\n"
    "  --threads N          default thread count of the generated program (default 1)\n"
    "  --target NAME        the CPU the kernels are chosen for: native (default: this CPU), generic,\n"
    "                       x86-64-v3 (AVX2+FMA), x86-64-v4 (AVX-512), armv8-a; the C refuses (#error)\n"
    "                       to build for another\n"
    "  --dump-after PASS    print the graph after PASS (dce, fold_bn, fuse_attention, fuse_epilogue,\n"
    "                       choose_layouts, fold_shapes, select_kernels, or all)\n"
    "  --max-ops N          refuse a graph of more than N ops (default 100000)\n"
    "  --max-arena BYTES    refuse a model needing more arena than BYTES (default 16 GiB)\n"
    "  --max-weights BYTES  refuse a model with more weights than BYTES (default 16 GiB)\n"
    "  --stats              print arena_bytes=N lower_bound=M weights_bytes=W ops=K\n"
    "                       (and stop, unless -o is given too)\n"
    "  --arena-budget BYTES fail when the memory plan needs more than BYTES of arena\n"
    "  --emit-test          add a self-test to the program (--self-test): its outputs for pseudo-random\n"
    "                       inputs against the reference's, computed now with --weights\n"
    "  --bisect             build the optimised program, run it and the reference on the same inputs\n"
    "                       (--weights, --input), and name the first op whose result differs\n"
    "  --reference          run the graph as written (before any pass) in double precision, with\n"
    "                       the weights of --weights, instead of writing C\n"
    "  --input FILE         with --reference: one per model input, .npy or raw f32 (default:\n"
    "                       the generated program's pseudo-random inputs)\n"
    "  --output FILE        with --reference: one per model output, written as f32 (.npy or raw);\n"
    "                       outputs without one are summarised on stdout\n"
    "  --version            print the version\n"
    "  --help               print this help\n"
    "\n"
    "environment (when building a program): CC (default clang), CFLAGS (default -O2 -march=native,\n"
    "or the --target's own -march)\n";

typedef struct {
    long long max_arena, max_weights;   /* bytes: refuse bigger plans */
    bool stats;
    long long arena_budget;      /* 0: none */
    const char *input;
    const char *output;
    const char *emit;
    ElabOptions elab;
    EmitOptions emit_opts;
    bool reference;              /* --reference: run the model instead of writing C (reference.c) */
    bool bisect;                 /* --bisect: the optimised program against the reference, op by op (bisect.c) */
    bool emit_test;              /* --emit-test: the program checks itself against the reference's outputs */
    const Target *target;        /* --target; NULL: native */
    RefOptions ref;
} Options;

static _Noreturn void usage_error(const char *fmt, const char *arg) {
    fputs("nnc: error: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs(" (see nnc --help)\n", stderr);
    exit(2);
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int parse_int_arg(const char *opt, const char *v, long lo, long hi) {
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *end || end == v || n < lo || n > hi) {
        fprintf(stderr, "nnc: error: %s expects an integer from %ld to %ld, found '%s'\n", opt, lo, hi, v);
        exit(2);
    }
    return (int)n;
}

static void parse_args(int argc, char **argv, Options *o) {
    o->emit_opts.opt_level = 2;
    o->emit_opts.threads = 1;
    o->max_arena = o->max_weights = 16LL << 30;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE()                                                       \
    do {                                                                   \
        if (!next)                                                         \
            usage_error("option '%s' needs a value", a);                   \
        i++;                                                               \
    } while (0)
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            exit(0);
        } else if (strcmp(a, "--version") == 0) {
            printf("nnc %s\n", NNC_VERSION);
            exit(0);
        } else if (strcmp(a, "--cflags") == 0) {
            printf("%s\n", nnc_cflags());
            exit(0);
        } else if (strcmp(a, "--libs") == 0) {
            printf("%s\n", nnc_libs());
            exit(0);
        } else if (strcmp(a, "-o") == 0) {
            NEED_VALUE();
            o->output = next;
        } else if (strcmp(a, "--model") == 0) {
            NEED_VALUE();
            o->elab.model = next;
        } else if (strncmp(a, "-D", 2) == 0) {
            const char *def = a[2] ? a + 2 : next;
            if (!a[2])
                NEED_VALUE();
            const char *eq = strchr(def, '=');
            if (!eq || eq == def)
                usage_error("-D expects NAME=VALUE, found '%s'", def);
            Define *d = xcalloc(1, sizeof *d);
            d->name = xstrndup(def, (size_t)(eq - def));
            d->value = eq + 1;
            vec_push(&o->elab.defines, d);
        } else if (strcmp(a, "--main") == 0) {
            o->emit_opts.main_program = true;
        } else if (strcmp(a, "--weights") == 0) {
            NEED_VALUE();
            o->emit_opts.weights_path = next;
        } else if (strcmp(a, "--embed-weights") == 0 || strncmp(a, "--embed-weights=", 16) == 0) {
            const char *dt = a[15] ? a + 16 : "f32";
            o->emit_opts.embed_weights = true;
            if (strcmp(dt, "f32") == 0)
                o->emit_opts.embed_dtype = EMBED_F32;
            else if (strcmp(dt, "f16") == 0)
                o->emit_opts.embed_dtype = EMBED_F16;
            else if (strcmp(dt, "bf16") == 0)
                o->emit_opts.embed_dtype = EMBED_BF16;
            else
                usage_error("--embed-weights= expects f32, f16 or bf16, found '%s'", dt);
        } else if (strcmp(a, "--emit") == 0) {
            NEED_VALUE();
            if (strcmp(next, "c") && strcmp(next, "ir") && strcmp(next, "dot") && strcmp(next, "weights"))
                usage_error("--emit expects c, ir, dot or weights, found '%s'", next);
            o->emit = next;
        } else if (strcmp(a, "-O0") == 0 || strcmp(a, "-O1") == 0 || strcmp(a, "-O2") == 0) {
            o->emit_opts.opt_level = a[2] - '0';
        } else if (strcmp(a, "--no-blocked-layout") == 0) {
            plain_layouts = true;
        } else if (strcmp(a, "--no-winograd") == 0) {
            no_winograd = true;
        } else if (strcmp(a, "--target") == 0) {
            NEED_VALUE();
            if (!(o->target = target_named(next)))
                usage_error("--target expects native, generic, x86-64-v3, x86-64-v4 or armv8-a, found '%s'", next);
        } else if (strcmp(a, "--dump-after") == 0 || strncmp(a, "--dump-after=", 13) == 0) {
            const char *pass = a[12] == '=' ? a + 13 : next;
            if (a[12] != '=')
                NEED_VALUE();
            bool known = strcmp(pass, "all") == 0;
            for (int k = 0; pass_names[k] && !known; k++)
                known = strcmp(pass_names[k], pass) == 0;
            if (!known)
                usage_error("--dump-after expects a pass (dce, fold_bn, fuse_attention, fuse_epilogue, choose_layouts, fold_shapes, select_kernels) or all, found '%s'", pass);
            dump_after_pass = pass;
        } else if (strcmp(a, "--threads") == 0) {
            NEED_VALUE();
            o->emit_opts.threads = parse_int_arg(a, next, 1, 1024);
        } else if (strcmp(a, "--stats") == 0) {
            o->stats = true;
        } else if (strcmp(a, "--max-arena") == 0 || strcmp(a, "--max-weights") == 0) {
            NEED_VALUE();
            char *end;
            errno = 0;
            long long v = strtoll(next, &end, 10);
            if (errno || *end || end == next || v <= 0)
                usage_error("%s expects a positive number of bytes", a);
            *(a[6] == 'a' ? &o->max_arena : &o->max_weights) = v;
        } else if (strcmp(a, "--arena-budget") == 0) {
            NEED_VALUE();
            char *end;
            errno = 0;
            o->arena_budget = strtoll(next, &end, 10);
            if (errno || *end || end == next || o->arena_budget <= 0)
                usage_error("--arena-budget expects a positive number of bytes, found '%s'", next);
        } else if (strcmp(a, "--reference") == 0) {
            o->reference = true;
        } else if (strcmp(a, "--bisect") == 0) {
            o->bisect = true;
        } else if (strcmp(a, "--emit-test") == 0) {
            o->emit_test = true;
        } else if (strcmp(a, "--input") == 0 || strcmp(a, "--output") == 0) {
            NEED_VALUE();
            vec_push(a[2] == 'i' ? &o->ref.inputs : &o->ref.outputs, (void *)next);
        } else if (strcmp(a, "--max-ops") == 0) {
            NEED_VALUE();
            o->elab.max_ops = parse_int_arg(a, next, 1, INT_MAX);
        } else if (a[0] == '-' && a[1]) {
            usage_error("unknown option '%s'", a);
        } else if (o->input) {
            usage_error("more than one input file ('%s')", a);
        } else {
            o->input = a;
        }
#undef NEED_VALUE
    }
    if (!o->input)
        usage_error("%s", "no input file");
    if (o->reference && o->bisect)
        usage_error("%s", "--reference and --bisect are two ways to run a model; give one");
    if (o->reference || o->bisect) {   /* they write no C: the options about C or its files do not apply */
        const char *what = o->reference ? "--reference" : "--bisect";
        const char *clash = o->output ? "-o (its outputs go to --output FILE)" : o->emit ? "--emit" : o->emit_opts.embed_weights ? "--embed-weights"
                            : o->emit_opts.main_program ? "--main" : o->stats ? "--stats" : o->arena_budget ? "--arena-budget" : NULL;
        if (clash)
            usage_error(format("%s runs the model and writes no C; it does not take %%s", what), clash);
        if (o->bisect && o->ref.outputs.len)
            usage_error("%s", "--bisect compares every op and writes no outputs; it does not take --output");
        o->ref.weights = o->emit_opts.weights_path;
        return;
    }
    if (o->ref.inputs.len || o->ref.outputs.len)
        usage_error("%s", "--input and --output are options of --reference (a generated program takes them when it runs)");
    if (!o->emit)
        o->emit = "c";
    if (strcmp(o->emit, "c") == 0 && !o->output && !o->stats && !o->arena_budget)
        usage_error("%s", "no output file: give -o OUT.c (or --emit ir to print the graph)");
    if (o->emit_opts.embed_weights && !o->emit_opts.weights_path)
        usage_error("%s", "--embed-weights needs --weights FILE");
    if (o->emit_test && !o->emit_opts.weights_path)
        usage_error("%s", "--emit-test needs --weights FILE (the reference computes the expected outputs with them)");
    if (o->emit_test)
        o->emit_opts.main_program = true;
}

static bool write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "nnc: error: cannot write '%s': %s\n", path, strerror(errno));
        return false;
    }
    fputs(text, f);
    if (fclose(f) != 0) {
        fprintf(stderr, "nnc: error: cannot write '%s': %s\n", path, strerror(errno));
        return false;
    }
    return true;
}

/* `-o NAME` without .c: write the C to a temporary directory and build it, as cc would. */
static int build_program(const Options *o, const char *c_text, const char *h_text) {
    return build_c_program(o->output, o->emit_opts.header_name, o->target, c_text, h_text);
}

/* --emit-test: the reference evaluator's outputs for the generated program's pseudo-random inputs and the
   weights of --weights, with their tolerances, into o->emit_opts. -1 when done, else the exit status. */
static int expected_outputs(const Graph *g, Options *o) {
    RefOptions ref = {.weights = o->emit_opts.weights_path};
    double **vals = xcalloc((size_t)g->tensors.len + 1, sizeof *vals);
    int status = reference_load(g, &ref, vals);
    if (status >= 0)
        return status;
    char err[512];
    if (!reference_eval(g, vals, false, err, sizeof err)) {
        fprintf(stderr, "nnc: error: --emit-test: the reference: %s\n", err);
        return 1;
    }
    double *rel = reference_tolerances(g);
    o->emit_opts.test_expected = xcalloc((size_t)g->outputs.len + 1, sizeof(double *));
    o->emit_opts.test_tolerance = xcalloc((size_t)g->outputs.len + 1, sizeof(double));
    for (int i = 0; i < g->outputs.len; i++) {
        const Tensor *t = g->outputs.items[i];
        double scale = 0;
        for (int64_t k = 0; k < tensor_numel(t); k++)
            scale = fmax(scale, fabs(vals[t->id][k]));
        o->emit_opts.test_expected[i] = vals[t->id];
        o->emit_opts.test_tolerance[i] = rel[t->id] * scale + 1e-30;
    }
    return -1;
}

/* --arena-budget exceeded: name the op at the peak and what is alive there. Returns false. */
static bool over_budget(const Graph *g, long long budget) {
    const Op *peak = g->ops.items[g->peak_op];
    diag_error(peak->loc, "the memory plan needs %lld bytes of arena, more than --arena-budget %lld; the peak (%lld bytes live) is at op %d, %s%s%s",
               (long long)g->arena_bytes, budget, (long long)g->lower_bound, peak->id, op_info[peak->kind].name, peak->label ? " " : "",
               peak->label ? peak->label : "");
    diag_chain(peak->chain);
    /* the tensors alive there: produced at or before the peak, read at or after it */
    Buf b = {0};
    int shown = 0;
    for (int i = 0; i < g->tensors.len; i++) {
        const Tensor *t = g->tensors.items[i];
        const Op *p = t->producer;
        bool current = p && p->id < g->ops.len && g->ops.items[p->id] == p && p->out == t;   /* not removed by a pass */
        if (t->kind != TK_ACT || t->view_of || !current || p->id > g->peak_op || is_graph_output(g, t))
            continue;
        bool read_later = false;
        for (int j = g->peak_op; j < g->ops.len && !read_later; j++) {
            const Op *op = g->ops.items[j];
            for (int k = 0; k < op->in.len; k++)
                if (op->in.items[k] == t || (VEC_AT(op->in, k, Tensor *)->view_of == t))
                    read_later = true;
        }
        if (!read_later && t->producer->id != g->peak_op)
            continue;
        buf_printf(&b, "%s%%%d %s %s (%lld bytes)", shown++ ? ", " : "", t->id, t->name, shape_text(t->rank, t->dims), (long long)tensor_bytes(t));
    }
    fprintf(stderr, "note: alive at the peak: %s\n", b.buf ? b.buf : "nothing");
    fprintf(stderr, "1 error generated.\n");
    return false;
}

static char *stem(const char *path) {
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    return ends_with(base, ".c") ? xstrndup(base, strlen(base) - 2) : xstrdup(base);
}

/* --embed-weights: the file of the weights' bytes beside OUT.c (OUT.weights.bin), by its absolute name so
   that the C builds from any directory; the C array alone when that name cannot be had. */
static char *weights_bin_path(const char *out_c) {
    const char *slash = strrchr(out_c, '/');
    char *dir = slash ? xstrndup(out_c, (size_t)(slash - out_c + (slash == out_c))) : xstrdup(".");
    char *abs = realpath(dir, NULL);
    return abs ? format("%s/%s.weights.bin", strcmp(abs, "/") ? abs : "", stem(out_c)) : NULL;
}

/* -o PROGRAM with --embed-weights: a temporary file for the weights' bytes while the program builds. */
static char *temp_file(void) {
    char *path = xstrdup("/tmp/nnc-weights-......");
    memset(path + strlen(path) - 6, 'X', 6);   /* mkstemp's template */
    int fd = mkstemp(path);
    if (fd < 0)
        return NULL;
    close(fd);
    return path;
}

#ifdef NNC_SANITIZE
#include <sanitizer/lsan_interface.h>
#endif

int main(int argc, char **argv) {
#ifdef NNC_SANITIZE
    __lsan_disable();   /* nnc frees nothing on purpose: a compile is short */
#endif
    Options o = {0};
    parse_args(argc, argv, &o);
    diag_set_color(isatty(2) && !getenv("NO_COLOR"));
    diag_error_limit = 20;

    struct stat st;
    if (stat(o.input, &st) != 0 || S_ISDIR(st.st_mode) || access(o.input, R_OK) != 0) {
        fprintf(stderr, "nnc: error: cannot read '%s': %s\n", o.input, S_ISDIR(st.st_mode) ? "Is a directory" : strerror(errno));
        return 2;
    }

    Vec decls = {0};
    bool loaded = load_program(o.input, &decls);
    Graph *g = loaded ? elaborate(&decls, &o.elab) : NULL;
    if (!g) {
        if (diag_usage_error)   /* a bad -D or --model: the command line's fault */
            return 2;
        if (diag_error_count > 0)
            fprintf(stderr, "%d error%s generated.\n", diag_error_count, diag_error_count == 1 ? "" : "s");
        return 1;
    }
    if (o.reference)   /* the graph as elaborated: what -O0 builds */
        return reference_main(g, &o.ref);
    if (o.bisect)
        return bisect_main(g, elaborate(&decls, &o.elab), o.target ? o.target : target_native(), &o.emit_opts, &o.ref);
    if (o.emit_test) {   /* the reference's outputs on the program's pseudo-random inputs, from the graph as written */
        int status = expected_outputs(g, &o);
        if (status >= 0)
            return status;
        g = elaborate(&decls, &o.elab);   /* a fresh graph for the passes */
    }
    g->target = o.target ? o.target : target_native();
    if (o.emit_opts.embed_weights && o.emit_opts.embed_dtype != EMBED_F32)
        no_winograd = true;   /* a 16-bit Winograd-transformed weight loses too much: F16 6e-3 of the result, BF16 5e-2 */
    run_passes(g, o.emit_opts.opt_level);
    plan_memory(g);
    if (!verify_graph(g) || !verify_memory_plan(g)) {
        fprintf(stderr, "nnc: internal error: the graph or its memory plan is inconsistent\n");
        return 3;
    }
    if (o.arena_budget && g->arena_bytes > o.arena_budget && !over_budget(g, o.arena_budget))
        return 1;
    int64_t weight_bytes = 0;
    for (int i = 0; i < g->weights.len; i++)
        weight_bytes += tensor_bytes(g->weights.items[i]);
    if (g->arena_bytes > o.max_arena || weight_bytes > o.max_weights) {
        bool arena = g->arena_bytes > o.max_arena;
        fprintf(stderr, "nnc: error: model '%s' needs %lld bytes of %s, more than the limit of %lld (raise it with %s)\n", g->name,
                (long long)(arena ? g->arena_bytes : weight_bytes), arena ? "arena" : "weights", arena ? o.max_arena : o.max_weights,
                arena ? "--max-arena" : "--max-weights");
        return 1;
    }
    if (o.stats) {
        for (int i = 0; i < g->weights.len; i++)   /* the file's weights only */
            if (VEC_AT(g->weights, i, Tensor *)->derived)
                weight_bytes -= tensor_bytes(g->weights.items[i]);
        printf("arena_bytes=%lld lower_bound=%lld weights_bytes=%lld ops=%d\n", (long long)g->arena_bytes, (long long)g->lower_bound,
               (long long)weight_bytes, g->ops.len);
        if (!o.output)
            return 0;
    }
    if (!o.output && strcmp(o.emit, "c") == 0)   /* only --arena-budget: the check was the point */
        return 0;

    if (strcmp(o.emit, "ir") == 0 || strcmp(o.emit, "dot") == 0 || strcmp(o.emit, "weights") == 0) {
        FILE *out = stdout;
        if (o.output && !(out = fopen(o.output, "w"))) {
            fprintf(stderr, "nnc: error: cannot write '%s': %s\n", o.output, strerror(errno));
            return 2;
        }
        if (o.emit[0] == 'i')
            emit_ir(out, g);
        else if (o.emit[0] == 'd')
            emit_dot(out, g);
        else
            emit_weight_list(out, g);
        if (out != stdout && fclose(out) != 0)
            return 2;
        return 0;
    }

    bool program = !ends_with(o.output, ".c");
    if (program)
        o.emit_opts.main_program = true;
    char *name = stem(o.output);
    o.emit_opts.source_path = o.input;
    o.emit_opts.header_name = format("%s.h", name);
    char *bin_tmp = NULL;
    if (o.emit_opts.embed_weights) {
        /* the weights' bytes beside the C, and the same as a C array that it includes where .incbin cannot be had */
        EmitOptions *eo = &o.emit_opts;
        eo->weights_bin_path = program ? (bin_tmp = temp_file()) : weights_bin_path(o.output);
        if (eo->weights_bin_path) {
            size_t len = strlen(eo->weights_bin_path) - (program ? 0 : 4);
            eo->weights_inc_path = format("%.*s.inc", (int)len, eo->weights_bin_path);
            eo->weights_inc_name = program ? eo->weights_inc_path : format("%s.weights.inc", name);
        }
    }
    Buf c_file = {0}, h_file = {0};
    bool emitted = emit_c(g, &o.emit_opts, &c_file, &h_file);
    int status = !emitted ? (diag_error_count > 0 ? 1 : 2) : program ? build_program(&o, c_file.buf, h_file.buf) : -1;
    if (bin_tmp) {
        unlink(bin_tmp);
        unlink(o.emit_opts.weights_inc_path);
    }
    if (status >= 0)
        return status;
    char *h_path = format("%.*s.h", (int)(strlen(o.output) - 2), o.output);
    if (!write_file(o.output, c_file.buf) || !write_file(h_path, h_file.buf))
        return 2;
    return 0;
}

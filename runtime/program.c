/*
 * program.c — the command-line program that `nnc --main` makes of a model, and the profile report.
 *
 * Nothing here depends on the model: the generated file describes its inputs and outputs and hands
 * over its functions in an nnrt_program, and its main() is one call to nnrt_main. The options are
 * those of the language reference (docs/language.md, section 14):
 *
 *   MODEL --weights W.safetensors [--input IN]... [--output OUT]... [--bench N] [--threads T] [--profile]
 *
 * and, in a program built by nnc --bisect, --dump DIR: every op's result as DIR/op_N.bin (raw f32); in one
 * built with nnc --emit-test, --self-test: the outputs for the pseudo-random inputs against the reference's.
 *
 * Exit status 0 on success, 1 when something fails (a file, the weights, the CPU), 2 for a usage error.
 *
 * Built without NNRT_NO_STDIO only: the program prints. Under it this file is empty, and util.c has an
 * nnrt_profile_report that prints nothing (getopt_long is a GNU and BSD extension that glibc and newlib
 * declare in <getopt.h> without feature macros).
 */
#ifndef NNRT_NO_STDIO
#include "nnrt.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Warnings from loading (unused weights): the first few are shown, the rest counted. */
enum { SHOWN_WARNINGS = 3 };

static void print_warning(void *user, const char *message) {
    int *count = user;
    if (++*count <= SHOWN_WARNINGS)
        fprintf(stderr, "warning: %s\n", message);
}

static int compare_ms(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void usage(const nnrt_program *p, const char *argv0) {
    char shape[128];
    printf("usage: %s --weights W.safetensors [--input IN]... [--output OUT]... [--bench N] [--threads T] [--profile]\n", argv0);
    printf("  model '%s': %d input(s), %d output(s), raw little-endian f32 (.bin) or .npy by extension\n", p->model, p->n_inputs,
           p->n_outputs);
    for (int i = 0; i < p->n_inputs; i++)
        printf("  input %d  %s f32%s\n", i, p->inputs[i].name, nnrt_format_shape(shape, sizeof shape, p->inputs[i].rank, p->inputs[i].dims));
    for (int i = 0; i < p->n_outputs; i++)
        printf("  output %d f32%s\n", i, nnrt_format_shape(shape, sizeof shape, p->outputs[i].rank, p->outputs[i].dims));
    printf("  without --input the input is deterministic pseudo-random%s\n",
           p->load_embedded ? "; without --weights the embedded weights are used" : "");
}

/* A count from the command line: 1 to 1,000,000, or -1 (and the message) when it is not one. */
static int count_arg(const char *opt, const char *v) {
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || end == v || n < 1 || n > 1000000) {
        fprintf(stderr, "error: --%s expects a positive integer, found '%s'\n", opt, v);
        return -1;
    }
    return (int)n;
}

/* The largest element of the flattened output, as the program prints it when no --output is given. */
static void print_summary(int i, const nnrt_tensor_desc *t, const float *y) {
    char shape[128];
    nnrt_format_shape(shape, sizeof shape, t->rank, t->dims);
    if (t->size == 0) {
        printf("output %d f32%s: empty\n", i, shape);
        return;
    }
    long best = 0;
    for (long j = 1; j < t->size; j++)
        if (y[j] > y[best])
            best = j;
    printf("output %d f32%s: argmax %ld (%g)\n", i, shape, best, y[best]);
}

/* Runs the model `runs` times, timing each run; prints the bench line and the profile. */
static int bench(const nnrt_program *p, void *m, const float *const *in, float *const *out, int runs, int profile, int print_bench) {
    double *ms = malloc((size_t)runs * sizeof *ms);
    if (!ms) {
        fprintf(stderr, "error: out of memory\n");
        return 1;
    }
    p->profile(m, profile);
    for (int r = 0; r < runs; r++) {
        double t0 = nnrt_now_ms();
        p->run(m, in, out);
        ms[r] = nnrt_now_ms() - t0;
    }
    qsort(ms, (size_t)runs, sizeof *ms, compare_ms);
    if (print_bench)
        printf("bench: %d runs, median %.3f ms, min %.3f ms\n", runs, runs % 2 ? ms[runs / 2] : (ms[runs / 2 - 1] + ms[runs / 2]) / 2, ms[0]);
    if (profile)
        p->profile_report(m, runs);
    free(ms);
    return 0;
}

int nnrt_main(int argc, char **argv, const nnrt_program *p) {
    enum { OPT_WEIGHTS = 1, OPT_INPUT, OPT_OUTPUT, OPT_BENCH, OPT_THREADS, OPT_PROFILE, OPT_HELP, OPT_DUMP, OPT_SELF_TEST };
    static const struct option options[] = {
        {"weights", required_argument, NULL, OPT_WEIGHTS}, {"input", required_argument, NULL, OPT_INPUT},
        {"output", required_argument, NULL, OPT_OUTPUT},   {"bench", required_argument, NULL, OPT_BENCH},
        {"threads", required_argument, NULL, OPT_THREADS}, {"profile", no_argument, NULL, OPT_PROFILE},
        {"help", no_argument, NULL, OPT_HELP},             {"dump", required_argument, NULL, OPT_DUMP},
        {"self-test", no_argument, NULL, OPT_SELF_TEST},
        {0, 0, 0, 0},
    };
    const char *weights = NULL, *dump_dir = NULL, **inputs = calloc((size_t)p->n_inputs + 1, sizeof *inputs),
               **outputs = calloc((size_t)p->n_outputs + 1, sizeof *outputs);
    int n_in = 0, n_out = 0, runs = 0, threads = p->default_threads, profile = 0, self_test = 0, status = 2, opt;
    if (!inputs || !outputs) {
        fprintf(stderr, "error: out of memory\n");
        return 1;
    }
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case OPT_WEIGHTS: weights = optarg; break;
        case OPT_INPUT:
            if (n_in == p->n_inputs) {
                fprintf(stderr, "error: the model has %d input(s), found another --input '%s'\n", p->n_inputs, optarg);
                goto done;
            }
            inputs[n_in++] = optarg;
            break;
        case OPT_OUTPUT:
            if (n_out == p->n_outputs) {
                fprintf(stderr, "error: the model has %d output(s), found another --output '%s'\n", p->n_outputs, optarg);
                goto done;
            }
            outputs[n_out++] = optarg;
            break;
        case OPT_BENCH:
        case OPT_THREADS: {
            int n = count_arg(opt == OPT_BENCH ? "bench" : "threads", optarg);
            if (n < 0)
                goto done;
            *(opt == OPT_BENCH ? &runs : &threads) = n;
            break;
        }
        case OPT_PROFILE: profile = 1; break;
        case OPT_SELF_TEST:
            if (!p->expected) {
                fprintf(stderr, "error: --self-test needs a program built by nnc --emit-test\n");
                goto done;
            }
            self_test = 1;
            break;
        case OPT_DUMP:
            if (!p->on_dump) {
                fprintf(stderr, "error: --dump needs a program built by nnc --bisect\n");
                goto done;
            }
            dump_dir = optarg;
            break;
        case 'h':
        case OPT_HELP:
            usage(p, argv[0]);
            status = 0;
            goto done;
        default:   /* '?' or ':' */
            fprintf(stderr, "error: unknown option or missing value: '%s' (see --help)\n", argv[optind - 1]);
            goto done;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "error: unknown option or missing value: '%s' (see --help)\n", argv[optind]);
        goto done;
    }
    if (n_in != 0 && n_in != p->n_inputs) {
        fprintf(stderr, "error: the model has %d inputs; give --input once for each, in order\n", p->n_inputs);
        goto done;
    }
    if (!weights && !p->load_embedded) {
        fprintf(stderr, "error: --weights FILE is required (see --help)\n");
        goto done;
    }
    if (self_test && (n_in || n_out || runs || profile || dump_dir)) {
        fprintf(stderr, "error: --self-test runs on the pseudo-random inputs it was built for, and takes no --input, --output, --bench, --profile or --dump\n");
        goto done;
    }
    status = nnrt_run_program(p, weights, inputs, n_in, outputs, n_out, threads, runs, profile, dump_dir, self_test);
done:
    free(inputs);
    free(outputs);
    return status;
}

/* --dump: each op's result into DIR/op_N.bin, raw little-endian f32 (the first failure is kept). */
typedef struct {
    const char *dir;
    int failed;
} dump_state;

static void dump_op(void *user, int op, const float *y, long n) {
    dump_state *d = user;
    char path[4096];
    snprintf(path, sizeof path, "%s/op_%d.bin", d->dir, op);
    FILE *f = d->failed ? NULL : fopen(path, "wb");
    if (!d->failed && (!f || fwrite(y, sizeof *y, (size_t)n, f) != (size_t)n)) {
        fprintf(stderr, "error: --dump: cannot write '%s'\n", path);
        d->failed = 1;
    }
    if (f)
        fclose(f);
}

/* --self-test: each output against the reference's (nnc --emit-test), printed; 0 when all are within tolerance. */
static int self_test_verdict(const nnrt_program *p, float *const *out) {
    int status = 0;
    for (int i = 0; i < p->n_outputs; i++) {
        double worst = 0;
        long at = 0;
        for (long k = 0; k < p->outputs[i].size; k++) {
            double d = (double)out[i][k] - (double)p->expected[i][k];
            d = d < 0 ? -d : d;
            if (!(d <= worst)) {   /* NaN counts as the worst */
                worst = d;
                at = k;
            }
        }
        int good = worst <= p->tolerance[i];
        printf("self-test: output %d: max |got - want| %.3g at element %ld, tolerance %.3g: %s\n", i, worst, at, p->tolerance[i],
               good ? "ok" : "FAILED");
        status |= !good;
    }
    printf("self-test of model '%s': %s\n", p->model, status ? "FAILED" : "passed");
    return status;
}

int nnrt_run_program(const nnrt_program *p, const char *weights, const char *const *inputs, int n_in, const char *const *outputs,
                     int n_out, int threads, int runs, int profile, const char *dump_dir, int self_test) {
    dump_state dumps = {dump_dir, 0};
    const char *missing = p->cpu_missing();   /* the generated file's own check: compiled with its flags */
    if (missing) {
        fprintf(stderr, "error: this program was built for a CPU with %s, which this one lacks; build it again here "
                        "(-march=native) or generate it with nnc --target generic\n", missing);
        return 1;
    }
    void *m = p->create(threads);
    if (!m) {
        fprintf(stderr, "error: out of memory\n");
        return 1;
    }
    int warnings = 0, status = 1;
    p->on_warning(m, print_warning, &warnings);
    float **in = calloc((size_t)p->n_inputs + 1, sizeof *in), **out = calloc((size_t)p->n_outputs + 1, sizeof *out);
    if ((weights ? p->load(m, weights) : p->load_embedded(m)) != 0) {
        fprintf(stderr, "error: %s\n", p->last_error(m));
        goto done;
    }
    if (warnings > SHOWN_WARNINGS)
        fprintf(stderr, "warning: and %d more unused weights\n", warnings - SHOWN_WARNINGS);
    int ok = in && out;
    for (int i = 0; ok && i < p->n_inputs; i++)
        ok = (in[i] = malloc((size_t)(p->inputs[i].size ? p->inputs[i].size : 1) * sizeof(float))) != NULL;
    for (int i = 0; ok && i < p->n_outputs; i++)
        ok = (out[i] = malloc((size_t)(p->outputs[i].size ? p->outputs[i].size : 1) * sizeof(float))) != NULL;
    if (!ok) {
        fprintf(stderr, "error: out of memory\n");
        goto done;
    }
    for (int i = 0; i < p->n_inputs; i++) {
        nnrt_error err;
        if (n_in == 0)
            nnrt_fill_random(in[i], (size_t)p->inputs[i].size, (uint64_t)i + 1);
        else if (nnrt_read_tensor_file(inputs[i], in[i], p->inputs[i].rank, p->inputs[i].dims, &err) != 0) {
            fprintf(stderr, "error: input '%s': %s\n", p->inputs[i].name, err.msg);
            goto done;
        }
    }
    if (dump_dir)
        p->on_dump(m, dump_op, &dumps);
    if (p->run(m, (const float *const *)in, out) != 0) {
        fprintf(stderr, "error: %s\n", p->last_error(m));
        goto done;
    }
    if (dump_dir) {
        p->on_dump(m, NULL, NULL);
        if (dumps.failed)
            goto done;
    }
    if ((runs > 0 || profile) && bench(p, m, (const float *const *)in, out, runs > 0 ? runs : 1, profile, runs > 0) != 0)
        goto done;
    if (self_test) {
        status = self_test_verdict(p, out);
        goto done;
    }
    for (int i = 0; i < p->n_outputs; i++) {
        nnrt_error err;
        if (i < n_out) {
            if (nnrt_write_tensor_file(outputs[i], out[i], p->outputs[i].rank, p->outputs[i].dims, &err) != 0) {
                fprintf(stderr, "error: output %d: %s\n", i, err.msg);
                goto done;
            }
        } else if (runs == 0 && !profile) {
            print_summary(i, &p->outputs[i], out[i]);
        }
    }
    status = 0;
done:
    for (int i = 0; in && i < p->n_inputs; i++)
        free(in[i]);
    for (int i = 0; out && i < p->n_outputs; i++)
        free(out[i]);
    free(in);
    free(out);
    p->destroy(m);
    return status;
}

/* ---------------------------------------------------------------- the profile report */

void nnrt_profile_report(const nnrt_op_info *ops, const double *op_ms, int n, int runs) {
    double total = 0, flops = 0;
    if (runs < 1)
        runs = 1;
    printf("%-4s %-40s %10s %10s\n", "op", "name", "ms", "GFLOP/s");
    for (int i = 0; i < n; i++) {
        double ms = op_ms[i] / runs;
        total += ms;
        flops += ops[i].flops;
        if (ms > 0 || ops[i].flops > 0)
            printf("%-4d %-40s %10.3f %10.2f\n", i, ops[i].name, ms, ms > 0 ? ops[i].flops / ms / 1e6 : 0.0);
    }
    printf("total %.3f ms per run, %.3f GFLOP, %.2f GFLOP/s\n", total, flops / 1e9, total > 0 ? flops / total / 1e6 : 0.0);
}

#else
typedef int nnrt_program_c_is_empty_without_stdio;   /* (ISO C wants something in a file) */
#endif

/*
 * emit_program.c — --main: the model described for the runtime's command-line program.
 */
#include "emit_c.h"

#include "nnrt.h"
#include "kernels/nnk.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

void emit_main(Emitter *e, Buf *c) {
    const Graph *g = e->g;
    const char *id = e->id;
    int ni = g->inputs.len, no = g->outputs.len;
    buf_puts(c, "/* ---- the command-line program (--main): runtime/program.c, given the model's shapes and functions ---- */\n\n");
    Buf descs = {0};
    for (int i = 0; i < ni; i++) {
        Tensor *t = g->inputs.items[i];
        buf_printf(c, "static const int64_t in%d_dims[] = %s;\n", i, int_array(t->rank, t->dims));
        buf_printf(&descs, "%s    {\"%s\", %d, in%d_dims, %lld},\n", i ? "" : "static const nnrt_tensor_desc inputs[] = {\n", t->name, t->rank, i,
                   (long long)tensor_numel(t));
    }
    if (ni)
        buf_puts(&descs, "};\n");
    for (int i = 0; i < no; i++) {
        Tensor *t = g->outputs.items[i];
        buf_printf(c, "static const int64_t out%d_dims[] = %s;\n", i, int_array(t->rank, t->dims));
        buf_printf(&descs, "%s    {NULL, %d, out%d_dims, %lld},\n", i ? "" : "static const nnrt_tensor_desc outputs[] = {\n", t->rank, i,
                   (long long)tensor_numel(t));
    }
    buf_printf(c, "%s};\n\n", descs.buf);
    if (e->o->test_expected) {   /* --emit-test */
        buf_puts(c, "/* --self-test: the reference evaluator's outputs (nnc --emit-test, in double, rounded here to float) for the\n"
                    "   program's pseudo-random inputs and the weights it was given, and how far each output may be from them. */\n");
        for (int i = 0; i < no; i++) {
            Tensor *t = g->outputs.items[i];
            int64_t n = tensor_numel(t);
            buf_printf(c, "static const float expected%d[%lld] = {", i, (long long)(n ? n : 1));
            for (int64_t k = 0; k < n; k++)
                buf_printf(c, "%s%s", k % 8 ? " " : "\n    ", format("%s,", c_float(e->o->test_expected[i][k])));
            buf_puts(c, n ? "\n};\n" : "0};\n");
        }
        buf_puts(c, "static const float *const expected[] = {");
        for (int i = 0; i < no; i++)
            buf_printf(c, "%sexpected%d", i ? ", " : "", i);
        buf_puts(c, "};\nstatic const double tolerance[] = {");
        for (int i = 0; i < no; i++)
            buf_printf(c, "%s%.6g", i ? ", " : "", e->o->test_tolerance[i]);
        buf_puts(c, "};\n\n");
    }
    buf_printf(c, "static void *create(int threads) { return %s_new(threads); }\n", id);
    buf_printf(c, "static int load(void *m, const char *path) { return %s_load(m, path); }\n", id);
    if (e->o->embed_weights)
        buf_printf(c, "static int load_embedded(void *m) { return %s_load_embedded(m); }\n", id);
    buf_printf(c, "static void on_warning(void *m, void (*fn)(void *, const char *), void *user) { %s_on_warning(m, fn, user); }\n", id);
    buf_printf(c, "static int run(void *m, const float *const *in, float *const *out) { %sreturn %s_run(m", ni ? "" : "(void)in; ", id);
    for (int i = 0; i < ni; i++)
        buf_printf(c, ", in[%d]", i);
    for (int i = 0; i < no; i++)
        buf_printf(c, ", out[%d]", i);
    buf_puts(c, "); }\n");
    buf_printf(c, "static const char *last_error(const void *m) { return %s_last_error(m); }\n", id);
    buf_printf(c, "static void profile(void *m, int on) { %s_profile(m, on); }\n", id);
    buf_printf(c, "static void profile_report(const void *m, int runs) { %s_profile_report(m, runs); }\n", id);
    buf_printf(c, "static void destroy(void *m) { %s_free(m); }\n", id);
    if (e->o->dumps)
        buf_printf(c, "static void on_dump(void *m, void (*fn)(void *, int, const float *, long), void *user) { %s_on_dump(m, fn, user); }\n", id);
    buf_puts(c, "\n");
    buf_printf(c, "static const nnrt_program program = {\n    .model = \"%s\",\n    .n_inputs = %d,\n    .n_outputs = %d,\n", g->name, ni, no);
    buf_printf(c, "    .inputs = %s,\n    .outputs = outputs,\n    .default_threads = %d,\n", ni ? "inputs" : "NULL", e->o->threads);
    buf_printf(c, "    .cpu_missing = nnrt_cpu_missing,\n    .create = create,\n    .load = load,\n    .load_embedded = %s,\n",
               e->o->embed_weights ? "load_embedded" : "NULL");
    buf_puts(c, "    .on_warning = on_warning,\n    .run = run,\n    .last_error = last_error,\n    .profile = profile,\n"
                "    .profile_report = profile_report,\n    .destroy = destroy,\n");
    if (e->o->dumps)
        buf_puts(c, "    .on_dump = on_dump,\n");
    if (e->o->test_expected)
        buf_puts(c, "    .expected = expected,\n    .tolerance = tolerance,\n");
    buf_puts(c, "};\n\n");
    buf_puts(c, "int main(int argc, char **argv) { return nnrt_main(argc, argv, &program); }\n");
}

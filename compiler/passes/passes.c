/*
 * passes.c — which passes run at each optimisation level, in order.
 *
 *   -O0  none: the graph as elaborated
 *   -O1  dead code, free views
 *   -O2  everything: batch norm folding, attention fusion, epilogue fusion, blocked layouts, views, dead code
 *
 * and then, at every level, the choice of each op's kernel for the target (select_kernels.c).
 *
 * In debug builds (NNC_VERIFY=1 in the environment) the graph is verified after every pass;
 * --dump-after=PASS prints the graph after each run of PASS (or after every pass: all).
 */
#include "nnc.h"

#include <stdlib.h>
#include <string.h>

/* Every pass by name, for --dump-after. */
const char *const pass_names[] = {"dce", "fold_bn", "fuse_attention", "fuse_epilogue", "choose_layouts", "fold_shapes", "select_kernels", NULL};

const char *dump_after_pass;
bool plain_layouts;

static void after(Graph *g, const char *pass) {
    if (dump_after_pass && (strcmp(dump_after_pass, pass) == 0 || strcmp(dump_after_pass, "all") == 0)) {
        printf("# after %s\n", pass);
        emit_ir(stdout, g);
    }
    const char *v = getenv("NNC_VERIFY");
    if (v && *v && *v != '0' && !verify_graph(g)) {
        fprintf(stderr, "nnc: internal error: the graph is broken after pass %s\n", pass);
        abort();
    }
}

void run_passes(Graph *g, int opt_level) {
    if (opt_level >= 1) {
        pass_dce(g);
        after(g, "dce");
    }
    if (opt_level >= 2) {
        pass_fold_bn(g);
        after(g, "fold_bn");
        pass_fuse_attention(g);
        after(g, "fuse_attention");
        pass_fuse_epilogue(g);
        after(g, "fuse_epilogue");
        if (!plain_layouts) {
            pass_choose_layouts(g);
            after(g, "choose_layouts");
        }
    }
    if (opt_level >= 1) {
        pass_fold_shapes(g);
        after(g, "fold_shapes");
        pass_dce(g);
        after(g, "dce");
    }
    pass_select_kernels(g);   /* not an optimisation: every level needs its kernels chosen */
    after(g, "select_kernels");
}

/*
 * passes.c — which passes run at each optimisation level, in order.
 *
 *   -O0  none: the graph as elaborated
 *   -O1  dead code, free views
 *   -O2  everything: batch norm folding, attention fusion, epilogue fusion, views, dead code
 *
 * In debug builds (NNC_VERIFY=1 in the environment) the graph is verified after every pass.
 */
#include "nnc.h"

#include <stdlib.h>

static void after(Graph *g, const char *pass) {
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
    }
    if (opt_level >= 1) {
        pass_fold_shapes(g);
        after(g, "fold_shapes");
        pass_dce(g);
        after(g, "dce");
    }
}

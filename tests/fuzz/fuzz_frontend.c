/*
 * fuzz_frontend.c — source text to diagnostics or IR, for libFuzzer (and for replaying saved inputs).
 *
 * Any bytes are a .net file: they are parsed, elaborated with limits small enough to keep every input
 * quick, planned and printed as IR. Whatever the bytes, this must end without a crash, a hang, a
 * sanitizer report or a broken graph. Imports are not followed (the parser keeps them as
 * declarations), so no input can make the fuzzer read other files.
 */
#include "nnc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static FILE *devnull;
    if (!devnull) {   /* diagnostics are not the point here; sanitizer reports still reach stderr */
        devnull = fopen("/dev/null", "w");
        diag_file = devnull;
    }
    if (size > 1 << 16)
        return 0;
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;
    SrcFile src = {.path = "fuzz.net", .text = text, .len = size};
    diag_error_count = 0;
    Vec decls = {0};
    if (parse_file(&src, &decls) == 0) {
        ElabOptions opts = {.max_ops = 2000, .max_steps = 20000, .max_call_depth = 64};
        Graph *g = elaborate(&decls, &opts);
        if (g) {
            if (!verify_graph(g))
                abort();
            run_passes(g, 2);
            plan_memory(g);
            if (!verify_graph(g) || !verify_memory_plan(g))
                abort();
            emit_ir(devnull, g);
        }
    }
    free(text);
    return 0;
}

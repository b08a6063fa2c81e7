/*
 * fuzz_safetensors.c — any bytes as a safetensors file, for libFuzzer (and for replaying inputs).
 *
 * The loader checks them against a small model's weights (the shapes of tests/golden/tiny_cnn's
 * first layers, in F32, F16 or BF16) and must either load them or refuse them with a message,
 * never reading outside the bytes or writing outside the weight block.
 */
#include "nnrt.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const nnrt_weight_spec specs[] = {
    {"stem.weight", 4, {8, 3, 5, 5}, 0},
    {"stem.bias", 1, {8}, 600},
    {"stem_bn.weight", 1, {8}, 608},
    {"fc.weight", 2, {5, 12}, 616},
    {"p", 3, {1, 1, 2}, 676},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    float *dst = malloc(678 * sizeof(float));
    unsigned char *copy = malloc(size ? size : 1);   /* exactly sized, so an over-read is caught */
    memcpy(copy, data, size);
    nnrt_error err;
    int status = nnrt_load_safetensors(copy, size, specs, sizeof specs / sizeof *specs, dst, NULL, NULL, &err);
    if (status != 0 && (err.msg[0] == 0 || strchr(err.msg, '\n')))
        abort();   /* a refusal must say why, on one line */
    free(copy);
    free(dst);
    return 0;
}

/*
 * fuzz_npy.c — any bytes as a .npy input file, for libFuzzer (and for replaying inputs).
 *
 * The reader expects a [2, 3, 4] float tensor: it must load the bytes or refuse them with a message,
 * never reading outside them or writing outside the 24 floats.
 */
#include "nnrt.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const int64_t dims[] = {2, 3, 4};
    float *dst = malloc(24 * sizeof(float));
    unsigned char *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    nnrt_error err;
    if (nnrt_parse_npy(copy, size, dst, 3, dims, &err) != 0 && (err.msg[0] == 0 || strchr(err.msg, '\n')))
        abort();
    free(copy);
    free(dst);
    return 0;
}

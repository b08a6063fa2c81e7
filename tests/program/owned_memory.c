/*
 * owned_memory.c — a model in the caller's memory (tiny_cnn_init), allocating nothing: state, arena,
 * scratch and weights are static buffers of the header's sizes. With -DEMBEDDED the weights are the
 * ones embedded in the generated C, used in place (no weight buffer at all).
 *
 *   owned_memory [WEIGHTS] INPUT.bin OUTPUT.bin       (raw f32; WEIGHTS unless -DEMBEDDED)
 *
 * Also checks that a misaligned buffer is refused. test_program.py compares the output with the
 * generated program's.
 */
#include "tiny_cnn.h"

#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>

static alignas(64) unsigned char state[TINY_CNN_STATE_BYTES];
static alignas(64) unsigned char arena[TINY_CNN_ARENA_BYTES];
static alignas(64) unsigned char scratch[TINY_CNN_SCRATCH_BYTES_PER_THREAD > 0 ? TINY_CNN_SCRATCH_BYTES_PER_THREAD : 1];
#ifndef EMBEDDED
static alignas(64) unsigned char weights[TINY_CNN_WEIGHT_BYTES];
#endif
static float in[TINY_CNN_IMAGE_SIZE], out[TINY_CNN_OUTPUT_SIZE];

static int read_all(const char *path, void *dst, size_t size) {
    FILE *f = fopen(path, "rb");
    int ok = f && fread(dst, 1, size, f) == size;
    if (f)
        fclose(f);
    return ok;
}

int main(int argc, char **argv) {
#ifdef EMBEDDED
    if (argc != 3)
        return 2;
    const char *in_path = argv[1], *out_path = argv[2];
    void *w = NULL;
#else
    if (argc != 4)
        return 2;
    const char *in_path = argv[2], *out_path = argv[3];
    void *w = weights;
#endif
    if (tiny_cnn_init(state, arena + 4, scratch, w, 1) != NULL) {
        fprintf(stderr, "owned_memory: a misaligned arena was accepted\n");
        return 1;
    }
    tiny_cnn *m = tiny_cnn_init(state, arena, scratch, w, 1);
    if (!m) {
        fprintf(stderr, "owned_memory: tiny_cnn_init refused the buffers\n");
        return 1;
    }
#ifdef EMBEDDED
    if (tiny_cnn_load_embedded(m) != 0 || tiny_cnn_load(m, "any.safetensors") == 0) {   /* no buffer to load a file into */
        fprintf(stderr, "owned_memory: %s\n", tiny_cnn_last_error(m));
        return 1;
    }
#else
    if (tiny_cnn_load(m, argv[1]) != 0) {
        fprintf(stderr, "owned_memory: %s\n", tiny_cnn_last_error(m));
        return 1;
    }
#endif
    if (!read_all(in_path, in, sizeof in) || tiny_cnn_run(m, in, out) != 0) {
        fprintf(stderr, "owned_memory: cannot read the input or run\n");
        return 1;
    }
    FILE *f = fopen(out_path, "wb");
    if (!f || fwrite(out, sizeof out, 1, f) != 1)
        return 1;
    fclose(f);
    tiny_cnn_free(m);   /* releases the pool only: the buffers are the caller's */
    return 0;
}

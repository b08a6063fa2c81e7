/* test_runtime.c — unit tests for the runtime library (the C files in runtime/).
 *
 * A standalone program: it prints "ok - NAME" or "FAIL - NAME: DETAIL" for each check and ends with
 * "N passed, N failed", exiting 1 if anything failed. Every input is crafted here, in memory or in a
 * mkdtemp directory, so the tests need nothing but a C compiler. Error paths are checked by the text
 * of their message (the part a user relies on), not just by the return code.
 *
 * Inputs that the loaders must survive whatever they hold are copied into buffers of exactly their
 * size, so that under -fsanitize=address any read past the end is caught.
 *
 * Build: cc -std=c11 -D_GNU_SOURCE -Iruntime RUNTIME_SOURCES tests/unit/test_runtime.c -lm -lpthread
 */
#include "json.h"
#include "nnrt.h"

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int passed, failed;

static void check(bool ok, const char *name, const char *detail_fmt, ...) {
    if (ok) {
        printf("ok - %s\n", name);
        passed++;
        return;
    }
    printf("FAIL - %s: ", name);
    va_list ap;
    va_start(ap, detail_fmt);
    vprintf(detail_fmt, ap);
    va_end(ap);
    printf("\n");
    failed++;
}

/* A call that must fail with a message containing each of the given fragments (NULL-terminated). */
static void expect_error(const char *name, int rc, const nnrt_error *err, ...) {
    if (rc != -1) {
        check(false, name, "expected failure, got rc %d", rc);
        return;
    }
    va_list ap;
    va_start(ap, err);
    for (const char *fragment; (fragment = va_arg(ap, const char *));) {
        if (!strstr(err->msg, fragment)) {
            va_end(ap);
            check(false, name, "message \"%s\" lacks \"%s\"", err->msg, fragment);
            return;
        }
    }
    va_end(ap);
    bool one_line = !strchr(err->msg, '\n') && strlen(err->msg) > 0;
    check(one_line, name, "message is empty or not one line: \"%s\"", err->msg);
}

static bool same_bits(float a, float b) {
    return memcmp(&a, &b, sizeof a) == 0;
}

/* ---- Temporary files ---- */

static char tmp_dir[256];

static const char *tmp_path(const char *name) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmp_dir, name);
    return path;
}

static void write_file(const char *path, const void *data, size_t size) {
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(data, 1, size, fp) != size || fclose(fp) != 0) {
        fprintf(stderr, "test setup: cannot write %s\n", path);
        exit(2);
    }
}

static void remove_tmp_dir(void) {
    DIR *dir = opendir(tmp_dir);
    if (!dir)
        return;
    for (struct dirent *e; (e = readdir(dir));)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            unlink(tmp_path(e->d_name));
    closedir(dir);
    rmdir(tmp_dir);
}

/* ---- Crafting safetensors images ---- */

typedef struct {
    unsigned char *bytes;
    size_t size;
} buffer;

/* header_len (LE u64) + header padded with spaces to a multiple of 8 + data, in an exactly sized buffer. */
static buffer make_safetensors(const char *header, const void *data, size_t data_size) {
    size_t header_len = (strlen(header) + 7) / 8 * 8;
    buffer b = {malloc(8 + header_len + data_size + 1), 8 + header_len + data_size};
    for (int i = 0; i < 8; i++)
        b.bytes[i] = (unsigned char)((uint64_t)header_len >> (8 * i));
    memset(b.bytes + 8, ' ', header_len);
    memcpy(b.bytes + 8, header, strlen(header));
    if (data_size)
        memcpy(b.bytes + 8 + header_len, data, data_size);
    return b;
}

static buffer copy_prefix(buffer b, size_t size) {
    buffer c = {malloc(size ? size : 1), size};
    memcpy(c.bytes, b.bytes, size);
    return c;
}

/* Collects warnings: the count and the last message. */
typedef struct {
    int count;
    char last[256];
} warnings;

static void collect_warning(void *user, const char *msg) {
    warnings *w = user;
    w->count++;
    snprintf(w->last, sizeof w->last, "%s", msg);
}

/* The standard test file: an F32 matrix, F16 and BF16 vectors, and an I64 scalar no spec uses, as
 * PyTorch stores BatchNorm's num_batches_tracked. */
static const char standard_header[] =
    "{\"__metadata__\": {\"format\": \"pt\"},"
    " \"a\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 24]},"
    " \"h\": {\"dtype\": \"F16\", \"shape\": [6], \"data_offsets\": [24, 36]},"
    " \"b\": {\"dtype\": \"BF16\", \"shape\": [2], \"data_offsets\": [36, 40]},"
    " \"n\": {\"dtype\": \"I64\", \"shape\": [], \"data_offsets\": [40, 48]}}";

static const uint16_t standard_f16[6] = {0x3c00, 0xc000, 0x0001, 0x03ff, 0x7c00, 0x8000};
static const uint16_t standard_bf16[2] = {0x3f80, 0xc0a0};

static buffer make_standard(void) {
    unsigned char data[48] = {0};
    for (int i = 0; i < 6; i++) {
        float v = (float)i + 0.5f;
        uint32_t bits;
        memcpy(&bits, &v, 4);
        nnrt_store_le32(data + 4 * i, bits);
        data[24 + 2 * i] = (unsigned char)standard_f16[i];
        data[25 + 2 * i] = (unsigned char)(standard_f16[i] >> 8);
    }
    for (int i = 0; i < 2; i++) {
        data[36 + 2 * i] = (unsigned char)standard_bf16[i];
        data[37 + 2 * i] = (unsigned char)(standard_bf16[i] >> 8);
    }
    data[40] = 7;
    return make_safetensors(standard_header, data, sizeof data);
}

static const nnrt_weight_spec standard_specs[] = {
    {"a", 2, {2, 3}, 0},
    {"h", 1, {6}, 6},
    {"b", 1, {2}, 12},
};
enum { STANDARD_FLOATS = 14 };

/* ---- Tests ---- */

static void test_f16_bf16(void) {
    /* Every half-precision value against a reference computed differently: sign * m * 2^e with ldexp. */
    int wrong = 0;
    unsigned first_wrong = 0;
    for (unsigned h = 0; h < 0x10000; h++) {
        float got = nnrt_f16_to_f32((uint16_t)h);
        unsigned exponent = h >> 10 & 0x1f, mantissa = h & 0x3ff;
        float sign = (h & 0x8000) ? -1.0f : 1.0f;
        bool ok;
        if (exponent == 0x1f && mantissa != 0) {
            uint32_t bits;
            memcpy(&bits, &got, 4);
            ok = isnan(got) && (bits & 0x7fffff) == mantissa << 13 && (bits >> 31) == (h >> 15);
        } else {
            float expected = exponent == 0x1f ? sign * INFINITY
                           : exponent == 0   ? sign * (float)ldexp(mantissa, -24)
                                             : sign * (float)ldexp(1024 + mantissa, (int)exponent - 25);
            ok = same_bits(got, expected);
        }
        if (!ok && wrong++ == 0)
            first_wrong = h;
    }
    check(wrong == 0, "f16 to f32, all 65536 values", "%d wrong, first 0x%04x", wrong, first_wrong);
    check(nnrt_f16_to_f32(0x7bff) == 65504.0f && nnrt_f16_to_f32(0x0400) == 0x1p-14f &&
              nnrt_f16_to_f32(0x03ff) == 0x3ffp-24f && same_bits(nnrt_f16_to_f32(0x8000), -0.0f),
          "f16 max, min normal, max subnormal, -0", "wrong value");
    check(nnrt_bf16_to_f32(0x3f80) == 1.0f && nnrt_bf16_to_f32(0xc0a0) == -5.0f &&
              nnrt_bf16_to_f32(0x0001) == 0x1p-133f && isinf(nnrt_bf16_to_f32(0xff80)) &&
              isnan(nnrt_bf16_to_f32(0x7fc0)),
          "bf16 to f32", "wrong value");
}

static void test_load_ok(void) {
    buffer b = make_standard();
    float dst[STANDARD_FLOATS];
    warnings w = {0};
    nnrt_error err = {{0}};
    int rc = nnrt_load_safetensors(b.bytes, b.size, standard_specs, 3, dst, collect_warning, &w, &err);
    check(rc == 0, "safetensors: load", "rc %d: %s", rc, err.msg);
    bool f32_ok = true;
    for (int i = 0; i < 6; i++)
        f32_ok &= dst[i] == (float)i + 0.5f;
    check(f32_ok, "safetensors: F32 values", "got %g %g ...", dst[0], dst[1]);
    check(dst[6] == 1.0f && dst[7] == -2.0f && dst[8] == 0x1p-24f && dst[9] == 0x3ffp-24f && isinf(dst[10]) &&
              dst[10] > 0 && same_bits(dst[11], -0.0f),
          "safetensors: F16 values (one, -2, subnormals, inf, -0)", "got %g %g %g %g %g %g", dst[6], dst[7],
          dst[8], dst[9], dst[10], dst[11]);
    check(dst[12] == 1.0f && dst[13] == -5.0f, "safetensors: BF16 values", "got %g %g", dst[12], dst[13]);
    check(w.count == 1 && strcmp(w.last, "unused weight 'n'") == 0, "safetensors: unused-key warning",
          "%d warnings, last \"%s\"", w.count, w.last);

    rc = nnrt_load_safetensors(b.bytes, b.size, standard_specs, 3, dst, NULL, NULL, &err);
    check(rc == 0, "safetensors: warn may be NULL", "rc %d: %s", rc, err.msg);

    /* The same image one byte off alignment. */
    unsigned char *shifted = malloc(b.size + 1);
    memcpy(shifted + 1, b.bytes, b.size);
    float dst2[STANDARD_FLOATS];
    rc = nnrt_load_safetensors(shifted + 1, b.size, standard_specs, 3, dst2, NULL, NULL, &err);
    check(rc == 0 && memcmp(dst, dst2, sizeof dst) == 0, "safetensors: unaligned image", "rc %d: %s", rc, err.msg);
    free(shifted);

    /* Through a real file and nnrt_map_file. */
    write_file(tmp_path("model.safetensors"), b.bytes, b.size);
    nnrt_file f;
    rc = nnrt_map_file(tmp_path("model.safetensors"), &f, &err);
    if (rc == 0) {
        rc = nnrt_load_safetensors(f.data, f.size, standard_specs, 3, dst2, NULL, NULL, &err);
        nnrt_unmap_file(&f);
    }
    check(rc == 0 && memcmp(dst, dst2, sizeof dst) == 0, "safetensors: from a mapped file", "rc %d: %s", rc,
          err.msg);
    free(b.bytes);
}

/* Loads header + data with the given specs and expects an error containing fragments. */
static void expect_load_error(const char *name, const char *header, size_t data_size,
                              const nnrt_weight_spec *specs, size_t nspecs, ...) {
    unsigned char data[64] = {0};
    buffer b = make_safetensors(header, data, data_size);
    float dst[64];
    nnrt_error err = {{0}};
    int rc = nnrt_load_safetensors(b.bytes, b.size, specs, nspecs, dst, NULL, NULL, &err);
    free(b.bytes);

    va_list ap;
    va_start(ap, nspecs);
    const char *fragments[4] = {0};
    for (int i = 0; i < 3 && (fragments[i] = va_arg(ap, const char *)); i++)
        ;
    va_end(ap);
    expect_error(name, rc, &err, fragments[0], fragments[1], fragments[2], (const char *)NULL);
}

/* Index tensors (an index spec): I64 and I32 loaded as exact floats; a value outside [0, limit), a float
   dtype, or indices where floats are wanted are errors naming the key, and leave dst untouched. */
static void test_load_indices(void) {
    static const char header[] =
        "{\"i\": {\"dtype\": \"I64\", \"shape\": [3], \"data_offsets\": [0, 24]},"
        " \"j\": {\"dtype\": \"I32\", \"shape\": [2], \"data_offsets\": [24, 32]},"
        " \"f\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [32, 36]}}";
    unsigned char data[36] = {0};
    const int64_t i64[3] = {0, 4, 12};
    for (int k = 0; k < 3; k++)
        for (int byte = 0; byte < 8; byte++)
            data[8 * k + byte] = (unsigned char)((uint64_t)i64[k] >> (8 * byte));
    nnrt_store_le32(data + 24, 7);
    nnrt_store_le32(data + 28, 0);
    buffer b = make_safetensors(header, data, sizeof data);
    float dst[5] = {-1, -1, -1, -1, -1};
    nnrt_error err = {{0}};
    const nnrt_weight_spec ok[] = {{"i", 1, {3}, 0}, {"j", 1, {2}, 3}};
    const int64_t ok_limits[] = {13, 8};
    int rc = nnrt_load_safetensors_indexed(b.bytes, b.size, ok, 2, ok_limits, dst, NULL, NULL, &err);
    check(rc == 0 && dst[0] == 0 && dst[1] == 4 && dst[2] == 12 && dst[3] == 7 && dst[4] == 0, "safetensors: I64 and I32 indices",
          "rc %d (%s): %g %g %g %g %g", rc, err.msg, dst[0], dst[1], dst[2], dst[3], dst[4]);
    float before[5];
    memcpy(before, dst, sizeof dst);
    const nnrt_weight_spec high[] = {{"j", 1, {2}, 3}, {"i", 1, {3}, 0}};
    const int64_t high_limits[] = {8, 12};
    rc = nnrt_load_safetensors_indexed(b.bytes, b.size, high, 2, high_limits, dst, NULL, NULL, &err);
    expect_error("safetensors: an index out of range", rc, &err, "'i'", "index 12 at element 2", "0 to 11", (const char *)NULL);
    check(memcmp(before, dst, sizeof dst) == 0, "safetensors: an index out of range loads nothing", "dst changed");
    const nnrt_weight_spec f_as_index[] = {{"f", 1, {1}, 0}};
    const int64_t four[] = {4};
    rc = nnrt_load_safetensors_indexed(b.bytes, b.size, f_as_index, 1, four, dst, NULL, NULL, &err);
    expect_error("safetensors: floats where indices are wanted", rc, &err, "'f'", "I64 or I32", "F32", (const char *)NULL);
    const nnrt_weight_spec i_as_float[] = {{"i", 1, {3}, 0}};
    rc = nnrt_load_safetensors(b.bytes, b.size, i_as_float, 1, dst, NULL, NULL, &err);
    expect_error("safetensors: indices where floats are wanted", rc, &err, "'i'", "F32, F16 or BF16", "I64", (const char *)NULL);
    free(b.bytes);
}

static void test_load_errors(void) {
    nnrt_error err;
    float dst[STANDARD_FLOATS];
    buffer b = make_standard();

    int rc = nnrt_load_safetensors(b.bytes, 5, standard_specs, 3, dst, NULL, NULL, &err);
    expect_error("safetensors error: file shorter than 8 bytes", rc, &err, "at least 8 bytes", "found 5",
                 (const char *)NULL);

    buffer bad = copy_prefix(b, b.size);
    bad.bytes[0] = (unsigned char)(bad.size - 8 + 1);
    bad.bytes[1] = (unsigned char)((bad.size - 8 + 1) >> 8);
    rc = nnrt_load_safetensors(bad.bytes, bad.size, standard_specs, 3, dst, NULL, NULL, &err);
    expect_error("safetensors error: header length past end of file", rc, &err, "header length",
                 "past the end", (const char *)NULL);
    bad.bytes[7] = 0x80;   /* 2^63 + ...: must not overflow the bounds check */
    rc = nnrt_load_safetensors(bad.bytes, bad.size, standard_specs, 3, dst, NULL, NULL, &err);
    expect_error("safetensors error: huge header length", rc, &err, "past the end", (const char *)NULL);
    free(bad.bytes);

    /* Over the 100 MiB limit yet inside the file. The buffer is never touched past its first bytes. */
    size_t big = (100u << 20) + 64;
    unsigned char *huge = malloc(big);
    if (huge) {
        uint64_t header_len = (100u << 20) + 8;
        for (int i = 0; i < 8; i++)
            huge[i] = (unsigned char)(header_len >> (8 * i));
        rc = nnrt_load_safetensors(huge, big, standard_specs, 3, dst, NULL, NULL, &err);
        expect_error("safetensors error: header over 100 MiB", rc, &err, "exceeds the limit of 104857600",
                     (const char *)NULL);
        free(huge);
    }

    /* A failed load leaves dst alone: the second spec is wrong, the first would have been copied. */
    for (int i = 0; i < STANDARD_FLOATS; i++)
        dst[i] = -7.0f;
    nnrt_weight_spec wrong_second[] = {{"a", 2, {2, 3}, 0}, {"h", 1, {5}, 6}};
    rc = nnrt_load_safetensors(b.bytes, b.size, wrong_second, 2, dst, NULL, NULL, &err);
    bool untouched = true;
    for (int i = 0; i < STANDARD_FLOATS; i++)
        untouched &= dst[i] == -7.0f;
    check(rc == -1 && untouched, "safetensors: failed load leaves dst untouched", "rc %d", rc);
    free(b.bytes);

    const nnrt_weight_spec spec_a[] = {{"a", 2, {2, 3}, 0}};
    const char *good_a = "{\"a\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 24]}}";
    expect_load_error("safetensors error: header not JSON", "{\"a\": {\"dtype\": \"F32\",", 24, spec_a, 1,
                      "not valid JSON", NULL);
    expect_load_error("safetensors error: header not an object", "[1, 2]", 0, spec_a, 1,
                      "expected a JSON object, found array", NULL);
    expect_load_error("safetensors error: entry not an object", "{\"a\": 3}", 0, spec_a, 1, "weight 'a'",
                      "found number", NULL);
    expect_load_error("safetensors error: dtype missing", "{\"a\": {\"shape\": [2, 3], \"data_offsets\": [0, 24]}}",
                      24, spec_a, 1, "weight 'a'", "\"dtype\"", NULL);
    expect_load_error("safetensors error: shape negative",
                      "{\"a\": {\"dtype\": \"F32\", \"shape\": [-2, 3], \"data_offsets\": [0, 24]}}", 24, spec_a, 1,
                      "weight 'a'", "non-negative integers", NULL);
    expect_load_error("safetensors error: shape not integer",
                      "{\"a\": {\"dtype\": \"F32\", \"shape\": [2.5, 3], \"data_offsets\": [0, 24]}}", 24, spec_a, 1,
                      "weight 'a'", "non-negative integers", NULL);
    expect_load_error("safetensors error: shape too large",
                      "{\"a\": {\"dtype\": \"U8\", \"shape\": [4294967296, 4294967296], \"data_offsets\": [0, 24]}}",
                      24, spec_a, 1, "weight 'a'", "too large", NULL);
    expect_load_error("safetensors error: data_offsets not a pair",
                      "{\"a\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 12, 24]}}", 24, spec_a,
                      1, "weight 'a'", "[begin, end]", "found an array of 3 elements", NULL);
    expect_load_error("safetensors error: data_offsets begin after end",
                      "{\"a\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [24, 0]}}", 24, spec_a, 1,
                      "weight 'a'", "[24, 0] begin after end", NULL);
    expect_load_error("safetensors error: data_offsets past data section", good_a, 20, spec_a, 1, "weight 'a'",
                      "[0, 24] end past the data section of 20 bytes", NULL);
    expect_load_error("safetensors error: numel does not match offsets",
                      "{\"a\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 20]}}", 24, spec_a, 1,
                      "weight 'a'", "span 20 bytes, expected 24 for shape [2, 3] of F32", NULL);
    expect_load_error("safetensors error: overlapping offsets",
                      "{\"a\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 24]},"
                      " \"z\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [16, 24]}}",
                      24, spec_a, 1, "weight 'z': data_offsets [16, 24] overlap", "weight 'a' [0, 24]", NULL);
    expect_load_error("safetensors error: range inside an earlier one",
                      "{\"a\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 24]},"
                      " \"y\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]},"
                      " \"z\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [12, 16]}}",
                      24, spec_a, 1, "overlap", NULL);
    expect_load_error("safetensors error: duplicate key",
                      "{\"a\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 24]},"
                      " \"a\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [24, 48]}}",
                      48, spec_a, 1, "weight 'a'", "duplicate", NULL);

    const nnrt_weight_spec spec_missing[] = {{"layer1.0.conv1.weight", 1, {6}, 0}};
    expect_load_error("safetensors error: missing key", good_a, 24, spec_missing, 1,
                      "weight 'layer1.0.conv1.weight'", "not found", NULL);
    const nnrt_weight_spec conv_spec[] = {{"layer1.0.conv1.weight", 4, {64, 64, 3, 3}, 0}};
    {
        static unsigned char conv_data[16384];
        buffer conv = make_safetensors("{\"layer1.0.conv1.weight\": {\"dtype\": \"F32\", \"shape\": [64, 64, 1, 1], "
                                       "\"data_offsets\": [0, 16384]}}",
                                       conv_data, sizeof conv_data);
        static float conv_dst[64 * 64 * 9];
        rc = nnrt_load_safetensors(conv.bytes, conv.size, conv_spec, 1, conv_dst, NULL, NULL, &err);
        check(rc == -1 && strcmp(err.msg, "weight 'layer1.0.conv1.weight': expected shape [64, 64, 3, 3], found "
                                          "[64, 64, 1, 1]") == 0,
              "safetensors error: wrong shape", "rc %d: \"%s\"", rc, err.msg);
        free(conv.bytes);
    }
    const nnrt_weight_spec spec_rank[] = {{"a", 1, {6}, 0}};
    expect_load_error("safetensors error: wrong rank", good_a, 24, spec_rank, 1,
                      "weight 'a': expected shape [6], found [2, 3]", NULL);
    const nnrt_weight_spec spec_n[] = {{"n", 0, {0}, 0}};
    expect_load_error("safetensors error: wrong dtype on a used key",
                      "{\"n\": {\"dtype\": \"I64\", \"shape\": [], \"data_offsets\": [0, 8]}}", 8, spec_n, 1,
                      "weight 'n'", "expected dtype F32, F16 or BF16, found I64", NULL);
    expect_load_error("safetensors error: unknown dtype on a used key",
                      "{\"n\": {\"dtype\": \"F4_E2M1\", \"shape\": [], \"data_offsets\": [0, 3]}}", 3, spec_n, 1,
                      "weight 'n'", "found F4_E2M1", NULL);

    /* Unused keys may have any dtype, even one whose size is unknown; empty tensors hold no bytes. */
    unsigned char data[40] = {0};
    buffer odd = make_safetensors("{\"a\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 24]},"
                                  " \"q\": {\"dtype\": \"F4_E2M1\", \"shape\": [7], \"data_offsets\": [24, 28]},"
                                  " \"e\": {\"dtype\": \"F32\", \"shape\": [0, 5], \"data_offsets\": [4, 4]},"
                                  " \"__metadata__\": {\"anything\": [1, {\"x\": null}]}}",
                                  data, 28);
    warnings w = {0};
    nnrt_weight_spec spec_ae[] = {{"a", 2, {2, 3}, 0}, {"e", 2, {0, 5}, 6}};
    rc = nnrt_load_safetensors(odd.bytes, odd.size, spec_ae, 2, dst, collect_warning, &w, &err);
    check(rc == 0 && w.count == 1 && strcmp(w.last, "unused weight 'q'") == 0,
          "safetensors: unknown unused dtype, empty tensor, metadata", "rc %d (%s), %d warnings", rc, err.msg,
          w.count);
    free(odd.bytes);
}

/* Truncations and byte mutations of a valid image: the loader must fail cleanly, never read outside. */
static void test_load_robustness(void) {
    buffer b = make_standard();
    float dst[STANDARD_FLOATS];
    nnrt_error err;
    int unexpected = 0;
    for (size_t len = 0; len < b.size; len++) {
        buffer t = copy_prefix(b, len);
        if (nnrt_load_safetensors(t.bytes, t.size, standard_specs, 3, dst, NULL, NULL, &err) != -1)
            unexpected++;
        free(t.bytes);
    }
    check(unexpected == 0, "safetensors: every truncation fails", "%d truncations loaded", unexpected);

    static const unsigned char replacements[] = {0, '"', '\\', '{', '}', '[', ']', ',', ':', '9', '-', 'e', 0xff, 0xc3};
    size_t header_end = 8 + nnrt_load_le64(b.bytes);
    int runs = 0;
    for (size_t pos = 0; pos < header_end; pos++) {
        for (size_t r = 0; r < sizeof replacements; r++) {
            buffer t = copy_prefix(b, b.size);
            t.bytes[pos] = replacements[r];
            int rc = nnrt_load_safetensors(t.bytes, t.size, standard_specs, 3, dst, NULL, NULL, &err);
            if (rc != 0 && rc != -1)
                unexpected++;
            free(t.bytes);
            runs++;
        }
    }
    check(unexpected == 0, "safetensors: mutated headers fail cleanly", "%d of %d runs misbehaved", unexpected,
          runs);
    free(b.bytes);
}

/* Parses text (copied to an exact-size buffer) and returns the result code; doc is freed unless kept. */
static int parse_json(const char *text, size_t len, json_doc *doc, nnrt_error *err) {
    char *copy = malloc(len ? len : 1);
    memcpy(copy, text, len);
    int rc = nnrt_json_parse(doc, copy, len, err);
    free(copy);   /* strings live in the arena, not in the input */
    return rc;
}

static void test_json(void) {
    json_doc doc;
    nnrt_error err;
    const char *text = " {\"s\": \"q\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\u20ac\\ud83d\\ude00\\u0000z\", "
                       "\"n\": [0, -0, 12, -9223372036854775808, 9223372036854775807, 9223372036854775808, "
                       "1.5e3, -2E-2, 0.25], \"t\": true, \"f\": false, \"z\": null, \"o\": {}, \"a\": []} ";
    int rc = parse_json(text, strlen(text), &doc, &err);
    check(rc == 0, "json: valid document", "%s", err.msg);
    if (rc == 0) {
        const json_value *s = nnrt_json_get(doc.root, "s");
        static const char expected[] = "q\"\\/\b\f\n\r\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\0z";
        check(s && s->type == JSON_STRING && s->len == sizeof expected - 1 && memcmp(s->str, expected, s->len) == 0,
              "json: string escapes, \\u and surrogate pairs", "decoded %zu bytes", s ? s->len : 0);
        const json_value *n = nnrt_json_get(doc.root, "n");
        const json_value *v[9];
        int count = 0;
        for (const json_value *e = n ? n->first : NULL; e && count < 9; e = e->next)
            v[count++] = e;
        check(count == 9 && n->len == 9 && v[0]->is_int && v[0]->integer == 0 && v[1]->is_int &&
                  v[1]->integer == 0 && signbit(v[1]->number) && v[2]->integer == 12 && v[3]->is_int &&
                  v[3]->integer == INT64_MIN && v[4]->is_int && v[4]->integer == INT64_MAX && !v[5]->is_int &&
                  v[5]->number == 9223372036854775808.0 && !v[6]->is_int && v[6]->number == 1500.0 &&
                  v[7]->number == -0.02 && v[8]->number == 0.25,
              "json: numbers, exact int64 limits", "wrong values");
        const json_value *o = nnrt_json_get(doc.root, "o"), *a = nnrt_json_get(doc.root, "a");
        check(nnrt_json_get(doc.root, "t")->type == JSON_TRUE && nnrt_json_get(doc.root, "f")->type == JSON_FALSE &&
                  nnrt_json_get(doc.root, "z")->type == JSON_NULL && o->type == JSON_OBJECT && o->len == 0 &&
                  a->type == JSON_ARRAY && a->len == 0 && !nnrt_json_get(doc.root, "missing"),
              "json: literals, empty containers, lookup", "wrong types");
        nnrt_json_free(&doc);
    }

    static const struct { const char *text; size_t len; } invalid[] = {
        {"", 0}, {"  ", 2}, {"{", 1}, {"[1,]", 4}, {"{\"a\":1,}", 8}, {"01", 2}, {"-", 1}, {"1.", 2},
        {".5", 2}, {"1e", 2}, {"+1", 2}, {"\"abc", 4}, {"\"\\x\"", 4}, {"\"\\ud800\"", 8}, {"\"\\udc00\"", 8},
        {"\"\\ud800\\u0041\"", 14}, {"\"a\x01\"", 4}, {"\"\xff\"", 3}, {"\"\xc0\xaf\"", 4},
        {"\"\xed\xa0\x80\"", 5}, {"\"\xe2\x82\"", 4}, {"tru", 3}, {"nul", 3}, {"[1 2]", 5}, {"{\"a\" 1}", 7},
        {"{1:2}", 5}, {"[1]x", 4}, {"\"\\u12\"", 6}, {"\"\\u12", 5}, {"\"\\", 2}, {"[1]\0", 4}, {"NaN", 3},
        {"[Infinity]", 10}, {"/* c */ 1", 9}, {"'a'", 3}, {"[1] [2]", 7},
    };
    int accepted = 0;
    char first[32] = "";
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        if (parse_json(invalid[i].text, invalid[i].len, &doc, &err) == 0) {
            if (accepted++ == 0)
                snprintf(first, sizeof first, "%s", invalid[i].text);
            nnrt_json_free(&doc);
        }
    }
    check(accepted == 0, "json: rejects invalid documents", "%d accepted, first '%s'", accepted, first);

    rc = parse_json("[1,\n  tru]", 10, &doc, &err);
    expect_error("json: error names the byte", rc, &err, "at byte 6", (const char *)NULL);

    char deep[2 * JSON_MAX_DEPTH + 4];
    for (int depth = JSON_MAX_DEPTH; depth <= JSON_MAX_DEPTH + 1; depth++) {
        memset(deep, '[', (size_t)depth);
        memset(deep + depth, ']', (size_t)depth);
        rc = parse_json(deep, 2 * (size_t)depth, &doc, &err);
        if (rc == 0)
            nnrt_json_free(&doc);
        if (depth == JSON_MAX_DEPTH)
            check(rc == 0, "json: nesting at the depth limit", "%s", err.msg);
        else
            expect_error("json: nesting past the depth limit", rc, &err, "too deep", (const char *)NULL);
    }
    static char very_deep[100000];
    memset(very_deep, '[', sizeof very_deep);
    rc = parse_json(very_deep, sizeof very_deep, &doc, &err);
    expect_error("json: 100000 open brackets", rc, &err, "too deep", (const char *)NULL);

    /* Many values: the arena grows past its first block. */
    size_t n = 200000, len = 0;
    char *many = malloc(2 * n + 2);
    many[len++] = '[';
    for (size_t i = 0; i < n; i++) {
        many[len++] = (char)('0' + i % 10);
        many[len++] = i + 1 < n ? ',' : ']';
    }
    rc = parse_json(many, len, &doc, &err);
    check(rc == 0 && doc.root->len == n, "json: large array", "rc %d: %s", rc, err.msg);
    if (rc == 0)
        nnrt_json_free(&doc);
    free(many);
}

static void test_map_file(void) {
    nnrt_file f;
    nnrt_error err;
    write_file(tmp_path("empty.bin"), "", 0);
    int rc = nnrt_map_file(tmp_path("empty.bin"), &f, &err);
    check(rc == 0 && f.size == 0 && f.data == NULL, "map: empty file", "rc %d size %zu", rc, f.size);
    nnrt_unmap_file(&f);

    rc = nnrt_map_file(tmp_path("does-not-exist.bin"), &f, &err);
    expect_error("map error: missing file names path and reason", rc, &err, "does-not-exist.bin",
                 "No such file or directory", (const char *)NULL);
    rc = nnrt_map_file(tmp_dir, &f, &err);
    expect_error("map error: a directory", rc, &err, "Is a directory", (const char *)NULL);
}

/* Crafts an .npy file: magic, version, header length (2 or 4 bytes), header dict padded to 64, data. */
static void write_npy(const char *name, int major, const char *dict, const void *data, size_t data_size) {
    size_t preamble = major == 1 ? 10 : 12;
    size_t total = (preamble + strlen(dict) + 1 + 63) / 64 * 64;
    size_t header_len = total - preamble;
    unsigned char *bytes = malloc(total + data_size);
    memcpy(bytes, "\x93NUMPY", 6);
    bytes[6] = (unsigned char)major;
    bytes[7] = 0;
    for (size_t i = 0; i < preamble - 8; i++)
        bytes[8 + i] = (unsigned char)(header_len >> (8 * i));
    memset(bytes + preamble, ' ', header_len);
    memcpy(bytes + preamble, dict, strlen(dict));
    bytes[total - 1] = '\n';
    memcpy(bytes + total, data, data_size);
    write_file(tmp_path(name), bytes, total + data_size);
    free(bytes);
}

static void test_tensor_files(void) {
    nnrt_error err;
    const int64_t dims23[] = {2, 3}, dims32[] = {3, 2}, dims5[] = {5};
    float src[6] = {1.5f, -2.0f, 0.0f, 1e-30f, 3.25f, -0.0f}, got[6];
    char path[512];

    snprintf(path, sizeof path, "%s", tmp_path("t.npy"));
    int rc = nnrt_write_tensor_file(path, src, 2, dims23, &err);
    check(rc == 0, "npy: write", "%s", err.msg);
    nnrt_file f;
    if (nnrt_map_file(path, &f, &err) == 0) {
        const unsigned char *b = f.data;
        size_t header_len = f.size >= 10 ? nnrt_load_le16(b + 8) : 0;
        check(f.size == 10 + header_len + 24 && memcmp(b, "\x93NUMPY\x01\x00", 8) == 0 &&
                  (10 + header_len) % 64 == 0 && b[9 + header_len] == '\n' &&
                  memmem(b, f.size, "'descr': '<f4'", 14) && memmem(b, f.size, "'shape': (2, 3)", 15),
              "npy: written header is version 1.0, '<f4', (2, 3), 64-aligned", "size %zu", f.size);
        nnrt_unmap_file(&f);
    }
    rc = nnrt_read_tensor_file(path, got, 2, dims23, &err);
    check(rc == 0 && memcmp(src, got, sizeof src) == 0, "npy: read back", "rc %d: %s", rc, err.msg);
    rc = nnrt_read_tensor_file(path, got, 2, dims32, &err);
    expect_error("npy error: shape mismatch", rc, &err, "t.npy", "expected shape [3, 2], found [2, 3]",
                 (const char *)NULL);

    snprintf(path, sizeof path, "%s", tmp_path("v.npy"));
    float five[5] = {1, 2, 3, 4, 5}, got5[5], scalar = 42.0f, got_scalar = 0;
    rc = nnrt_write_tensor_file(path, five, 1, dims5, &err);
    if (rc == 0)
        rc = nnrt_read_tensor_file(path, got5, 1, dims5, &err);
    check(rc == 0 && memcmp(five, got5, sizeof five) == 0, "npy: rank 1 round trip (5,)", "%s", err.msg);
    snprintf(path, sizeof path, "%s", tmp_path("s.npy"));
    rc = nnrt_write_tensor_file(path, &scalar, 0, NULL, &err);
    if (rc == 0)
        rc = nnrt_read_tensor_file(path, &got_scalar, 0, NULL, &err);
    check(rc == 0 && got_scalar == 42.0f, "npy: rank 0 round trip ()", "%s", err.msg);

    unsigned char data24[24];
    for (int i = 0; i < 6; i++) {
        uint32_t bits;
        memcpy(&bits, &src[i], 4);
        nnrt_store_le32(data24 + 4 * i, bits);
    }
    write_npy("v2.npy", 2, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", data24, 24);
    rc = nnrt_read_tensor_file(tmp_path("v2.npy"), got, 2, dims23, &err);
    check(rc == 0 && memcmp(src, got, sizeof src) == 0, "npy: version 2.0", "%s", err.msg);
    write_npy("v3.npy", 3, "{\"shape\":(2,3),\"fortran_order\":False,\"descr\":\"<f4\"}", data24, 24);
    rc = nnrt_read_tensor_file(tmp_path("v3.npy"), got, 2, dims23, &err);
    check(rc == 0 && memcmp(src, got, sizeof src) == 0, "npy: version 3.0, other key order and quotes", "%s",
          err.msg);

    unsigned char data48[48];
    double doubles[6] = {0.1, -2.5, 1e300, 0, 3, -1e-50};
    for (int i = 0; i < 6; i++) {
        uint64_t bits;
        memcpy(&bits, &doubles[i], 8);
        nnrt_store_le32(data48 + 8 * i, (uint32_t)bits);
        nnrt_store_le32(data48 + 8 * i + 4, (uint32_t)(bits >> 32));
    }
    write_npy("f8.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", data48, 48);
    rc = nnrt_read_tensor_file(tmp_path("f8.npy"), got, 2, dims23, &err);
    check(rc == 0 && got[0] == 0.1f && got[1] == -2.5f && isinf(got[2]) && got[3] == 0 && got[4] == 3 &&
              same_bits(got[5], -0.0f),
          "npy: '<f8' converted to float", "rc %d: %s", rc, err.msg);

    write_npy("be.npy", 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", data24, 24);
    rc = nnrt_read_tensor_file(tmp_path("be.npy"), got, 2, dims23, &err);
    expect_error("npy error: dtype '>f4'", rc, &err, "expected dtype '<f4'", "found '>f4'", (const char *)NULL);
    write_npy("fo.npy", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", data24, 24);
    rc = nnrt_read_tensor_file(tmp_path("fo.npy"), got, 2, dims23, &err);
    expect_error("npy error: fortran_order True", rc, &err, "fortran_order", (const char *)NULL);
    write_npy("short.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", data24, 20);
    rc = nnrt_read_tensor_file(tmp_path("short.npy"), got, 2, dims23, &err);
    expect_error("npy error: data shorter than shape", rc, &err, "expected 24 bytes", "found 20",
                 (const char *)NULL);
    write_npy("long.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", data48, 28);
    rc = nnrt_read_tensor_file(tmp_path("long.npy"), got, 2, dims23, &err);
    expect_error("npy error: data longer than shape", rc, &err, "expected 24 bytes", "found 28",
                 (const char *)NULL);
    write_npy("key.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1}", data24, 24);
    rc = nnrt_read_tensor_file(tmp_path("key.npy"), got, 2, dims23, &err);
    expect_error("npy error: unexpected header key", rc, &err, "unexpected key", (const char *)NULL);
    write_npy("nokey.npy", 1, "{'descr': '<f4', 'shape': (2, 3)}", data24, 24);
    rc = nnrt_read_tensor_file(tmp_path("nokey.npy"), got, 2, dims23, &err);
    expect_error("npy error: missing header key", rc, &err, "missing", (const char *)NULL);
    write_npy("v9.npy", 9, "{}", data24, 0);
    rc = nnrt_read_tensor_file(tmp_path("v9.npy"), got, 2, dims23, &err);
    expect_error("npy error: unknown version", rc, &err, "found 9.0", (const char *)NULL);

    write_file(tmp_path("magic.npy"), "\x93NUMPX\x01\x00\x00\x00", 10);
    rc = nnrt_read_tensor_file(tmp_path("magic.npy"), got, 2, dims23, &err);
    expect_error("npy error: bad magic", rc, &err, "magic.npy", "not a .npy file", (const char *)NULL);
    write_file(tmp_path("hlen.npy"), "\x93NUMPY\x01\x00\xff\x00{}", 12);
    rc = nnrt_read_tensor_file(tmp_path("hlen.npy"), got, 2, dims23, &err);
    expect_error("npy error: header length past end", rc, &err, "past the end", (const char *)NULL);

    /* Every truncation of a valid file fails cleanly (read through exact-size mappings). */
    FILE *fp = fopen(tmp_path("t.npy"), "rb");
    unsigned char whole[256];
    size_t whole_size = fp ? fread(whole, 1, sizeof whole, fp) : 0;
    if (fp)
        fclose(fp);
    int loaded = 0;
    for (size_t len = 0; len < whole_size; len++) {
        write_file(tmp_path("cut.npy"), whole, len);
        loaded += nnrt_read_tensor_file(tmp_path("cut.npy"), got, 2, dims23, &err) == 0;
    }
    check(whole_size > 0 && loaded == 0, "npy: every truncation fails", "%d loaded", loaded);

    snprintf(path, sizeof path, "%s", tmp_path("t.bin"));
    rc = nnrt_write_tensor_file(path, src, 2, dims23, &err);
    if (rc == 0)
        rc = nnrt_read_tensor_file(path, got, 2, dims23, &err);
    check(rc == 0 && memcmp(src, got, sizeof src) == 0, "raw: round trip", "%s", err.msg);
    if (nnrt_map_file(path, &f, &err) == 0) {
        const unsigned char *b = f.data;
        check(f.size == 24 && b[0] == 0 && b[1] == 0 && b[2] == 0xc0 && b[3] == 0x3f, "raw: little-endian f32",
              "size %zu", f.size);
        nnrt_unmap_file(&f);
    }
    write_file(tmp_path("short.bin"), data24, 20);
    rc = nnrt_read_tensor_file(tmp_path("short.bin"), got, 2, dims23, &err);
    expect_error("raw error: wrong size", rc, &err, "short.bin", "expected 24 bytes", "shape [2, 3]", "found 20",
                 (const char *)NULL);
    unsigned char data28[28] = {0};
    write_file(tmp_path("long.bin"), data28, 28);
    rc = nnrt_read_tensor_file(tmp_path("long.bin"), got, 2, dims23, &err);
    expect_error("raw error: too long", rc, &err, "expected 24 bytes", "found 28", (const char *)NULL);
    rc = nnrt_read_tensor_file(tmp_path("missing.bin"), got, 2, dims23, &err);
    expect_error("tensor file error: missing input", rc, &err, "missing.bin", "No such file", (const char *)NULL);
    rc = nnrt_write_tensor_file(tmp_path("no-such-dir/out.bin"), src, 2, dims23, &err);
    expect_error("tensor file error: unwritable output", rc, &err, "out.bin", "No such file", (const char *)NULL);
    const int64_t negative[] = {2, -3};
    rc = nnrt_read_tensor_file(path, got, 2, negative, &err);
    expect_error("tensor file error: negative dim", rc, &err, "invalid tensor shape", (const char *)NULL);
}

/* Each task adds one to its own counter; with tasks running twice or never, some counter is not 1. */
typedef struct {
    atomic_int runs[1000];
    int written[1000];   /* plain writes: ThreadSanitizer checks they are ordered before run returns */
} pool_job;

static void count_task(void *arg, int task) {
    pool_job *job = arg;
    atomic_fetch_add(&job->runs[task], 1);
    job->written[task] = task * 3;
}

static void test_pool(void) {
    static pool_job job;
    static const int thread_counts[] = {0, 1, 2, 3, 4, 8};
    static const int task_counts[] = {0, 1, 2, 3, 5, 17, 100, 1000};
    for (size_t t = 0; t < sizeof thread_counts / sizeof thread_counts[0]; t++) {
        nnrt_pool *pool = nnrt_pool_create(thread_counts[t]);
        int expected_threads = thread_counts[t] < 1 ? 1 : thread_counts[t];
        char name[64];
        snprintf(name, sizeof name, "pool: create with %d threads", thread_counts[t]);
        check(pool && nnrt_pool_threads(pool) == expected_threads, name, "pool %p", (void *)pool);
        if (!pool)
            continue;
        int bad = 0, bad_ntasks = -1;
        for (size_t k = 0; k < sizeof task_counts / sizeof task_counts[0]; k++) {
            int ntasks = task_counts[k];
            for (int repeat = 0; repeat < 20; repeat++) {
                for (int i = 0; i < 1000; i++) {
                    atomic_store(&job.runs[i], 0);
                    job.written[i] = -1;
                }
                nnrt_pool_run(pool, ntasks, count_task, &job);
                for (int i = 0; i < 1000; i++) {
                    bool expect_run = i < ntasks;
                    if (atomic_load(&job.runs[i]) != (expect_run ? 1 : 0) ||
                        job.written[i] != (expect_run ? 3 * i : -1)) {
                        bad++;
                        bad_ntasks = ntasks;
                        break;
                    }
                }
            }
        }
        snprintf(name, sizeof name, "pool: %d threads run every task exactly once", thread_counts[t]);
        check(bad == 0, name, "%d bad runs, e.g. with %d tasks", bad, bad_ntasks);
        nnrt_pool_destroy(pool);
    }
    nnrt_pool_destroy(NULL);
}

/* More tasks than one round of the pool's task word takes (32767), and many short runs on more threads
   than cores, whose workers the scheduler keeps taking off the CPU: a worker that wakes late, after its
   run has returned, must take nothing of it, and a task of the next run once. */
static atomic_int big_runs[70000];

static void big_task(void *arg, int task) {
    (void)arg;
    atomic_fetch_add(&big_runs[task], 1);
}

static void test_pool_rounds_and_late_workers(void) {
    nnrt_pool *pool = nnrt_pool_create(3);
    int bad = 0;
    for (int i = 0; i < 70000; i++)
        atomic_store(&big_runs[i], 0);
    if (pool)
        nnrt_pool_run(pool, 70000, big_task, NULL);
    for (int i = 0; i < 70000; i++)
        bad += atomic_load(&big_runs[i]) != 1;
    check(pool && bad == 0, "pool: 70000 tasks (rounds of 32767) each run once", "%d tasks run other than once", bad);
    nnrt_pool_destroy(pool);

    static pool_job job;
    pool = nnrt_pool_create(16);
    bad = 0;
    for (int repeat = 0; pool && repeat < 3000; repeat++) {
        int ntasks = 1 + repeat % 5;
        for (int i = 0; i < ntasks; i++) {
            atomic_store(&job.runs[i], 0);
            job.written[i] = -1;
        }
        nnrt_pool_run(pool, ntasks, count_task, &job);
        for (int i = 0; i < ntasks; i++)
            bad += atomic_load(&job.runs[i]) != 1 || job.written[i] != 3 * i;
    }
    check(pool && bad == 0, "pool: 3000 short runs on 16 threads, each task once", "%d tasks run other than once", bad);
    nnrt_pool_destroy(pool);
}

/* Each task sleeps a millisecond: the caller, done with its own, outwaits its poll and sleeps until the
   last worker wakes it. */
static void slow_task(void *arg, int task) {
    pool_job *job = arg;
    nanosleep(&(struct timespec){0, 1000000}, NULL);
    atomic_fetch_add(&job->runs[task], 1);
    job->written[task] = task * 3;
}

/* The pool's slow paths: workers that went to sleep between runs (runs 5 ms apart), and a caller that
   went to sleep waiting for them (slow tasks). A wake-up lost would hang: SIGALRM ends the suite instead. */
static void test_pool_sleeping(void) {
    static pool_job job;
    alarm(60);
    nnrt_pool *pool = nnrt_pool_create(3);
    if (!pool) {
        check(false, "pool: sleeping workers wake for the next run", "nnrt_pool_create failed");
        return;
    }
    int bad = 0;
    for (int repeat = 0; repeat < 12; repeat++) {
        int ntasks = 3 + repeat % 4;
        for (int i = 0; i < ntasks; i++) {
            atomic_store(&job.runs[i], 0);
            job.written[i] = -1;
        }
        nanosleep(&(struct timespec){0, 5000000}, NULL);
        nnrt_pool_run(pool, ntasks, repeat % 2 ? slow_task : count_task, &job);
        for (int i = 0; i < ntasks; i++)
            bad += atomic_load(&job.runs[i]) != 1 || job.written[i] != 3 * i;
    }
    check(bad == 0, "pool: sleeping workers and a sleeping caller wake for every run", "%d tasks run other than once", bad);
    nnrt_pool_destroy(pool);
    alarm(0);
}

static void test_random(void) {
    enum { N = 100000 };
    static float a[N], b[N], c[N];
    nnrt_fill_random(a, N, 1234);
    nnrt_fill_random(b, N, 1234);
    nnrt_fill_random(c, N, 1235);
    check(memcmp(a, b, sizeof a) == 0, "random: same seed, same values", "differ");
    check(memcmp(a, c, sizeof a) != 0, "random: other seed, other values", "same");
    double sum = 0;
    float lo = 1, hi = -1;
    for (int i = 0; i < N; i++) {
        sum += a[i];
        lo = a[i] < lo ? a[i] : lo;
        hi = a[i] > hi ? a[i] : hi;
    }
    check(lo >= -1.0f && hi < 1.0f && lo < -0.999f && hi > 0.999f && fabs(sum / N) < 0.01,
          "random: uniform in [-1, 1)", "min %g max %g mean %g", lo, hi, sum / N);
    float first;
    nnrt_fill_random(&first, 1, 0);
    check(first == (float)0xe220a8 * 0x1p-23f - 1.0f, "random: splitmix64 reference value for seed 0", "got %.9g",
          first);
    nnrt_fill_random(c, 10, 1234);
    check(memcmp(a, c, 10 * sizeof(float)) == 0, "random: a shorter fill is a prefix", "differ");
}

static void test_util(void) {
    nnrt_error err;
    char long_key[3000];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    nnrt_seterr(&err, "weight '%s' is long", long_key);
    size_t len = strlen(err.msg);
    check(len == sizeof err.msg - 1 && strcmp(err.msg + len - 3, "...") == 0, "seterr: truncates with ...",
          "length %zu", len);
    char accents[1300] = "";
    for (int i = 0; i < 600; i++)
        strcat(accents, "\xc3\xa9");   /* 2-byte characters: the cut must not split one */
    nnrt_seterr(&err, "x%s", accents);
    len = strlen(err.msg);
    check(strcmp(err.msg + len - 3, "...") == 0 && (unsigned char)err.msg[len - 5] == 0xc3 &&
              (unsigned char)err.msg[len - 4] == 0xa9, "seterr: truncation keeps UTF-8 whole",
          "length %zu", len);
    nnrt_seterr(&err, "line one\nline two\n");
    check(strcmp(err.msg, "line one line two") == 0, "seterr: one line, no trailing newline", "\"%s\"", err.msg);
    nnrt_seterr(NULL, "ignored %d", 1);

    char shape[64];
    const int64_t dims[] = {1, 3, 224, 224};
    check(strcmp(nnrt_format_shape(shape, sizeof shape, 4, dims), "[1, 3, 224, 224]") == 0 &&
              strcmp(nnrt_format_shape(shape, sizeof shape, 0, dims), "[]") == 0 &&
              strcmp(nnrt_format_shape(shape, 6, 4, dims), "[1, 3") == 0,
          "format_shape", "\"%s\"", shape);
    size_t numel = 0;
    const int64_t huge[] = {INT64_MAX, INT64_MAX}, negative[] = {3, -1};
    check(nnrt_shape_numel(4, dims, &numel) == 0 && numel == 150528 && nnrt_shape_numel(0, dims, &numel) == 0 &&
              numel == 1 && nnrt_shape_numel(2, huge, &numel) == -1 && nnrt_shape_numel(2, negative, &numel) == -1 &&
              nnrt_shape_numel(NNRT_MAX_RANK + 1, dims, &numel) == -1,
          "shape_numel: counts, overflow, negative, rank", "wrong");

    double t0 = nnrt_now_ms();
    nanosleep(&(struct timespec){.tv_nsec = 2000000}, NULL);
    double t1 = nnrt_now_ms();
    check(t1 - t0 >= 1.5 && t1 - t0 < 2000, "now_ms: monotonic milliseconds", "%g ms for a 2 ms sleep", t1 - t0);
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/nnrt-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 2;
    }
    test_util();
    test_random();
    test_f16_bf16();
    test_json();
    test_load_ok();
    test_load_errors();
    test_load_indices();
    test_load_robustness();
    test_map_file();
    test_tensor_files();
    test_pool();
    test_pool_sleeping();
    test_pool_rounds_and_late_workers();
    remove_tmp_dir();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

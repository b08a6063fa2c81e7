/* weights.c — loading a safetensors file into the model's weight block.
 *
 * A safetensors file is an 8-byte little-endian header length N, N bytes of JSON mapping each tensor key
 * to {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, then the data section, to which the
 * offsets are relative (an optional "__metadata__" entry maps strings to strings and is ignored here).
 *
 * The file comes from outside, so everything in it is checked before it is trusted, and a bad file fails
 * with a message naming the key and what was expected instead of crashing or loading garbage:
 *   1. the header: read every entry into a table; sorted by key it shows duplicates, sorted by offset it
 *      shows overlapping byte ranges;
 *   2. the specs: each key the model wants must exist with its exact shape and a float dtype;
 *   3. only then copy, converting F16 and BF16 to F32 (so a failed load leaves dst untouched),
 *      and finally warn about keys the model did not use.
 * Tensor data is read byte by byte (nnrt_load_le*), so it may be unaligned and the host may be of
 * either byte order.
 */
#include "json.h"
#include "nnrt.h"

#include <stdbool.h>
#include <string.h>
#ifdef NNRT_NO_STDIO
#define snprintf nnrt__snprintf
#else
#include <stdio.h>
#endif

#define SAFETENSORS_MAX_HEADER (100u << 20)

typedef enum { FLOAT_NONE, FLOAT_F32, FLOAT_F16, FLOAT_BF16, INDEX_I64, INDEX_I32 } float_format;

/* Dtypes whose element size is known, so the byte span of their tensors can be checked; of these,
 * the three float formats can be loaded, and the two index formats where a spec wants indices. */
typedef struct {
    const char *name;
    size_t size;
    float_format format;
} dtype_info;

static const dtype_info known_dtypes[] = {
    {"F32", 4, FLOAT_F32}, {"F16", 2, FLOAT_F16}, {"BF16", 2, FLOAT_BF16},
    {"F64", 8, FLOAT_NONE}, {"I64", 8, INDEX_I64}, {"I32", 4, INDEX_I32}, {"I16", 2, FLOAT_NONE},
    {"I8", 1, FLOAT_NONE}, {"U64", 8, FLOAT_NONE}, {"U32", 4, FLOAT_NONE}, {"U16", 2, FLOAT_NONE},
    {"U8", 1, FLOAT_NONE}, {"BOOL", 1, FLOAT_NONE}, {"F8_E4M3", 1, FLOAT_NONE}, {"F8_E5M2", 1, FLOAT_NONE},
};

/* One tensor of the header. Strings and the shape point into the parsed JSON document. */
typedef struct {
    const char *key;
    size_t key_len;
    const char *dtype_name;
    const dtype_info *dtype;    /* NULL for a dtype not in known_dtypes */
    const json_value *shape;    /* array of non-negative integers */
    uint64_t begin, end;        /* byte range in the data section */
    bool used;                  /* some spec loads it */
} tensor_entry;

float nnrt_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exponent = h >> 10 & 0x1f;
    uint32_t mantissa = h & 0x3ff;
    uint32_t bits;
    if (exponent == 0x1f) {            /* inf, or NaN with its payload */
        bits = sign | 0x7f800000 | mantissa << 13;
    } else if (exponent != 0) {        /* normal: rebias the exponent from 15 to 127 */
        bits = sign | (exponent + 112) << 23 | mantissa << 13;
    } else {                           /* zero or subnormal: mantissa * 2^-24, exact and normal in f32 */
        float magnitude = (float)mantissa * 0x1p-24f;
        memcpy(&bits, &magnitude, 4);
        bits |= sign;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float nnrt_bf16_to_f32(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static bool string_is(const char *s, size_t len, const char *literal) {
    return len == nnrt__strlen(literal) && nnrt__memcmp(s, literal, len) == 0;
}

static bool is_count(const json_value *v) {
    return v->type == JSON_NUMBER && v->is_int && v->integer >= 0;
}

/* Formats a shape array of the header like nnrt_format_shape; past 64 dims the text is cut short anyway. */
static const char *format_json_shape(char *buf, size_t size, const json_value *shape) {
    int64_t dims[64];
    int rank = 0;
    for (const json_value *d = shape->first; d && rank < 64; d = d->next)
        dims[rank++] = d->integer;
    return nnrt_format_shape(buf, size, rank, dims);
}

/* Checks one header entry and fills e. data_size is the size of the data section. */
static int read_entry(const json_value *member, uint64_t data_size, tensor_entry *e, nnrt_error *err) {
    const char *key = member->key;
    *e = (tensor_entry){.key = key, .key_len = member->key_len};
    if (member->type != JSON_OBJECT) {
        nnrt_seterr(err, "weight '%s': expected an object with dtype, shape and data_offsets, found %s", key,
                    nnrt_json_type_name(member->type));
        return -1;
    }

    const json_value *dtype = nnrt_json_get(member, "dtype");
    if (!dtype || dtype->type != JSON_STRING) {
        nnrt_seterr(err, "weight '%s': expected \"dtype\" to be a string, found %s", key,
                    dtype ? nnrt_json_type_name(dtype->type) : "nothing");
        return -1;
    }
    e->dtype_name = dtype->str;
    for (size_t i = 0; i < sizeof known_dtypes / sizeof known_dtypes[0]; i++)
        if (string_is(dtype->str, dtype->len, known_dtypes[i].name))
            e->dtype = &known_dtypes[i];

    const json_value *shape = nnrt_json_get(member, "shape");
    if (!shape || shape->type != JSON_ARRAY) {
        nnrt_seterr(err, "weight '%s': expected \"shape\" to be an array, found %s", key,
                    shape ? nnrt_json_type_name(shape->type) : "nothing");
        return -1;
    }
    uint64_t numel = 1;   /* kept below UINT64_MAX / 8, so numel * dtype size cannot overflow */
    bool has_zero = false, too_large = false;
    for (const json_value *d = shape->first; d; d = d->next) {
        if (!is_count(d)) {
            nnrt_seterr(err, "weight '%s': expected \"shape\" to hold non-negative integers, found a %s%s", key,
                        d->type == JSON_NUMBER ? "non-integer or negative " : "", nnrt_json_type_name(d->type));
            return -1;
        }
        uint64_t dim = (uint64_t)d->integer;
        if (dim == 0)
            has_zero = true;
        else if (numel > UINT64_MAX / 8 / dim)
            too_large = true;
        else
            numel *= dim;
    }
    char found[256];
    if (has_zero) {
        numel = 0;
    } else if (too_large) {
        nnrt_seterr(err, "weight '%s': shape %s is too large for any file", key,
                    format_json_shape(found, sizeof found, shape));
        return -1;
    }
    e->shape = shape;

    const json_value *offsets = nnrt_json_get(member, "data_offsets");
    if (!offsets || offsets->type != JSON_ARRAY || offsets->len != 2 || !is_count(offsets->first) ||
        !is_count(offsets->first->next)) {
        char what[64];
        if (!offsets || offsets->type != JSON_ARRAY)
            snprintf(what, sizeof what, "%s", offsets ? nnrt_json_type_name(offsets->type) : "nothing");
        else if (offsets->len != 2)
            snprintf(what, sizeof what, "an array of %zu elements", offsets->len);
        else
            snprintf(what, sizeof what, "a negative, fractional or huge offset");
        nnrt_seterr(err, "weight '%s': expected \"data_offsets\" to be [begin, end] of non-negative integers, "
                    "found %s", key, what);
        return -1;
    }
    e->begin = (uint64_t)offsets->first->integer;
    e->end = (uint64_t)offsets->first->next->integer;
    if (e->begin > e->end) {
        nnrt_seterr(err, "weight '%s': data_offsets [%llu, %llu] begin after end", key,
                    (unsigned long long)e->begin, (unsigned long long)e->end);
        return -1;
    }
    if (e->end > data_size) {
        nnrt_seterr(err, "weight '%s': data_offsets [%llu, %llu] end past the data section of %llu bytes", key,
                    (unsigned long long)e->begin, (unsigned long long)e->end, (unsigned long long)data_size);
        return -1;
    }
    if (e->dtype && e->end - e->begin != numel * e->dtype->size) {
        nnrt_seterr(err, "weight '%s': data_offsets [%llu, %llu] span %llu bytes, expected %llu for shape %s of %s",
                    key, (unsigned long long)e->begin, (unsigned long long)e->end,
                    (unsigned long long)(e->end - e->begin), (unsigned long long)(numel * e->dtype->size),
                    format_json_shape(found, sizeof found, shape), e->dtype->name);
        return -1;
    }
    return 0;
}

static int compare_keys(const char *a, size_t a_len, const char *b, size_t b_len) {
    int c = nnrt__memcmp(a, b, a_len < b_len ? a_len : b_len);
    return c ? c : (a_len > b_len) - (a_len < b_len);
}

/* The orders of the two index arrays; equal entries stay in the header's order (the entries array's), so
   that the order is total and a message names the same pair whatever the sort. */
static int compare_entries_by_key(const tensor_entry *x, const tensor_entry *y) {
    int c = compare_keys(x->key, x->key_len, y->key, y->key_len);
    return c ? c : (x > y) - (x < y);
}

static int compare_entries_by_offset(const tensor_entry *x, const tensor_entry *y) {
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return (x > y) - (x < y);
}

/* Heapsort of n entry pointers: in place, O(n log n), no recursion and no libc (qsort). */
static void sift_down(tensor_entry **a, size_t root, size_t n, int (*cmp)(const tensor_entry *, const tensor_entry *)) {
    for (size_t child; (child = 2 * root + 1) < n; root = child) {
        if (child + 1 < n && cmp(a[child], a[child + 1]) < 0)
            child++;
        if (cmp(a[root], a[child]) >= 0)
            return;
        tensor_entry *t = a[root];
        a[root] = a[child];
        a[child] = t;
    }
}

static void sort_entries(tensor_entry **a, size_t n, int (*cmp)(const tensor_entry *, const tensor_entry *)) {
    for (size_t i = n / 2; i-- > 0;)
        sift_down(a, i, n, cmp);
    for (size_t end = n; end-- > 1;) {
        tensor_entry *t = a[0];
        a[0] = a[end];
        a[end] = t;
        sift_down(a, 0, end, cmp);
    }
}

/* The entry named key in entries sorted by key, or NULL. */
static tensor_entry *find_entry(tensor_entry **by_key, size_t count, const char *key) {
    size_t lo = 0, hi = count, key_len = nnrt__strlen(key);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = compare_keys(key, key_len, by_key[mid]->key, by_key[mid]->key_len);
        if (c == 0)
            return by_key[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* Duplicate keys, then overlapping byte ranges. Sorts the two index arrays. */
static int check_entries(tensor_entry **by_key, tensor_entry **by_offset, size_t count, nnrt_error *err) {
    sort_entries(by_key, count, compare_entries_by_key);
    for (size_t i = 1; i < count; i++) {
        if (compare_keys(by_key[i - 1]->key, by_key[i - 1]->key_len, by_key[i]->key, by_key[i]->key_len) == 0) {
            nnrt_seterr(err, "weight '%s': duplicate key in the safetensors header", by_key[i]->key);
            return -1;
        }
    }

    /* In offset order a range overlaps an earlier one exactly when it begins before the furthest end so
     * far. Empty ranges hold no bytes and overlap nothing. */
    sort_entries(by_offset, count, compare_entries_by_offset);
    const tensor_entry *furthest = NULL;
    for (size_t i = 0; i < count; i++) {
        const tensor_entry *e = by_offset[i];
        if (e->begin == e->end)
            continue;
        if (furthest && e->begin < furthest->end) {
            nnrt_seterr(err, "weight '%s': data_offsets [%llu, %llu] overlap those of weight '%s' [%llu, %llu]",
                        e->key, (unsigned long long)e->begin, (unsigned long long)e->end, furthest->key,
                        (unsigned long long)furthest->begin, (unsigned long long)furthest->end);
            return -1;
        }
        if (!furthest || e->end > furthest->end)
            furthest = e;
    }
    return 0;
}

static bool shape_matches(const json_value *shape, const nnrt_weight_spec *spec) {
    if (shape->len != (size_t)spec->rank)
        return false;
    int i = 0;
    for (const json_value *d = shape->first; d; d = d->next, i++)
        if (d->integer != spec->dims[i])
            return false;
    return true;
}

static int check_spec(const nnrt_weight_spec *spec, int64_t index_limit, tensor_entry *e, nnrt_error *err) {
    char expected[256], found[256];
    if (spec->rank < 0 || spec->rank > NNRT_MAX_RANK) {
        nnrt_seterr(err, "weight '%s': spec has rank %d, expected 0 to %d", spec->key, spec->rank, NNRT_MAX_RANK);
        return -1;
    }
    if (!e) {
        nnrt_seterr(err, "weight '%s': expected in the safetensors file, not found", spec->key);
        return -1;
    }
    bool index = index_limit > 0, index_dtype = e->dtype && (e->dtype->format == INDEX_I64 || e->dtype->format == INDEX_I32);
    if (!e->dtype || e->dtype->format == FLOAT_NONE || index != index_dtype) {
        nnrt_seterr(err, "weight '%s': expected dtype %s, found %s", spec->key, index ? "I64 or I32 (indices)" : "F32, F16 or BF16",
                    e->dtype_name);
        return -1;
    }
    if (!shape_matches(e->shape, spec)) {
        nnrt_seterr(err, "weight '%s': expected shape %s, found %s", spec->key,
                    nnrt_format_shape(expected, sizeof expected, spec->rank, spec->dims),
                    format_json_shape(found, sizeof found, e->shape));
        return -1;
    }
    e->used = true;
    return 0;
}

static int64_t index_at(const unsigned char *src, size_t i, float_format format) {
    return format == INDEX_I64 ? (int64_t)nnrt_load_le64(src + 8 * i) : (int64_t)(int32_t)nnrt_load_le32(src + 4 * i);
}

/* An index tensor's values must all be in [0, limit): the kernels that read them do not check. */
static int check_indices(const nnrt_weight_spec *spec, int64_t limit, const tensor_entry *e, const unsigned char *src, nnrt_error *err) {
    size_t count = (e->end - e->begin) / e->dtype->size;
    for (size_t i = 0; i < count; i++) {
        int64_t v = index_at(src, i, e->dtype->format);
        if (v < 0 || v >= limit) {
            nnrt_seterr(err, "weight '%s': index %lld at element %zu is out of range: expected 0 to %lld", spec->key, (long long)v, i,
                        (long long)limit - 1);
            return -1;
        }
    }
    return 0;
}

static void copy_as_f32(float *dst, const unsigned char *src, size_t count, float_format format) {
    switch (format) {
    case INDEX_I64:
    case INDEX_I32:   /* checked to be below the index limit, itself below 2^24: exact as floats */
        for (size_t i = 0; i < count; i++)
            dst[i] = (float)index_at(src, i, format);
        break;
    case FLOAT_F32:
        for (size_t i = 0; i < count; i++) {
            uint32_t bits = nnrt_load_le32(src + 4 * i);
            memcpy(&dst[i], &bits, 4);
        }
        break;
    case FLOAT_F16:
        for (size_t i = 0; i < count; i++)
            dst[i] = nnrt_f16_to_f32(nnrt_load_le16(src + 2 * i));
        break;
    case FLOAT_BF16:
        for (size_t i = 0; i < count; i++)
            dst[i] = nnrt_bf16_to_f32(nnrt_load_le16(src + 2 * i));
        break;
    case FLOAT_NONE:
        break;
    }
}

int nnrt_load_safetensors(const void *data, size_t size, const nnrt_weight_spec *specs, size_t nspecs,
                          float *dst, nnrt_warn_fn warn, void *user, nnrt_error *err) {
    return nnrt_load_safetensors_indexed(data, size, specs, nspecs, NULL, dst, warn, user, err);
}

int nnrt_load_safetensors_indexed(const void *data, size_t size, const nnrt_weight_spec *specs, size_t nspecs,
                                  const int64_t *index_limits, float *dst, nnrt_warn_fn warn, void *user, nnrt_error *err) {
    const unsigned char *bytes = data;
    if (size < 8) {
        nnrt_seterr(err, "safetensors file: expected at least 8 bytes for the header length, found %zu", size);
        return -1;
    }
    uint64_t header_len = nnrt_load_le64(bytes);
    if (header_len > size - 8) {
        nnrt_seterr(err, "safetensors file: header length %llu runs past the end of the file (%zu bytes after "
                    "the length)", (unsigned long long)header_len, size - 8);
        return -1;
    }
    if (header_len > SAFETENSORS_MAX_HEADER) {
        nnrt_seterr(err, "safetensors file: header length %llu exceeds the limit of %u bytes",
                    (unsigned long long)header_len, SAFETENSORS_MAX_HEADER);
        return -1;
    }
    const unsigned char *data_section = bytes + 8 + header_len;
    uint64_t data_size = size - 8 - header_len;

    json_doc doc;
    nnrt_error why;
    if (nnrt_json_parse(&doc, (const char *)bytes + 8, (size_t)header_len, &why) < 0) {
        nnrt_seterr(err, "safetensors header is not valid JSON: %s", why.msg);
        return -1;
    }
    int status = -1;
    tensor_entry *entries = NULL, **by_key = NULL, **by_offset = NULL;
    if (doc.root->type != JSON_OBJECT) {
        nnrt_seterr(err, "safetensors header: expected a JSON object, found %s", nnrt_json_type_name(doc.root->type));
        goto done;
    }

    size_t count = 0, capacity = doc.root->len + 1;   /* + 1: never malloc(0) */
    entries = nnrt_alloc(capacity * sizeof *entries);
    by_key = nnrt_alloc(capacity * sizeof *by_key);
    by_offset = nnrt_alloc(capacity * sizeof *by_offset);
    if (!entries || !by_key || !by_offset) {
        nnrt_seterr(err, "safetensors header: out of memory for %zu entries", doc.root->len);
        goto done;
    }
    for (const json_value *m = doc.root->first; m; m = m->next) {
        if (string_is(m->key, m->key_len, "__metadata__"))
            continue;
        if (read_entry(m, data_size, &entries[count], err) < 0)
            goto done;
        by_key[count] = by_offset[count] = &entries[count];
        count++;
    }
    if (check_entries(by_key, by_offset, count, err) < 0)
        goto done;

    for (size_t i = 0; i < nspecs; i++)
        if (check_spec(&specs[i], index_limits ? index_limits[i] : 0, find_entry(by_key, count, specs[i].key), err) < 0)
            goto done;
    for (size_t i = 0; i < nspecs; i++) {
        const tensor_entry *e = find_entry(by_key, count, specs[i].key);
        if (index_limits && index_limits[i] > 0 && check_indices(&specs[i], index_limits[i], e, data_section + e->begin, err) < 0)
            goto done;
    }

    for (size_t i = 0; i < nspecs; i++) {
        const tensor_entry *e = find_entry(by_key, count, specs[i].key);
        copy_as_f32(dst + specs[i].offset, data_section + e->begin, (e->end - e->begin) / e->dtype->size,
                    e->dtype->format);
    }

    if (warn) {
        for (size_t i = 0; i < count; i++) {
            if (!entries[i].used) {
                nnrt_error msg;
                nnrt_seterr(&msg, "unused weight '%s'", entries[i].key);
                warn(user, msg.msg);
            }
        }
    }
    status = 0;
done:
    nnrt_release(by_offset);
    nnrt_release(by_key);
    nnrt_release(entries);
    nnrt_json_free(&doc);
    return status;
}

/* json.h — the runtime's internal JSON parser (json.c), used for safetensors headers, and the few helpers
 * the runtime's files share (not part of the API: generated code includes only nnrt.h).
 *
 * nnrt_json_parse builds a read-only tree of json_value nodes in an arena owned by a json_doc;
 * nnrt_json_free releases it all at once. Arrays and objects keep their children as a linked list
 * in document order (object members carry their key), which is all a safetensors header needs.
 */
#ifndef NNRT_JSON_H
#define NNRT_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nnrt.h"

#define JSON_MAX_DEPTH 64   /* nesting of arrays and objects; deeper input is an error, not a stack overflow */

typedef enum { JSON_NULL, JSON_FALSE, JSON_TRUE, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } json_type;

typedef struct json_value json_value;
struct json_value {
    json_type type;
    size_t offset;        /* byte offset of the value in the input, for messages */

    double number;        /* JSON_NUMBER: nearest double (+-HUGE_VAL if out of range) */
    bool is_int;          /* JSON_NUMBER written without fraction or exponent, and within int64 */
    int64_t integer;      /* JSON_NUMBER: its exact value when is_int */

    const char *str;      /* JSON_STRING: decoded UTF-8, NUL-terminated (\u0000 may add NULs inside) */
    size_t len;           /* JSON_STRING: bytes in str; JSON_ARRAY, JSON_OBJECT: number of children */

    json_value *first;    /* JSON_ARRAY, JSON_OBJECT: first child */
    json_value *next;     /* next child of the same array or object */
    const char *key;      /* child of an object: its decoded key, NUL-terminated */
    size_t key_len;
};

typedef struct json_block json_block;
typedef struct {
    json_value *root;
    json_block *blocks;   /* the arena holding every node and string */
} json_doc;

/* Parse exactly one JSON value (RFC 8259) from text[0..len), surrounded only by whitespace. Strict: no
 * comments, trailing commas, leading zeros, control characters in strings, lone surrogates or invalid
 * UTF-8. Duplicate object keys are kept (callers decide). Returns 0 with doc filled, or -1 with err
 * saying what was wrong at which byte; on failure doc holds nothing to free. */
int nnrt_json_parse(json_doc *doc, const char *text, size_t len, nnrt_error *err);
void nnrt_json_free(json_doc *doc);

/* The first member of object named key, or NULL. */
const json_value *nnrt_json_get(const json_value *object, const char *key);

/* "object", "array", ... for messages. */
const char *nnrt_json_type_name(json_type type);

/* ---- Helpers internal to the runtime's files ----
 * The runtime's own strlen and memcmp, so that with every NNRT_NO_* switch its objects need no libc
 * beyond memcpy and memset (the strings they see are keys and short texts: a byte loop is fast enough). */
static inline size_t nnrt__strlen(const char *s) {
    size_t n = 0;
    while (s[n]) {
        n++;
#if defined(__GNUC__)
        __asm__("" : "+r"(n));   /* an opaque step, so that gcc does not turn the loop back into strlen() */
#endif
    }
    return n;
}
static inline int nnrt__memcmp(const void *a, const void *b, size_t n) {
    const unsigned char *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i])
            return x[i] < y[i] ? -1 : 1;
    return 0;
}
static inline bool nnrt__streq(const char *a, const char *b) {
    size_t i = 0;
    for (; a[i] && a[i] == b[i]; i++)
        ;
    return a[i] == b[i];
}
#ifdef NNRT_NO_STDIO
#include <stdarg.h>
/* util.c's vsnprintf and snprintf for the conversions the runtime's messages use (see there). */
int nnrt__format(char *buf, size_t size, const char *fmt, va_list ap);
int nnrt__snprintf(char *buf, size_t size, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
#endif

#endif

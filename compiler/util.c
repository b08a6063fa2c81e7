/*
 * util.c — allocation, strings and the two containers (Vec, Buf) that every stage uses.
 *
 * nnc allocates and never frees: a compile is short, and not tracking ownership keeps every stage
 * simple. Allocation failure is the one error that ends the process from deep inside.
 */
#include "nnc.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static void out_of_memory(void) {
    fputs("nnc: error: out of memory\n", stderr);
    exit(2);
}

void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        out_of_memory();
    return p;
}

void *xrealloc(void *p, size_t size) {
    p = realloc(p, size ? size : 1);
    if (!p)
        out_of_memory();
    return p;
}

char *xstrndup(const char *s, size_t n) {
    char *p = xcalloc(n + 1, 1);
    memcpy(p, s, n);
    return p;
}

char *xstrdup(const char *s) { return xstrndup(s, strlen(s)); }

static char *vformat(const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    char *s = xcalloc((size_t)n + 1, 1);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

char *format(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = vformat(fmt, ap);
    va_end(ap);
    return s;
}

void vec_push(Vec *v, void *item) {
    if (v->len == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 8;
        v->items = xrealloc(v->items, sizeof(void *) * (size_t)v->cap);
    }
    v->items[v->len++] = item;
}

static void buf_reserve(Buf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    b->buf = xrealloc(b->buf, cap);
    b->cap = cap;
}

void buf_puts(Buf *b, const char *s) {
    size_t n = strlen(s);
    buf_reserve(b, n);
    memcpy(b->buf + b->len, s, n + 1);
    b->len += n;
}

void buf_printf(Buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = vformat(fmt, ap);
    va_end(ap);
    buf_puts(b, s);
    free(s);
}

char *buf_take(Buf *b) {
    buf_reserve(b, 0);
    char *s = b->buf;
    *b = (Buf){0};
    return s;
}

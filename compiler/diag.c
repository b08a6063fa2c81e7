/*
 * diag.c — source files and clang-style diagnostics.
 *
 *   models/net.net:12:9: error: conv2d expects a rank-4 input [N, C, H, W], found [1, 64]
 *       y = conv2d(x, 64, kernel=3) as conv1
 *           ^~~~~~
 *   models/net.net:30:13: note: in expansion of block 'stem' called here
 *
 * Every message is one line naming what was expected and what was found; the source line and a caret
 * follow. Errors inside a block expansion end with the chain of calls that led there, innermost first.
 */
#include "nnc.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int diag_error_count;
FILE *diag_file;   /* where diagnostics go: stderr when NULL */

static FILE *out(void) { return diag_file ? diag_file : stderr; }
int diag_error_limit = INT_MAX;   /* main sets the command line's limit */
static bool use_color;

void diag_set_color(bool on) { use_color = on; }

static const SrcFile *src_new(const char *path, char *text, size_t len) {
    SrcFile *f = xcalloc(1, sizeof *f);
    f->path = xstrdup(path);
    f->text = text;
    f->len = len;
    return f;
}

const SrcFile *src_load(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    struct stat st;
    if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(fp);
        errno = EISDIR;
        return NULL;
    }
    Buf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0) {
        if (b.len + n > 64u << 20) {   /* a .net file is text someone wrote; refuse megabytes of it */
            fclose(fp);
            errno = EFBIG;
            return NULL;
        }
        if (b.len + n + 1 > b.cap) {
            b.cap = (b.len + n + 1) * 2;
            b.buf = xrealloc(b.buf, b.cap);
        }
        memcpy(b.buf + b.len, chunk, n);
        b.len += n;
    }
    bool failed = ferror(fp);
    fclose(fp);
    if (failed) {
        errno = EIO;
        return NULL;
    }
    size_t len = b.len;
    return src_new(path, buf_take(&b), len);
}

const SrcFile *src_from_string(const char *name, const char *text) {
    return src_new(name, xstrdup(text), strlen(text));
}

Loc loc_span(Loc from, Loc to) {
    if (from.file == to.file && from.line == to.line && to.end_col >= from.col)
        from.end_col = to.end_col;
    return from;
}

/* The text of line `line` of f, without its newline. */
static const char *line_text(const SrcFile *f, int line, int *len) {
    const char *p = f->text, *end = f->text + f->len;
    for (int l = 1; l < line && p < end; p++)
        if (*p == '\n')
            l++;
    const char *q = p;
    while (q < end && *q != '\n' && *q != '\r')
        q++;
    *len = (int)(q - p);
    return p;
}

static void show_source(Loc loc) {
    if (!loc.file || loc.line <= 0)
        return;
    int len;
    const char *text = line_text(loc.file, loc.line, &len);
    for (int i = 0; i < len; i++)   /* NUL bytes and control characters would garble the terminal */
        fputc((unsigned char)text[i] < 32 && text[i] != '\t' ? ' ' : text[i], out());
    fputc('\n', out());
    int col = loc.col < 1 ? 1 : loc.col;
    for (int i = 0; i < col - 1 && i < len; i++)
        fputc(text[i] == '\t' ? '\t' : ' ', out());
    if (use_color)
        fputs("\033[1;32m", out());
    fputc('^', out());
    int end = loc.end_col > len ? len : loc.end_col;
    for (int i = col; i < end; i++)
        fputc('~', out());
    if (use_color)
        fputs("\033[0m", out());
    fputc('\n', out());
}

bool diag_usage_error;

static void vreport(Loc loc, const char *kind, const char *color, const char *fmt, va_list ap) {
    if (loc.file && loc.file->cmdline) {   /* from an option: one line, no source to show */
        fprintf(out(), "nnc: %s: %s: ", kind, loc.file->cmdline);
        vfprintf(out(), fmt, ap);
        fputc('\n', out());
        diag_usage_error = true;
        return;
    }
    if (use_color)
        fputs("\033[1m", out());
    if (loc.file)
        fprintf(out(), "%s:%d:%d: ", loc.file->path, loc.line, loc.col);
    else
        fputs("nnc: ", out());
    if (use_color)
        fprintf(out(), "%s%s:\033[0;1m ", color, kind);
    else
        fprintf(out(), "%s: ", kind);
    vfprintf(out(), fmt, ap);
    if (use_color)
        fputs("\033[0m", out());
    fputc('\n', out());
    show_source(loc);
}

/* Past the error limit nothing more is shown (notes of a silenced error neither). */
#define silenced (diag_error_count > diag_error_limit)

void diag_error(Loc loc, const char *fmt, ...) {
    diag_error_count++;
    if (silenced) {
        if (diag_error_count == diag_error_limit + 1)
            fprintf(out(), "nnc: error: too many errors, stopping after %d\n", diag_error_limit);
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vreport(loc, "error", "\033[31m", fmt, ap);
    va_end(ap);
}

void diag_warning(Loc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport(loc, "warning", "\033[35m", fmt, ap);
    va_end(ap);
}

void diag_note(Loc loc, const char *fmt, ...) {
    if (silenced)
        return;
    va_list ap;
    va_start(ap, fmt);
    vreport(loc, "note", "\033[36m", fmt, ap);
    va_end(ap);
}

/* The block calls around an error, innermost first. A call repeated in a row (recursion) is shown
   once with its count, and a very long chain is cut short. */
void diag_chain(const CallFrame *chain) {
    enum { MAX_SHOWN = 12 };
    int shown = 0;
    for (const CallFrame *f = chain; f;) {
        int times = 1;
        const CallFrame *next = f->parent;
        while (next && next->loc.file == f->loc.file && next->loc.line == f->loc.line && next->loc.col == f->loc.col) {
            times++;
            next = next->parent;
        }
        if (shown == MAX_SHOWN) {
            int rest = 0;
            for (; f; f = f->parent)
                rest++;
            if (!silenced)
                fprintf(out(), "note: and %d more block expansions\n", rest);
            return;
        }
        if (times > 1)
            diag_note(f->loc, "in expansion of %s called here (%d times)", f->block, times);
        else
            diag_note(f->loc, "in expansion of %s called here", f->block);
        shown++;
        f = next;
    }
}

void diag_usage(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("nnc: error: ", out());
    vfprintf(out(), fmt, ap);
    fputc('\n', out());
    va_end(ap);
    diag_usage_error = true;
}

void diag_plain(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("nnc: error: ", out());
    vfprintf(out(), fmt, ap);
    fputc('\n', out());
    va_end(ap);
}

/* A broken invariant of nnc itself (a table without a row, a pass that left the graph inconsistent):
   never the user's fault, so it says so, names the op and where it came from, and exits with status 3. */
_Noreturn void internal_error(const Op *op, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("nnc: internal error: ", out());
    vfprintf(out(), fmt, ap);
    if (op && op->loc.file)
        fprintf(out(), " (op %d, from %s:%d)", op->id, op->loc.file->path, op->loc.line);
    fputs("; please report it\n", out());
    va_end(ap);
    exit(3);
}

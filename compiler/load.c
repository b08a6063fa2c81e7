/*
 * load.c — a program is a file and everything it imports.
 *
 * Each file is parsed once (identified by its real path); an imported file's declarations come
 * before the importing file's, in import order, so `let`s are evaluated in the order a reader meets
 * them. A file that imports itself, directly or through others, is an error.
 */
#include "nnc.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_IMPORT_DEPTH = 64 };

typedef struct {
    Vec done;        /* real paths of files already loaded (char*) */
    Vec active;      /* real paths of files being loaded: the import chain */
    int errors;
} Loader;

static bool contains(const Vec *v, const char *s) {
    for (int i = 0; i < v->len; i++)
        if (strcmp(v->items[i], s) == 0)
            return true;
    return false;
}

static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? xstrndup(path, (size_t)(slash - path + 1)) : xstrdup("");
}

static bool load_file(Loader *L, const char *path, const Loc *from, Vec *decls) {
    char real[PATH_MAX];
    const SrcFile *src = NULL;
    if (realpath(path, real))
        src = src_load(path);
    if (!src) {
        if (from)
            diag_error(*from, "cannot read imported file '%s': %s", path, strerror(errno));
        else
            diag_plain("cannot read '%s': %s", path, strerror(errno));
        L->errors++;
        return false;
    }
    if (contains(&L->active, real)) {
        diag_error(*from, "import cycle: '%s' imports itself", path);
        L->errors++;
        return false;
    }
    if (contains(&L->done, real))
        return true;
    if (L->active.len >= MAX_IMPORT_DEPTH) {
        diag_error(*from, "imports nested deeper than %d files", MAX_IMPORT_DEPTH);
        L->errors++;
        return false;
    }
    vec_push(&L->active, xstrdup(real));
    vec_push(&L->done, xstrdup(real));

    Vec mine = {0};
    if (parse_file(src, &mine) > 0)
        L->errors++;
    char *dir = dir_of(path);
    for (int i = 0; i < mine.len; i++) {
        Decl *d = mine.items[i];
        if (d->kind == DECL_IMPORT) {
            char *target = d->name[0] == '/' ? xstrdup(d->name) : format("%s%s", dir, d->name);
            load_file(L, target, &d->loc, decls);
        } else {
            vec_push(decls, d);
        }
    }
    L->active.len--;
    return true;
}

bool load_program(const char *path, Vec *decls) {
    Loader L = {0};
    load_file(&L, path, NULL, decls);
    return L.errors == 0;
}

/*
 * build.c — the C compiler behind nnc: the flags that build generated C against this nnc's runtime
 * (`nnc --cflags`, `nnc --libs`), and building a program from generated C (`-o PROGRAM`, --bisect).
 */
#include "nnc.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The directory nnc was built in (it holds libnnrt.a), and the repository root above it (runtime/). */
static const char *nnc_dir(int up) {
    static char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0)
        return up ? ".." : ".";
    path[n] = 0;
    for (int i = 0; i < up + 1; i++) {
        char *slash = strrchr(path, '/');
        if (slash)
            *slash = 0;
    }
    return format("%s", path);
}

/* A sanitizer build of nnc (make test-sanitize) builds its programs with the same sanitizers, and by
   default at -O1, as the sanitizers' own documentation suggests: generated C under them compiles at
   -O2 several times slower, and the tests build hundreds of programs. */
#ifdef NNC_SANITIZE
#define SANITIZE_FLAGS " -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
#define DEFAULT_OPT "-O1"
#else
#define SANITIZE_FLAGS ""
#define DEFAULT_OPT "-O2"
#endif

const char *nnc_cflags(void) { return format("-I%s/runtime%s", nnc_dir(1), SANITIZE_FLAGS); }
const char *nnc_libs(void) { return format("%s/libnnrt.a -lm -lpthread%s", nnc_dir(0), SANITIZE_FLAGS); }

static bool write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "nnc: error: cannot write '%s': %s\n", path, strerror(errno));
        return false;
    }
    fputs(text, f);
    if (fclose(f) != 0) {
        fprintf(stderr, "nnc: error: cannot write '%s': %s\n", path, strerror(errno));
        return false;
    }
    return true;
}

int build_c_program(const char *output, const char *header_name, const Target *target, const char *c_text, const char *h_text) {
    char dir[] = "/tmp/nnc-......";
    memset(dir + 9, 'X', 6);   /* mkdtemp's template */
    if (!mkdtemp(dir)) {
        fprintf(stderr, "nnc: error: cannot create a temporary directory: %s\n", strerror(errno));
        return 2;
    }
    const char *base = strrchr(output, '/') ? strrchr(output, '/') + 1 : output;
    char *c_path = format("%s/%s.c", dir, base), *h_path = format("%s/%s", dir, header_name);
    if (!write_text(c_path, c_text) || !write_text(h_path, h_text))
        return 2;
    const char *cc = getenv("CC") && *getenv("CC") ? getenv("CC") : "clang";
    /* the default flags build for the target: -march=native for native, its own -march otherwise */
    const char *march = !target || target == target_native() ? "-march=native" : target->cflags;
    const char *flags = getenv("CFLAGS") && *getenv("CFLAGS") ? getenv("CFLAGS") : format("%s %s", DEFAULT_OPT, march);
    char *cmd = format("%s %s -o '%s' '%s' %s %s", cc, flags, output, c_path, nnc_cflags(), nnc_libs());
    int status = system(cmd);
    unlink(c_path);
    unlink(h_path);
    rmdir(dir);
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "nnc: error: the C compiler failed: %s\n", cmd);
        return 1;
    }
    return 0;
}


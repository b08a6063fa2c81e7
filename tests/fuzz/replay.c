/*
 * replay.c — runs a fuzz target over saved inputs without libFuzzer: `make test` replays every
 * file of the regression corpus (tests/fuzz/regressions/TARGET/) and the seeds, so a crash found
 * once stays fixed. Prints one `ok - ` line per directory and the usual closing line.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return 0;
    }
    size_t size = (size_t)st.st_size;
    uint8_t *data = malloc(size ? size : 1);
    size_t got = fread(data, 1, size, f);
    fclose(f);
    LLVMFuzzerTestOneInput(data, got);
    free(data);
    return 1;
}

#ifdef NNC_SANITIZE
#include <sanitizer/lsan_interface.h>
#endif

int main(int argc, char **argv) {
#ifdef NNC_SANITIZE
    __lsan_disable();   /* the front end frees nothing on purpose */
#endif
    int passed = 0, failed = 0;
    for (int i = 1; i < argc; i++) {
        DIR *dir = opendir(argv[i]);
        if (!dir) {
            printf("FAIL - %s: cannot open\n", argv[i]);
            failed++;
            continue;
        }
        int n = 0;
        struct dirent *e;
        while ((e = readdir(dir))) {
            if (e->d_name[0] == '.')
                continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
            n += replay_file(path) > 0;
        }
        closedir(dir);
        printf("ok - %s: %d inputs replayed without a crash\n", argv[i], n);
        passed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

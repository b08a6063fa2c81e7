/* fashion_demo — classify the Fashion-MNIST test set with a model compiled by nnc.
 *
 * The model is models/fashion_resnet18.net (d2l's ResNet-18, trained by tools/train_fashion.py),
 * compiled to C by nnc; this program uses only the API of the generated header:
 *
 *     build/nnc models/fashion_resnet18.net -D batch=64 -o build/demo/fashion_resnet18.c
 *     cc -O2 -march=native -Ibuild/demo demo/fashion_demo.c build/demo/fashion_resnet18.c \
 *         $(build/nnc --cflags) $(build/nnc --libs) -o build/demo/fashion_demo
 *
 * It works with any batch size the model was compiled for (FASHION_RESNET18_IMAGE_SHAPE); the
 * last, partial batch is padded with blank images whose results are ignored.
 *
 * usage: fashion_demo --weights W.safetensors --images IDX --labels IDX [--threads T]
 *                     [--limit N] [--logits OUT.f32] [--quiet]
 *
 * IDX files are the uncompressed t10k-images-idx3-ubyte / t10k-labels-idx1-ubyte (demo/demo.sh
 * decompresses Debian's dataset-fashion-mnist with gzip -dc). Pixels are normalised as in
 * training: (x / 255 - 0.2860) / 0.3530. Prints the accuracy, images per second (inference
 * only), the confusion matrix and a few predictions. --logits writes the raw f32 outputs
 * [N, 10], for the tests; --quiet prints only the summary line.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fashion_resnet18.h"

#define MEAN 0.2860f
#define STD 0.3530f
#define NCLASS 10

static const char *const class_names[NCLASS] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
};

static void die(const char *fmt, const char *arg) {
    fprintf(stderr, "fashion_demo: error: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    exit(1);
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reads a whole IDX file of unsigned bytes; returns the data, sets dims[0..ndim). */
static unsigned char *read_idx(const char *path, int want_ndim, uint32_t *dims) {
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot open %s", path);
    unsigned char head[4 + 4 * 3];
    if (fread(head, 1, 4, f) != 4 || head[0] || head[1] || head[2] != 0x08 || head[3] != want_ndim)
        die("%s: not an IDX file of unsigned bytes of the expected rank (gzip'd? see demo/demo.sh)", path);
    if (fread(head + 4, 4, (size_t)want_ndim, f) != (size_t)want_ndim) die("%s: truncated header", path);
    size_t n = 1;
    for (int i = 0; i < want_ndim; i++) {
        dims[i] = be32(head + 4 + 4 * i);
        n *= dims[i];
    }
    unsigned char *data = malloc(n ? n : 1);
    if (!data) die("out of memory reading %s", path);
    if (fread(data, 1, n, f) != n) die("%s: truncated data", path);
    fclose(f);
    return data;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int argmax(const float *v, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

static float softmax_max(const float *v, int n) {
    float mx = v[argmax(v, n)], sum = 0;
    for (int i = 0; i < n; i++) sum += expf(v[i] - mx);
    return 1.0f / sum;
}

/* An image as text, 2 pixels per character horizontally: " .:-=+*#%@" by intensity. */
static void print_image(const unsigned char *px, int rows, int cols, const char *indent) {
    static const char ramp[] = " .:-=+*#%@";
    for (int y = 0; y < rows; y += 2) {
        fputs(indent, stdout);
        for (int x = 0; x < cols; x++) {
            int v = (px[y * cols + x] + (y + 1 < rows ? px[(y + 1) * cols + x] : 0)) / 2;
            putchar(ramp[v * 9 / 255]);
        }
        putchar('\n');
    }
}

/* The full report: accuracy, speed, confusion matrix, a few predictions and two mistakes drawn. */
static void report(long n, int rows, int cols, int batch, long threads, double acc, long correct, double ips, double run_time,
                   long confusion[NCLASS][NCLASS], const unsigned char *images, const unsigned char *labels, const float *logits,
                   const int *pred) {
    const int pixels = rows * cols;
    printf("Fashion-MNIST test set: %ld images of %dx%d, d2l ResNet-18 compiled by nnc (batch %d, %ld thread%s)\n\n",
           n, rows, cols, batch, threads, threads == 1 ? "" : "s");
    printf("accuracy:    %.2f %% (%ld of %ld correct)\n", acc, correct, n);
    printf("throughput:  %.0f images/s (%.3f ms per image, %.2f s for all)\n\n", ips,
           n ? 1000.0 * run_time / n : 0.0, run_time);

    printf("confusion matrix (rows: true class, columns: predicted)\n");
    printf("%12s", "");
    for (int c = 0; c < NCLASS; c++) printf(" %5.5s", class_names[c]);
    printf("  recall\n");
    for (int r = 0; r < NCLASS; r++) {
        long total = 0;
        printf("%12s", class_names[r]);
        for (int c = 0; c < NCLASS; c++) {
            printf(" %5ld", confusion[r][c]);
            total += confusion[r][c];
        }
        printf("  %5.1f %%\n", total ? 100.0 * confusion[r][r] / total : 0.0);
    }

    printf("\na few predictions\n");
    int shown = 0;
    for (long i = 0; i < n && shown < 8; i++, shown++) {
        const float *v = logits + i * NCLASS;
        printf("  image %5ld: %-11s predicted %-11s (%5.1f %%) %s\n", i, class_names[labels[i]], class_names[pred[i]],
               100.0 * softmax_max(v, NCLASS), pred[i] == labels[i] ? "right" : "WRONG");
    }
    for (long i = 0, wrong = 0; i < n && wrong < 2; i++) {
        if (pred[i] == labels[i]) continue;
        wrong++;
        printf("\n  image %ld, a mistake: %s, predicted %s (%.1f %%)\n", i, class_names[labels[i]],
               class_names[pred[i]], 100.0 * softmax_max(logits + i * NCLASS, NCLASS));
        print_image(images + (size_t)i * pixels, rows, cols, "    |");
    }

}

int main(int argc, char **argv) {
    const char *weights = NULL, *images_path = NULL, *labels_path = NULL, *logits_path = NULL;
    long threads = sysconf(_SC_NPROCESSORS_ONLN), limit = -1;
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--quiet")) { quiet = 1; continue; }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: %s --weights W.safetensors --images IDX --labels IDX [--threads T] "
                   "[--limit N] [--logits OUT.f32] [--quiet]\n", argv[0]);
            return 0;
        }
        if (i + 1 >= argc) die("%s needs a value (see --help)", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--weights")) weights = v;
        else if (!strcmp(a, "--images")) images_path = v;
        else if (!strcmp(a, "--labels")) labels_path = v;
        else if (!strcmp(a, "--logits")) logits_path = v;
        else if (!strcmp(a, "--threads")) threads = strtol(v, NULL, 10);
        else if (!strcmp(a, "--limit")) limit = strtol(v, NULL, 10);
        else die("unknown option %s (see --help)", a);
    }
    if (!weights || !images_path || !labels_path) die("%s", "--weights, --images and --labels are required (see --help)");
    if (threads < 1) threads = 1;

    static const int shape[] = FASHION_RESNET18_IMAGE_SHAPE;
    const int batch = shape[0], rows = shape[2], cols = shape[3];
    const int pixels = rows * cols;
    if (shape[1] != 1 || FASHION_RESNET18_OUTPUT_SIZE != batch * NCLASS)
        die("%s", "the model is not a 1-channel, 10-class classifier");

    uint32_t idims[3], ldims[1];
    unsigned char *images = read_idx(images_path, 3, idims);
    unsigned char *labels = read_idx(labels_path, 1, ldims);
    if (idims[1] != (uint32_t)rows || idims[2] != (uint32_t)cols) die("%s: images are not the model's size", images_path);
    if (idims[0] != ldims[0]) die("%s: not as many labels as images", labels_path);
    long n = idims[0];
    if (limit >= 0 && limit < n) n = limit;

    fashion_resnet18 *m = fashion_resnet18_new((int)threads);
    if (!m) die("%s", "out of memory creating the model");
    fashion_resnet18_on_warning(m, NULL, NULL); /* num_batches_tracked: in the file, unused */
    if (fashion_resnet18_load(m, weights) != 0) die("%s", fashion_resnet18_last_error(m));

    float *input = malloc(sizeof(float) * (size_t)batch * pixels);
    float *logits = malloc(sizeof(float) * (size_t)(n + batch) * NCLASS);
    if (!input || !logits) die("%s", "out of memory");

    double run_time = 0;
    for (long start = 0; start < n; start += batch) {
        long count = n - start < batch ? n - start : batch;
        for (long b = 0; b < batch; b++) {
            const unsigned char *px = images + (size_t)(start + (b < count ? b : 0)) * pixels;
            for (int p = 0; p < pixels; p++)
                input[b * pixels + p] = b < count ? (px[p] / 255.0f - MEAN) / STD : 0.0f;
        }
        double t0 = now();
        if (fashion_resnet18_run(m, input, logits + (size_t)start * NCLASS) != 0)
            die("%s", fashion_resnet18_last_error(m));
        run_time += now() - t0;
    }

    if (logits_path) {
        FILE *f = fopen(logits_path, "wb");
        if (!f || fwrite(logits, sizeof(float) * NCLASS, (size_t)n, f) != (size_t)n || fclose(f) != 0)
            die("cannot write %s", logits_path);
    }

    long confusion[NCLASS][NCLASS] = {{0}}, correct = 0;
    int *pred = malloc(sizeof(int) * (size_t)(n ? n : 1));
    for (long i = 0; i < n; i++) {
        pred[i] = argmax(logits + i * NCLASS, NCLASS);
        if (labels[i] >= NCLASS) die("%s: a label is out of range", labels_path);
        confusion[labels[i]][pred[i]]++;
        correct += pred[i] == labels[i];
    }
    double acc = n ? 100.0 * correct / n : 0;
    double ips = run_time > 0 ? n / run_time : 0;

    if (quiet)
        printf("accuracy %.2f %% (%ld/%ld), %.0f images/s, batch %d, %ld thread%s\n", acc, correct, n, ips, batch, threads,
               threads == 1 ? "" : "s");
    else
        report(n, rows, cols, batch, threads, acc, correct, ips, run_time, confusion, images, labels, logits, pred);

    free(pred);
    free(logits);
    free(input);
    free(images);
    free(labels);
    fashion_resnet18_free(m);
    return 0;
}

/* fold.c — nnk_fold_batchnorm, in float, against the fold computed in double from the same floats.
 *
 * 4096 channels of 64 weights with gamma in [0.5, 1.5), var in [1e-4, 4), mean, beta, weights and biases in
 * [-2, 2) (a splitmix64 sequence): prints the largest error of a folded weight relative to its exact value,
 * and of a folded bias relative to max(|b * s|, |mean * s|, |beta|) (the size of its terms), then exits 1 when
 * either exceeds 4 ulp of float (4.8e-7), the bound nnk_norm.h states.
 *
 *     cc -std=c11 -Iruntime tests/embedded/fold.c -lm && ./a.out
 */
#include "kernels/nnk.h"

#include <math.h>
#include <stdio.h>

static uint64_t state = 7;
static float uniform(float lo, float hi) {
    uint64_t z = (state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    z ^= z >> 31;
    return lo + (hi - lo) * (float)(z >> 40) * 0x1p-24f;
}

enum { O = 4096, PER = 64 };
static float w[O * PER], w0[O * PER], b[O], b0[O], gamma_[O], beta[O], mean[O], var[O];

int main(void) {
    for (int o = 0; o < O; o++) {
        gamma_[o] = uniform(0.5f, 1.5f), beta[o] = uniform(-2, 2), mean[o] = uniform(-2, 2);
        var[o] = uniform(1e-4f, 4), b[o] = b0[o] = uniform(-2, 2);
        for (int i = 0; i < PER; i++)
            w[o * PER + i] = w0[o * PER + i] = uniform(-2, 2);
    }
    const float eps = 1e-5f;
    nnk_fold_batchnorm(w, b, gamma_, beta, mean, var, O, PER, eps);
    double worst_w = 0, worst_b = 0;
    for (int o = 0; o < O; o++) {
        double s = (double)gamma_[o] / sqrt((double)var[o] + (double)eps);
        for (int i = 0; i < PER; i++) {
            double exact = w0[o * PER + i] * s;
            if (exact != 0)
                worst_w = fmax(worst_w, fabs(w[o * PER + i] - exact) / fabs(exact));
        }
        double exact = ((double)b0[o] - mean[o]) * s + beta[o];
        double scale = fmax(fabs(b0[o] * s), fmax(fabs(mean[o] * s), fabs((double)beta[o])));
        worst_b = fmax(worst_b, fabs(b[o] - exact) / scale);
    }
    printf("fold: weights within %.3g, biases within %.3g (relative)\n", worst_w, worst_b);
    return worst_w <= 4.8e-7 && worst_b <= 4.8e-7 ? 0 : 1;
}

/* fastmath.c — the kernels' own math, checked when compiled with -ffast-math (or without).
 *
 * nnk__exp against libm's exp in double over [-87, 88.7] (the normal results), in ulp; sigmoid, gelu and
 * softmax against double; layer norm against double on rows with a large common offset. Prints one
 * `ok - NAME (measure, limit)` or `FAIL - NAME: measure, limit` line per check, then `N passed, N failed`. The limits are
 * those the kernels promise under -ffast-math (nnk_base.h): 2 ulp, 1e-6 for the rest (5e-6 for a softmax
 * of 1000, whose sum is one running sum).
 *
 *     cc -std=c11 -O2 -ffast-math -Iruntime tests/cross/fastmath.c -lm && ./a.out
 */
#include "kernels/nnk.h"

#include <stdio.h>
#include <stdlib.h>

static int passed, failed;

static void report(const char *name, double measure, double limit, const char *unit) {
    int good = measure <= limit;   /* (a NaN measure fails) */
    printf(good ? "ok - %s (%.3g%s%s, limit %g)\n" : "FAIL - %s: %.3g%s%s, limit %g\n", name, measure, *unit ? " " : "", unit,
           limit);
    good ? passed++ : failed++;
}

/* the spacing of floats at v (subnormal below 2^-126) */
static double ulp_of(double v) {
    int e;
    frexp(v, &e);
    return ldexp(1.0, e - 24 < -149 ? -149 : e - 24);
}

int main(void) {
    enum { N = 1 << 20 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    for (long i = 0; i < N; i++)
        x[i] = -87.0f + 175.7f * (float)i / N;
    for (long i = 0; i < N; i++)
        y[i] = nnk__exp(x[i]);
    double worst = 0;
    for (long i = 0; i < N; i++) {
        double r = exp((double)x[i]), u = fabs((double)y[i] - r) / ulp_of(r);
        worst = u > worst || u != u ? u : worst;
    }
    report("nnk__exp over [-87, 88.7] against libm", worst, 2.0, "ulp");
    float e1 = nnk__exp(-1.0f);
    report("nnk__exp(-1)", fabs(e1 - 0.36787944117144233) / 0.36787944117144233, 2e-7, "relative");

    for (long i = 0; i < N; i++)
        x[i] = -40.0f + 80.0f * (float)i / N;
    nnk_sigmoid(y, x, N);
    worst = 0;
    for (long i = 0; i < N; i++) {
        double r = 1 / (1 + exp(-(double)x[i])), d = fabs(y[i] - r) / fmax(r, 1e-30);
        worst = r > 1e-30 && (d > worst || d != d) ? d : worst;
    }
    report("sigmoid over [-40, 40], relative", worst, 1e-6, "");
    nnk_gelu(y, x, N);
    worst = 0;
    for (long i = 0; i < N; i++) {
        double r = 0.5 * x[i] * (1 + erf(x[i] / sqrt(2.0))), d = fabs(y[i] - r) / fmax(1, fabs(r));
        worst = d > worst || d != d ? d : worst;
    }
    report("gelu over [-40, 40], relative to max(1, |ref|)", worst, 1e-6, "");

    float s[1000], sy[1000];
    for (int i = 0; i < 1000; i++)
        s[i] = (float)((i * 37) % 1000) * 0.02f - 10.0f;
    nnk_softmax(sy, s, 1, 1000, 1);
    double mx = -1e30, den = 0;
    for (int i = 0; i < 1000; i++)
        mx = fmax(mx, s[i]);
    for (int i = 0; i < 1000; i++)
        den += exp(s[i] - mx);
    worst = 0;
    for (int i = 0; i < 1000; i++) {
        double r = exp(s[i] - mx) / den, d = fabs(sy[i] - r) / r;
        worst = d > worst || d != d ? d : worst;
    }
    report("softmax of 1000, relative", worst, 5e-6, "");   /* (one running sum of 1000 terms) */

    static const int Ds[] = {7, 768, 1000, 4096};
    static const double offsets[] = {0, 1000, 10000};
    worst = 0;
    float *g = malloc(4096 * sizeof *g), *b = malloc(4096 * sizeof *b);
    for (int i = 0; i < 4096; i++)
        g[i] = 1, b[i] = 0;
    for (int di = 0; di < 4; di++)
        for (int oi = 0; oi < 3; oi++) {
            int D = Ds[di];
            for (int i = 0; i < D; i++)
                x[i] = (float)(offsets[oi] + ((i * 7919) % 1000) * 0.0034 - 1.7);
            nnk_layernorm(y, x, g, b, 1, D, 1e-5f);
            double m = 0, v = 0, big = 0, err = 0;
            for (int i = 0; i < D; i++)
                m += x[i];
            m /= D;
            for (int i = 0; i < D; i++)
                v += (x[i] - m) * (x[i] - m);
            v /= D;
            for (int i = 0; i < D; i++) {
                double r = (x[i] - m) / sqrt(v + 1e-5);
                big = fmax(big, fabs(r));
                err = fmax(err, fabs(y[i] - r));
            }
            worst = fmax(worst, err / big);
        }
    report("layernorm, rows of 7 to 4096 with offsets up to 1e4, relative to max|ref|", worst, 1e-6, "");
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

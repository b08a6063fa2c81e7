/*
 * emit_embed.c — --embed-weights.
 */
#include "emit_c.h"

#include "nnrt.h"
#include "kernels/nnk.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* --embed-weights: the weights are loaded and checked here, at compile time, with the runtime's own
   loader; the derived weights and batch-norm folds are computed here too, and the finished weight
   block goes into the C as 32-bit words (exact, and compact enough). The program then needs no file
   and no parsing: loading is a copy. */
bool emit_embedded(Emitter *e, Buf *c) {
    const Graph *g = e->g;
    nnrt_error err;
    nnrt_file file;
    if (nnrt_map_file(e->o->weights_path, &file, &err) != 0) {
        diag_plain("--weights: %s", err.msg);
        return false;
    }
    nnrt_weight_spec *specs = xcalloc((size_t)g->weights.len + 1, sizeof *specs);
    size_t n = 0;
    for (int i = 0; i < g->weights.len; i++) {
        Tensor *t = g->weights.items[i];
        if (t->derived)
            continue;
        specs[n] = (nnrt_weight_spec){.key = t->name, .rank = t->rank, .offset = (size_t)e->weight_at[t->id]};
        memcpy(specs[n].dims, t->dims, sizeof(int64_t) * (size_t)t->rank);
        n++;
    }
    float *w = xcalloc((size_t)e->weight_floats + 1, sizeof *w);
    int status = nnrt_load_safetensors(file.data, file.size, specs, n, w, NULL, NULL, &err);
    nnrt_unmap_file(&file);
    if (status != 0) {   /* the weights do not fit the model: an error in the input, exit status 1 */
        diag_plain("--weights %s: %s", e->o->weights_path, err.msg);
        diag_error_count++;
        return false;
    }
    for (int i = 0; i < g->folds.len; i++) {   /* what prepare() does at load time for a file */
        BnFold *f = g->folds.items[i];
        int64_t O = f->weight->dims[0];
        nnk_fold_batchnorm(w + e->weight_at[f->weight->id], w + e->weight_at[f->bias->id], w + e->weight_at[f->gamma->id],
                           w + e->weight_at[f->beta->id], w + e->weight_at[f->mean->id], w + e->weight_at[f->var->id], (int)O,
                           tensor_numel(f->weight) / O, (float)f->eps);
    }
    float *tmp = xcalloc((size_t)largest_packed(e) + 1, sizeof *tmp);
    for (int i = 0; i < e->packed.len; i++) {
        const Packed *p = e->packed.items[i];
        nnk_pack_weight(w + e->weight_at[p->w->id], (int)p->w->dims[0], tensor_numel(p->w) / p->w->dims[0], p->width, tmp);
    }
    if (e->stage) {   /* --embed-weights=f16|bf16: rounded to nearest even, once folded and packed */
        bool f16 = e->o->embed_dtype == EMBED_F16;
        buf_printf(c, "/* The weights of %s, embedded with --embed-weights=%s: checked, batch norms folded and the weights of\n"
                      "   blocked products packed by nnc, then rounded to %s. */\n",
                   e->o->weights_path, f16 ? "f16" : "bf16", f16 ? "IEEE half precision" : "bfloat16");
        buf_printf(c, "static const _Alignas(64) uint16_t embedded_half[%lld] = {\n", (long long)(e->weight_floats > 0 ? e->weight_floats : 1));
        for (int64_t i = 0; i < e->weight_floats; i++)
            buf_printf(c, "0x%04x,%s", f16 ? nnk_f32_to_f16(w[i]) : nnk_f32_to_bf16(w[i]), i % 16 == 15 ? "\n" : "");
        buf_printf(c, "%s};\n\n/* The embedded weights, used in place: each op widens those it reads (WS). */\n"
                      "int %s_load_embedded(%s *m) {\n    m->half = embedded_half;\n    return 0;\n}\n\n",
                   e->weight_floats % 16 ? "\n" : "", e->id, e->id);
        free(w);
        return true;
    }
    buf_printf(c, "/* The weights of %s, embedded with --embed-weights: checked, batch norms folded and the weights of\n"
                  "   blocked products packed, by nnc. */\n", e->o->weights_path);
    buf_printf(c, "static const _Alignas(64) union {\n    uint32_t bits[%lld];\n    float f[%lld];\n} embedded_weights = {{\n",
               (long long)(e->weight_floats > 0 ? e->weight_floats : 1), (long long)(e->weight_floats > 0 ? e->weight_floats : 1));
    for (int64_t i = 0; i < e->weight_floats; i++) {
        uint32_t bits;
        memcpy(&bits, &w[i], 4);
        buf_printf(c, "0x%08x,%s", bits, i % 8 == 7 ? "\n" : "");
    }
    buf_printf(c, "%s}};\n\n/* The embedded weights, used in place: nothing writes the weights once they are loaded. */\n"
                  "int %s_load_embedded(%s *m) {\n    m->weights = (float *)embedded_weights.f;\n    return 0;\n}\n\n",
               e->weight_floats % 8 ? "\n" : "", e->id, e->id);
    free(w);
    return true;
}

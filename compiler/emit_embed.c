/*
 * emit_embed.c — --embed-weights.
 */
#include "emit_c.h"

#include "nnrt.h"
#include "kernels/nnk.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool write_bytes(const char *path, const unsigned char *bytes, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(bytes, 1, n, f) != n || fclose(f) != 0) {
        diag_plain("cannot write '%s'", path);
        return false;
    }
    return true;
}

/* --embed-weights: the weights are loaded and checked here, at compile time, with the runtime's own
   loader; the derived weights and batch-norm folds are computed here too, and the finished weight
   block goes into the C as 32-bit words (exact), or 16-bit ones with --embed-weights=f16|bf16, and
   beside it as a file of their bytes that the assembler includes (.incbin) where it can. The program
   then needs no file and no parsing, and uses them in place. */
bool emit_embedded(Emitter *e, Buf *c) {
    const Graph *g = e->g;
    nnrt_error err;
    nnrt_file file;
    if (nnrt_map_file(e->o->weights_path, &file, &err) != 0) {
        diag_plain("--weights: %s", err.msg);
        return false;
    }
    nnrt_weight_spec *specs = xcalloc((size_t)g->weights.len + 1, sizeof *specs);
    int64_t *limits = xcalloc((size_t)g->weights.len + 1, sizeof *limits);   /* of index tensors */
    size_t n = 0;
    for (int i = 0; i < g->weights.len; i++) {
        Tensor *t = g->weights.items[i];
        if (t->derived)
            continue;
        specs[n] = (nnrt_weight_spec){.key = t->name, .rank = t->rank, .offset = (size_t)e->weight_at[t->id]};
        memcpy(specs[n].dims, t->dims, sizeof(int64_t) * (size_t)t->rank);
        limits[n++] = t->index_limit;
    }
    float *w = xcalloc((size_t)e->weight_floats + 1, sizeof *w);
    int status = nnrt_load_safetensors_indexed(file.data, file.size, specs, n, limits, w, NULL, NULL, &err);
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
        float *at = w + e->weight_at[p->w->id];
        int O = (int)p->w->dims[0];
        switch (pack_kind(p)) {
        case PACK_GEMV:
            nnk_pack_gemv(at, O, tensor_numel(p->w) / O, tmp);
            break;
        case PACK_CONV_WINDOW: {
            const Impl *m = &p->window->impl;
            nnk_pack_conv_taps(at, O, (int)p->w->dims[1], (int)p->w->dims[2], (int)p->w->dims[3], p->groups, p->nchwc, m->tap0[0], m->tap0[1],
                               m->taps[0], m->taps[1], w + e->weight_at[VEC_AT(p->window->in, 2, const Tensor *)->id], tmp);
            break;
        }
        case PACK_CONV:
            nnk_pack_conv(at, O, (int)p->w->dims[1], (int)p->w->dims[2], (int)p->w->dims[3], p->groups, p->nchwc, tmp);
            break;
        case PACK_STRIPS:
            nnk_pack_weight(at, O, tensor_numel(p->w) / O, p->width, tmp);
            break;
        }
    }
    bool half = e->stage != NULL, f16 = e->o->embed_dtype == EMBED_F16;
    int64_t nw = e->weight_floats;
    unsigned char *bytes = xcalloc((size_t)nw * 4 + 1, 1);   /* little-endian, as .incbin includes them */
    for (int64_t i = 0; i < nw; i++) {
        uint32_t bits;
        memcpy(&bits, &w[i], 4);
        if (half)
            bits = f16 ? nnk_f32_to_f16(w[i]) : nnk_f32_to_bf16(w[i]);
        for (int b = 0; b < (half ? 2 : 4); b++)
            bytes[i * (half ? 2 : 4) + b] = (unsigned char)(bits >> (8 * b));
    }
    const char *bin = e->o->weights_bin_path;
    if (bin && strpbrk(bin, "\"\\\n"))   /* a name the assembler's string cannot hold as it is: the C array only */
        bin = NULL;
    if (bin && !write_bytes(bin, bytes, (size_t)nw * (half ? 2 : 4)))
        return false;
    if (half)
        buf_printf(c, "/* The weights of %s, embedded with --embed-weights=%s: checked, batch norms folded and the weights of\n"
                      "   blocked products packed by nnc, then rounded to %s. */\n",
                   e->o->weights_path, f16 ? "f16" : "bf16", f16 ? "IEEE half precision" : "bfloat16");
    else
        buf_printf(c, "/* The weights of %s, embedded with --embed-weights: checked, batch norms folded and the weights of\n"
                      "   blocked products packed, by nnc. */\n", e->o->weights_path);
    if (bin) {
        const char *sym = format("nnc_%s_weights", e->id);
        buf_printf(c, "/* Their bytes, which the assembler includes as they are (fast to compile: seconds where the array below\n"
                      "   takes a C compiler a minute for ResNet-18), from %s_WEIGHTS_FILE; on another compiler or object format,\n"
                      "   a big-endian target, or with -DNNC_NO_INCBIN, the same bytes as a C array. */\n", e->ID);
        buf_printf(c, "#if defined(__GNUC__) && defined(__ELF__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && !defined(NNC_NO_INCBIN)\n"
                      "#ifndef %s_WEIGHTS_FILE\n#define %s_WEIGHTS_FILE \"%s\"\n#endif\n",
                   e->ID, e->ID, bin);
        buf_printf(c, "__asm__(\".section .rodata.%s,\\\"a\\\",%%progbits\\n.balign 64\\n%s:\\n.incbin \\\"\" %s_WEIGHTS_FILE \"\\\"\\n\"\n"
                      "        \".size %s, %lld\\n.previous\\n\");\n",
                   sym, sym, e->ID, sym, (long long)nw * (half ? 2 : 4));
        buf_printf(c, "extern const %s embedded_weights[] __asm__(\"%s\");\n#define NNC_EMBEDDED_WEIGHTS embedded_weights\n#else\n", half ? "uint16_t" : "float", sym);
    }
    long long len = nw > 0 ? nw : 1;
    Buf array = {0}, *a = c;   /* the C array, in the C or in a file it includes (which then costs nothing when skipped) */
    const char *inc = bin ? e->o->weights_inc_path : NULL;
    if (inc) {
        a = &array;
        buf_printf(c, "#include \"%s\"   /* the same bytes as a C array, written by nnc beside them */\n", e->o->weights_inc_name);
        buf_printf(a, "/* The weights of model '%s' as a C array, for compilers that cannot include %s itself. */\n", g->name, bin);
    }
    if (half) {
        buf_printf(a, "static const _Alignas(64) uint16_t embedded_weights[%lld] = {\n", len);
        for (int64_t i = 0; i < nw; i++)
            buf_printf(a, "0x%02x%02x,%s", bytes[2 * i + 1], bytes[2 * i], i % 16 == 15 ? "\n" : "");
        buf_printf(a, "%s};\n#define NNC_EMBEDDED_WEIGHTS embedded_weights\n", nw % 16 ? "\n" : "");
    } else {
        buf_printf(a, "static const _Alignas(64) union {\n    uint32_t bits[%lld];\n    float f[%lld];\n} embedded_weights = {{\n", len, len);
        for (int64_t i = 0; i < nw; i++)
            buf_printf(a, "0x%02x%02x%02x%02x,%s", bytes[4 * i + 3], bytes[4 * i + 2], bytes[4 * i + 1], bytes[4 * i], i % 8 == 7 ? "\n" : "");
        buf_printf(a, "%s}};\n#define NNC_EMBEDDED_WEIGHTS embedded_weights.f\n", nw % 8 ? "\n" : "");
    }
    if (inc && !write_bytes(inc, (const unsigned char *)array.buf, array.len))
        return false;
    if (bin)
        buf_puts(c, "#endif\n");
    if (half)
        buf_printf(c, "\n/* The embedded weights, used in place: each op widens those it reads (WS). */\n"
                      "int %s_load_embedded(%s *m) {\n    m->half = NNC_EMBEDDED_WEIGHTS;\n    return 0;\n}\n\n", e->id, e->id);
    else
        buf_printf(c, "\n/* The embedded weights, used in place: nothing writes the weights once they are loaded. */\n"
                      "int %s_load_embedded(%s *m) {\n    m->weights = (float *)NNC_EMBEDDED_WEIGHTS;\n    return 0;\n}\n\n", e->id, e->id);
    free(bytes);
    free(w);
    return true;
}

/*
 * nnk.h — the reference kernels of the nnc runtime: one include for generated code.
 *
 * Header-only and `static inline`, so that the C compiler specialises each call on the compile-time
 * constant shapes the generated code passes. These are the reference versions: plain loop nests with
 * PyTorch's exact semantics (float32, NCHW, contiguous), written so that inner loops are unit-stride and
 * vectorisable. Faster tiled kernels live beside them and are checked against them.
 *
 *   nnk_base.h         shared includes and helpers (dot product, strided offsets, valid window ranges)
 *   nnk_elementwise.h  relu gelu gelu_tanh sigmoid tanh silu neg, binary (broadcasting), scalar
 *   nnk_norm.h         batchnorm layernorm softmax
 *   nnk_conv.h         conv2d
 *   nnk_pool.h         maxpool2d avgpool2d adaptive_avgpool2d
 *   nnk_matmul.h       linear matmul
 *   nnk_gemm.h         blocked matrix product: conv2d (groups 1) and linear, with fused epilogues
 *   nnk_layout.h       pad copy_axis slice broadcast transpose
 *   nnk_attention.h    sdpa mha
 *   nnk_half.h         F16 and BF16 weights to and from float
 *
 * Every kernel takes its outputs first and its dimensions last, and depends only on libc and libm.
 */
#ifndef NNK_H
#define NNK_H

#include "nnk_base.h"
#include "nnk_elementwise.h"
#include "nnk_norm.h"
#include "nnk_conv.h"
#include "nnk_pool.h"
#include "nnk_matmul.h"
#include "nnk_gemm.h"
#include "nnk_layout.h"
#include "nnk_attention.h"
#include "nnk_half.h"

#endif

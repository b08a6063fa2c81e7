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
 *   nnk_gemv.h         linear of a few rows (a classifier at batch 1) from a weight in panels
 *   nnk_dwconv.h       depthwise conv2d (vectorised rows) and grouped conv2d (a product per group)
 *   nnk_layout.h       pad copy_axis slice broadcast transpose
 *   nnk_attention.h    sdpa mha
 *   nnk_conv_nchwc.h   conv2d, max and global average pooling on channel-blocked NCHW16c activations
 *   nnk_winograd.h     3×3 stride-1 conv2d by Winograd's F(4×4, 3×3) and F(2×2, 3×3), on the same layout
 *   nnk_attention.h    sdpa mha (masks included)
 *   nnk_tensor.h       index_select full arange where reduce
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
#include "nnk_dwconv.h"
#include "nnk_layout.h"
#include "nnk_attention.h"
#include "nnk_conv_nchwc.h"
#include "nnk_winograd.h"
#include "nnk_gemv.h"
#include "nnk_tensor.h"
#include "nnk_half.h"

#endif

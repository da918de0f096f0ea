// Elementwise kernels in C, so that x86-64 machines with AVX2 run them eight lanes per instruction (Swift
// compiles for the x86-64 baseline, SSE2, and has no per-function target features). Each kernel is built
// twice — for AVX2 and for the baseline — and the plain name calls the AVX2 build when the CPU has AVX2.
// Both builds do the same IEEE operations lane by lane in the same order, with no fused multiply-adds, so
// their results are bit-identical to each other and to the Swift `VectorExp` they mirror (tests call both).
#ifndef ARBITER_CKERNELS_H
#define ARBITER_CKERNELS_H

#include <stdint.h>

/// values[i] = e^(values[i] − shift) for i < count, in place; returns the sum of the results (eight lane
/// sums, then the lanes in order: independent of where the values sit in memory). `VectorExp.expShifted`.
float arbiter_exp_shifted(float *values, long count, float shift);

/// x[i] = x[i] / (1 + e^(−k·x[i])), times factor[i] when `factor` is not NULL, for i < count, in place:
/// SiLU for k = 1 (and the gated unit act(gate)·up), quick_gelu for k = 1.702.
void arbiter_sigmoid_scaled(float *x, const float *factor, long count, float k);

/// Softmax of one row in place, max-subtracted, with the special values of `softmaxRows`: trailing −inf
/// entries (a causal mask's future keys) become 0 (only those in the last group of eight go through the
/// exp, where e^−inf = 0), a row of only −inf all 0, a NaN anywhere makes the row NaN, +inf entries share
/// the mass equally.
void arbiter_softmax_row(float *row, long columns);

/// The attention pattern of rows `first..<end` of unmasked `[heads, queries, keys]` scores, in place: row r,
/// query r % queries at position r % queries + offset, gets the softmax of its keys 0...that position (the
/// later ones are not read, and become 0) — bit for bit `arbiter_softmax_row` on the row with the later keys
/// set to −inf (`applyCausalMask`), without writing them.
void arbiter_softmax_causal(float *scores, long first, long end, long queries, long keys, long offset);

/// Rotate-half rotary embedding in place: for each of `tokens` rows of `heads` heads of width `head_dim`
/// in `x`, the first `dimension` features become x·cos + rotate_half(x)·sin with the row's `dimension`
/// entries of `cos_table`/`sin_table` (`RotaryTables.apply`).
void arbiter_rotary(float *x, const float *cos_table, const float *sin_table, long tokens, long heads, long head_dim,
                    long dimension);

/// Attention scores of every head of one run, `[heads, t, keys]` row-major: scores[h, i, j] = scale · Σ_d
/// q[i, h·D + d] · k[j, kv(h)·D + d] (kv(h) = h / (heads / kv_heads)), each sum a chain of fused multiply-adds
/// over d = 0, 1, … from zero, then times `scale` — OpenBLAS sgemm's arithmetic per element. Key row j is row j
/// of `keys0` for j < rows0 (a cached prefix), else row j − rows0 of `keys1`; both with row stride `ldk`; q has
/// row stride `ldq`. With causal_offset ≥ 0, query i needs keys 0...i + causal_offset only: later entries of
/// its row may be left unwritten. `variant`: −1 the best build for this CPU, 0 the baseline, 1 the AVX2+FMA
/// build (only where `arbiter_has_fma`). Returns 0, or −1 when scratch memory cannot be allocated.
int arbiter_attention_scores_variant(int variant, const float *q, long ldq, const float *keys0, long rows0,
                                     const float *keys1, long ldk, long t, long keys, long heads, long kv_heads,
                                     long head_dim, float scale, long causal_offset, float *scores);

/// z[i, h·D + d] (row stride ldz) = Σ_j pattern[h, i, j] · v[j, kv(h)·D + d] over every key j < keys (zeros
/// included, as sgemm), a chain of fused multiply-adds over j = 0, 1, … from zero; value rows as the keys of
/// `arbiter_attention_scores_variant`.
void arbiter_attention_mix_variant(int variant, const float *pattern, const float *values0, long rows0,
                                   const float *values1, long ldv, long t, long keys, long heads, long kv_heads,
                                   long head_dim, float *z, long ldz);

/// 1 when the CPU runs the AVX2+FMA builds of the attention kernels.
int arbiter_has_fma(void);

/// glibc: allocations below `mmap_threshold` bytes come from the heap, up to `trim_threshold` bytes of free heap
/// are kept, and heaps grow and shrink by `top_pad` bytes more than needed (`Allocator.keepFreedMemory`);
/// elsewhere nothing.
void arbiter_keep_freed_memory(long mmap_threshold, long trim_threshold, long top_pad);

/// The baseline builds (what the plain names run on CPUs without AVX2), for tests.
float arbiter_exp_shifted_baseline(float *values, long count, float shift);
void arbiter_sigmoid_scaled_baseline(float *x, const float *factor, long count, float k);
void arbiter_softmax_row_baseline(float *row, long columns);
void arbiter_softmax_causal_baseline(float *scores, long first, long end, long queries, long keys, long offset);
void arbiter_rotary_baseline(float *x, const float *cos_table, const float *sin_table, long tokens, long heads,
                             long head_dim, long dimension);

/// 1 when this CPU has AVX512-BF16 (VDPBF16PS), so that the two functions below run; 0 otherwise.
int arbiter_has_avx512bf16(void);

/// Rounds rows of x (n × in, row stride ldx floats) to bf16 (nearest even; denormals → 0, as VCVTNE2PS2BF16)
/// and packs them in pairs: xp[r · pairs + p] = bf16(x[r][2p]) | bf16(x[r][2p+1]) << 16, with
/// pairs = (in + 1) / 2 and 0 for the missing half of an odd row. Returns -1 (and does nothing) without
/// AVX512-BF16.
int arbiter_bf16_pack_rows(const float *x, long n, long in, long ldx, uint32_t *xp);

/// out[r · ldo + j] = Σ_p over pairs, in order, of xp's pair p of row r times pair p of W row j, with
/// VDPBF16PS arithmetic (see kernels.c), for r < n and j < outputs; `w` is `outputs` rows of `in` bf16 values
/// (any alignment). Columns of out past `outputs` are not touched. Returns -1 without AVX512-BF16 or memory.
int arbiter_gemm_bf16(const uint32_t *xp, long n, long in, const uint16_t *w, long outputs, float *out, long ldo);

/// The build the plain names run on this CPU: "avx2" or "baseline" (for benchmarks and logs).
const char *arbiter_kernel_variant(void);

#endif

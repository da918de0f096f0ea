// The elementwise kernels of ckernels.h: the Cephes expf method of Sources/ArbiterTensor/VectorExp.swift
// (see there for the accuracy and special values), eight lanes at a time with clang vector extensions.
#include "ckernels.h"

#include <stdlib.h>
#include <string.h>

// No contraction of a·b + c into fused multiply-adds: the lanes must round exactly as the Swift code does.
#pragma clang fp contract(off)

#if defined(__x86_64__) && defined(__clang__)
#define ARBITER_X86 1
#else
#define ARBITER_X86 0
#endif

typedef float v8f __attribute__((vector_size(32), aligned(4)));
typedef int v8i __attribute__((vector_size(32), aligned(4)));
typedef unsigned int v8u __attribute__((vector_size(32), aligned(4)));

// Helpers are macros (GNU statement expressions), not functions: a function taking or returning a 256-bit
// vector has a different ABI with and without AVX, which clang refuses in the baseline clone.
#define SPLAT(v) ((v8f){(v), (v), (v), (v), (v), (v), (v), (v)})

/// Lanes of `x` where `mask` is set replaced by `value` (NaN compares false and stays).
#define REPLACE(x, mask, value) ((v8f)((((v8i)(x)) & ~(mask)) | (((v8i)SPLAT(value)) & (mask))))

#define LOAD8(p) ({ v8f v_; memcpy(&v_, (p), sizeof v_); v_; })
#define STORE8(p, v) do { v8f s_ = (v); memcpy((p), &s_, sizeof s_); } while (0)

#define MAGIC 12582912.0f      /* 1.5 · 2²³ */
#define MAGIC_BITS 0x4B400000u /* its bit pattern */

#define EXP8(input) ({                                                                        \
    v8f x_ = (input);                                                                           \
    v8f clamped_ = REPLACE(x_, x_ < SPLAT(-110.0f), -110.0f);                                   \
    clamped_ = REPLACE(clamped_, clamped_ > SPLAT(89.0f), 89.0f);                               \
    v8f shifted_ = clamped_ * 1.44269504088896341f + MAGIC;                                     \
    v8f n_ = shifted_ - MAGIC;                                                                  \
    v8f r_ = (clamped_ - n_ * 0.693359375f) - n_ * -2.12194440e-4f;                             \
    v8f p_ = SPLAT(1.9875691500e-4f);                                                           \
    p_ = p_ * r_ + 1.3981999507e-3f;                                                            \
    p_ = p_ * r_ + 8.3334519073e-3f;                                                            \
    p_ = p_ * r_ + 4.1665795894e-2f;                                                            \
    p_ = p_ * r_ + 1.6666665459e-1f;                                                            \
    p_ = p_ * r_ + 5.0000001201e-1f;                                                            \
    p_ = p_ * (r_ * r_) + r_ + 1.0f;                                                            \
    v8i nBits_ = (v8i)((v8u)shifted_ - MAGIC_BITS);                                             \
    v8i h_ = nBits_ >> 1;                                                                       \
    v8f first_ = (v8f)((v8u)(h_ + 127) << 23);                                                  \
    v8f second_ = (v8f)((v8u)(nBits_ - h_ + 127) << 23);                                        \
    (p_ * first_) * second_;                                                                    \
})

/// Lanes j..j+7 at or past `valid`: the −inf lanes of a padded tail.
#define PAST(j, valid) (((v8i){0, 1, 2, 3, 4, 5, 6, 7} + (int)(j)) >= (int)(valid))

// The bodies, instantiated once per variant below.
#define EXP_SHIFTED_BODY                                                                          \
    v8f sum = SPLAT(0.0f);                                                                       \
    long i = 0;                                                                                  \
    for (; i + 8 <= count; i += 8) {                                                             \
        v8f e = EXP8(LOAD8(values + i) - shift);                                                 \
        STORE8(values + i, e);                                                                   \
        sum += e;                                                                                \
    }                                                                                            \
    if (i < count) {                                                                             \
        float padded[8];                                                                         \
        for (int j = 0; j < 8; j++) padded[j] = -__builtin_inff(); /* e^−inf = 0 adds nothing */ \
        memcpy(padded, values + i, (size_t)(count - i) * sizeof(float));                         \
        v8f e = EXP8(LOAD8(padded) - shift);                                                     \
        STORE8(padded, e);                                                                       \
        memcpy(values + i, padded, (size_t)(count - i) * sizeof(float));                         \
        sum += e;                                                                                \
    }                                                                                            \
    float total = 0.0f;                                                                          \
    for (int lane = 0; lane < 8; lane++) total += sum[lane];                                     \
    return total;

// EXP_SHIFTED_BODY on count values (a multiple of 8) whose entries from `valid` on count as −inf: they are
// replaced in the registers, so they may hold anything — the lanes and the sum are those of the padded tail.
#define EXP_SHIFTED_MASKED_BODY                                                                   \
    v8f sum = SPLAT(0.0f);                                                                       \
    for (long i = 0; i < count; i += 8) {                                                        \
        v8f e = EXP8(REPLACE(LOAD8(values + i), PAST(i, valid), -__builtin_inff()) - shift);    \
        STORE8(values + i, e);                                                                   \
        sum += e;                                                                                \
    }                                                                                            \
    float total = 0.0f;                                                                          \
    for (int lane = 0; lane < 8; lane++) total += sum[lane];                                     \
    return total;

#define SIGMOID_SCALED8(input, k) ({ v8f xs_ = (input); xs_ / (1.0f + EXP8(xs_ * -(k))); })

#define SIGMOID_SCALED_BODY                                                                       \
    long i = 0;                                                                                  \
    for (; i + 8 <= count; i += 8) {                                                             \
        v8f y = SIGMOID_SCALED8(LOAD8(x + i), k);                                                \
        if (factor) y *= LOAD8(factor + i);                                                      \
        STORE8(x + i, y);                                                                        \
    }                                                                                            \
    if (i < count) {                                                                             \
        float padded[8] = {0, 0, 0, 0, 0, 0, 0, 0}, scale[8] = {1, 1, 1, 1, 1, 1, 1, 1};         \
        memcpy(padded, x + i, (size_t)(count - i) * sizeof(float));                              \
        if (factor) memcpy(scale, factor + i, (size_t)(count - i) * sizeof(float));              \
        v8f y = SIGMOID_SCALED8(LOAD8(padded), k);                                               \
        if (factor) y *= LOAD8(scale);                                                           \
        STORE8(padded, y);                                                                       \
        memcpy(x + i, padded, (size_t)(count - i) * sizeof(float));                              \
    }

float arbiter_exp_shifted_baseline(float *values, long count, float shift) { EXP_SHIFTED_BODY }

static float exp_shifted_masked_baseline(float *values, long count, long valid, float shift) { EXP_SHIFTED_MASKED_BODY }

void arbiter_sigmoid_scaled_baseline(float *x, const float *factor, long count, float k) { SIGMOID_SCALED_BODY }

#if ARBITER_X86
__attribute__((target("avx2")))
static float exp_shifted_avx2(float *values, long count, float shift) { EXP_SHIFTED_BODY }

__attribute__((target("avx2")))
static float exp_shifted_masked_avx2(float *values, long count, long valid, float shift) { EXP_SHIFTED_MASKED_BODY }

__attribute__((target("avx2")))
static void sigmoid_scaled_avx2(float *x, const float *factor, long count, float k) { SIGMOID_SCALED_BODY }

static int has_avx2(void) { return __builtin_cpu_supports("avx2"); }
#endif

float arbiter_exp_shifted(float *values, long count, float shift) {
#if ARBITER_X86
    if (has_avx2()) return exp_shifted_avx2(values, count, shift);
#endif
    return arbiter_exp_shifted_baseline(values, count, shift);
}

void arbiter_sigmoid_scaled(float *x, const float *factor, long count, float k) {
#if ARBITER_X86
    if (has_avx2()) {
        sigmoid_scaled_avx2(x, factor, count, k);
        return;
    }
#endif
    arbiter_sigmoid_scaled_baseline(x, factor, count, k);
}

// Softmax of one row whose entries from `visible` on are −inf, read or not (a causal mask's future keys);
// the special values of `softmaxRows` in Sources/ArbiterTensor/Softmax.swift.
#define SOFTMAX_ROW_BODY(EXP_SHIFTED, EXP_SHIFTED_MASKED)                                       \
    long end = visible;                                                                          \
    while (end >= 8) {                                                                           \
        v8i inf_ = LOAD8(row + end - 8) == SPLAT(-__builtin_inff());                            \
        if (!(inf_[0] & inf_[1] & inf_[2] & inf_[3] & inf_[4] & inf_[5] & inf_[6] & inf_[7])) break; \
        end -= 8;                                                                                \
    }                                                                                            \
    while (end > 0 && row[end - 1] == -__builtin_inff()) end--;                                  \
    if (end == 0) {                                                                              \
        for (long j = 0; j < columns; j++) row[j] = 0;                                           \
        return;                                                                                  \
    }                                                                                            \
    /* Entries end..<columns are −inf: they change neither the maximum nor the sum (e^−inf = 0 adds   \
       nothing) and normalise to 0. When the row has the memory, the vector loops run on up to the     \
       next multiple of 8 with the lanes from `end` on set to −inf in the registers (whatever the      \
       memory holds past `visible`): the bits of the padded tail, without its copies. */             \
    long valid = end, vend = (end + 7) / 8 * 8;                                                  \
    int masked = vend <= columns;                                                                \
    if (masked) end = vend;                                                                      \
    v8f lanes = SPLAT(-__builtin_inff());                                                        \
    v8i nanLanes = {0, 0, 0, 0, 0, 0, 0, 0};                                                     \
    long j = 0;                                                                                  \
    for (; j + 8 <= end; j += 8) {                                                               \
        v8f v = LOAD8(row + j);                                                                  \
        if (masked) v = REPLACE(v, PAST(j, valid), -__builtin_inff());                           \
        v8i greater = v > lanes;                                                                 \
        lanes = (v8f)((((v8i)v) & greater) | (((v8i)lanes) & ~greater));                        \
        nanLanes |= v != v;                                                                      \
    }                                                                                            \
    float maximum = -__builtin_inff();                                                           \
    int sawNaN = 0;                                                                              \
    for (int lane = 0; lane < 8; lane++) {                                                       \
        if (lanes[lane] > maximum) maximum = lanes[lane];                                        \
        if (nanLanes[lane]) sawNaN = 1;                                                          \
    }                                                                                            \
    for (; j < end; j++) {                                                                       \
        float v = row[j];                                                                        \
        if (v != v) sawNaN = 1; else if (v > maximum) maximum = v;                               \
    }                                                                                            \
    if (sawNaN) {                                                                                \
        for (long k = 0; k < columns; k++) row[k] = __builtin_nanf("");                          \
        return;                                                                                  \
    }                                                                                            \
    if (maximum == __builtin_inff()) { /* +inf logits share the mass equally; finite ones get 0 */ \
        float n = 0;                                                                             \
        for (long k = 0; k < visible; k++) if (row[k] == __builtin_inff()) n += 1;               \
        for (long k = 0; k < columns; k++) row[k] = k < visible && row[k] == __builtin_inff() ? 1 / n : 0; \
        return;                                                                                  \
    }                                                                                            \
    float inv = 1 / (masked ? EXP_SHIFTED_MASKED(row, end, valid, maximum) : EXP_SHIFTED(row, end, maximum)); \
    long k = 0;                                                                                  \
    for (; k + 8 <= end; k += 8) STORE8(row + k, LOAD8(row + k) * inv);                          \
    for (; k < end; k++) row[k] *= inv;                                                          \
    if (k < columns) memset(row + k, 0, (size_t)(columns - k) * sizeof(float));

static inline void softmax_prefix_baseline(float *row, long visible, long columns) {
    SOFTMAX_ROW_BODY(arbiter_exp_shifted_baseline, exp_shifted_masked_baseline)
}

void arbiter_softmax_row_baseline(float *row, long columns) { softmax_prefix_baseline(row, columns, columns); }

// Rows first..<end of a [heads, queries, keys] block; row r is query r % queries at position r % queries + offset.
#define SOFTMAX_CAUSAL_BODY(ROW)                                                                  \
    long query = first % queries;                                                                \
    for (long r = first; r < end; r++) {                                                         \
        long visible = query + offset + 1;                                                       \
        ROW(scores + r * keys, visible < keys ? visible : keys, keys);                           \
        if (++query == queries) query = 0;                                                       \
    }

void arbiter_softmax_causal_baseline(float *scores, long first, long end, long queries, long keys, long offset) {
    SOFTMAX_CAUSAL_BODY(softmax_prefix_baseline)
}

#if ARBITER_X86
__attribute__((target("avx2")))
static inline void softmax_prefix_avx2(float *row, long visible, long columns) {
    SOFTMAX_ROW_BODY(exp_shifted_avx2, exp_shifted_masked_avx2)
}

__attribute__((target("avx2")))
static void softmax_causal_avx2(float *scores, long first, long end, long queries, long keys, long offset) {
    SOFTMAX_CAUSAL_BODY(softmax_prefix_avx2)
}
#endif

void arbiter_softmax_row(float *row, long columns) {
#if ARBITER_X86
    if (has_avx2()) {
        softmax_prefix_avx2(row, columns, columns);
        return;
    }
#endif
    arbiter_softmax_row_baseline(row, columns);
}

void arbiter_softmax_causal(float *scores, long first, long end, long queries, long keys, long offset) {
#if ARBITER_X86
    if (has_avx2()) {
        softmax_causal_avx2(scores, first, end, queries, keys, offset);
        return;
    }
#endif
    arbiter_softmax_causal_baseline(scores, first, end, queries, keys, offset);
}

// Attention products of every head of one run (ckernels.h): each output is a chain of fused multiply-adds
// in the order of the reduction index, started from zero — what OpenBLAS's sgemm kernels compute for each
// element (checked bit for bit on AVX-512 and AVX2 machines by the tests) — without its per-call packing,
// which costs more than the products for a small model's heads. Several independent chains are kept in
// flight (two queries × four groups of eight keys; four queries × sixteen features) to hide the latency.
#define FMA8(a, b, c) __builtin_elementwise_fma((a), (b), (c))

/// Row j of keys or values given as `rows0` cached rows, then the run's own rows (same stride).
#define KV_ROW(base0, rows0, base1, stride, j) \
    ((j) < (rows0) ? (base0) + (j) * (stride) : (base1) + ((j) - (rows0)) * (stride))

/// Rows r[0..7] (eight features of eight keys) transposed in place: r[d] becomes feature d of keys 0…7.
#define TRANSPOSE8(r) do {                                                                        \
    v8f t0_ = __builtin_shufflevector(r[0], r[1], 0, 8, 1, 9, 4, 12, 5, 13);                      \
    v8f t1_ = __builtin_shufflevector(r[0], r[1], 2, 10, 3, 11, 6, 14, 7, 15);                    \
    v8f t2_ = __builtin_shufflevector(r[2], r[3], 0, 8, 1, 9, 4, 12, 5, 13);                      \
    v8f t3_ = __builtin_shufflevector(r[2], r[3], 2, 10, 3, 11, 6, 14, 7, 15);                    \
    v8f t4_ = __builtin_shufflevector(r[4], r[5], 0, 8, 1, 9, 4, 12, 5, 13);                      \
    v8f t5_ = __builtin_shufflevector(r[4], r[5], 2, 10, 3, 11, 6, 14, 7, 15);                    \
    v8f t6_ = __builtin_shufflevector(r[6], r[7], 0, 8, 1, 9, 4, 12, 5, 13);                      \
    v8f t7_ = __builtin_shufflevector(r[6], r[7], 2, 10, 3, 11, 6, 14, 7, 15);                    \
    v8f s0_ = __builtin_shufflevector(t0_, t2_, 0, 1, 8, 9, 4, 5, 12, 13);                        \
    v8f s1_ = __builtin_shufflevector(t0_, t2_, 2, 3, 10, 11, 6, 7, 14, 15);                      \
    v8f s2_ = __builtin_shufflevector(t1_, t3_, 0, 1, 8, 9, 4, 5, 12, 13);                        \
    v8f s3_ = __builtin_shufflevector(t1_, t3_, 2, 3, 10, 11, 6, 7, 14, 15);                      \
    v8f s4_ = __builtin_shufflevector(t4_, t6_, 0, 1, 8, 9, 4, 5, 12, 13);                        \
    v8f s5_ = __builtin_shufflevector(t4_, t6_, 2, 3, 10, 11, 6, 7, 14, 15);                      \
    v8f s6_ = __builtin_shufflevector(t5_, t7_, 0, 1, 8, 9, 4, 5, 12, 13);                        \
    v8f s7_ = __builtin_shufflevector(t5_, t7_, 2, 3, 10, 11, 6, 7, 14, 15);                      \
    r[0] = __builtin_shufflevector(s0_, s4_, 0, 1, 2, 3, 8, 9, 10, 11);                           \
    r[1] = __builtin_shufflevector(s1_, s5_, 0, 1, 2, 3, 8, 9, 10, 11);                           \
    r[2] = __builtin_shufflevector(s2_, s6_, 0, 1, 2, 3, 8, 9, 10, 11);                           \
    r[3] = __builtin_shufflevector(s3_, s7_, 0, 1, 2, 3, 8, 9, 10, 11);                           \
    r[4] = __builtin_shufflevector(s0_, s4_, 4, 5, 6, 7, 12, 13, 14, 15);                         \
    r[5] = __builtin_shufflevector(s1_, s5_, 4, 5, 6, 7, 12, 13, 14, 15);                         \
    r[6] = __builtin_shufflevector(s2_, s6_, 4, 5, 6, 7, 12, 13, 14, 15);                         \
    r[7] = __builtin_shufflevector(s3_, s7_, 4, 5, 6, 7, 12, 13, 14, 15);                         \
} while (0)

/// Keys of key/value head `kvh`, transposed: kt[d · padded + j] (zero past `keys`), eight by eight.
#define TRANSPOSE_KEYS                                                                            \
    for (long j0 = 0; j0 < padded; j0 += 8) {                                                    \
        const float *rows_[8];                                                                   \
        for (int r = 0; r < 8; r++)                                                              \
            rows_[r] = j0 + r < keys ? KV_ROW(keys0, rows0, keys1, ldk, j0 + r) + kvh * head_dim : 0; \
        long d0 = 0;                                                                             \
        for (; d0 + 8 <= head_dim; d0 += 8) {                                                    \
            v8f block[8];                                                                        \
            for (int r = 0; r < 8; r++) block[r] = rows_[r] ? LOAD8(rows_[r] + d0) : SPLAT(0.0f); \
            TRANSPOSE8(block);                                                                   \
            for (int d = 0; d < 8; d++) STORE8(kt + (d0 + d) * padded + j0, block[d]);           \
        }                                                                                        \
        for (; d0 < head_dim; d0++)                                                              \
            for (int r = 0; r < 8; r++) kt[d0 * padded + j0 + r] = rows_[r] ? rows_[r][d0] : 0;  \
    }

/// Scores of queries i (and i + 1 when pair = 2) against keys j…j + 8·C − 1: C·2 chains over d.
#define SCORE_TILE(C)                                                                             \
    do {                                                                                         \
        v8f a0[C], a1[C];                                                                        \
        for (int c = 0; c < C; c++) a0[c] = a1[c] = SPLAT(0.0f);                                 \
        for (long d = 0; d < head_dim; d++) {                                                    \
            const float *kd = kt + d * padded + j;                                               \
            v8f x0 = SPLAT(q0[d]), x1 = SPLAT(q1[d]);                                            \
            for (int c = 0; c < C; c++) {                                                        \
                v8f kv = LOAD8(kd + 8 * c);                                                      \
                a0[c] = FMA8(x0, kv, a0[c]);                                                     \
                a1[c] = FMA8(x1, kv, a1[c]);                                                     \
            }                                                                                    \
        }                                                                                        \
        long n = keys - j < 8 * C ? keys - j : 8 * C;                                            \
        for (long r = 0; r < pair; r++) {                                                        \
            float *dst = scores + (h * t + i + r) * keys + j;                                    \
            if (n == 8 * C) {                                                                    \
                for (int c = 0; c < C; c++) STORE8(dst + 8 * c, (r ? a1[c] : a0[c]) * scale);   \
            } else {                                                                             \
                float out_[8 * C];                                                               \
                for (int c = 0; c < C; c++) STORE8(out_ + 8 * c, (r ? a1[c] : a0[c]) * scale);  \
                memcpy(dst, out_, (size_t)n * sizeof(float));                                    \
            }                                                                                    \
        }                                                                                        \
        j += 8 * C;                                                                              \
    } while (0)

#define ATTENTION_SCORES_BODY                                                                     \
    long padded = (keys + 7) / 8 * 8, group = heads / kv_heads;                                  \
    for (long h = 0; h < heads; h++) {                                                           \
        long kvh = h / group;                                                                    \
        if (h % group == 0) { TRANSPOSE_KEYS }                                                   \
        for (long i = 0; i < t; i += 2) {                                                        \
            long pair = t - i >= 2 ? 2 : 1;                                                      \
            long visible = causal_offset < 0 ? keys : i + pair + causal_offset;                  \
            if (visible > keys) visible = keys;                                                  \
            const float *q0 = q + i * ldq + h * head_dim, *q1 = q0 + (pair == 2 ? ldq : 0);      \
            long j = 0;                                                                          \
            while (visible - j > 24) SCORE_TILE(4);                                              \
            if (visible - j > 16) SCORE_TILE(3);                                                 \
            else if (visible - j > 8) SCORE_TILE(2);                                             \
            else if (visible - j > 0) SCORE_TILE(1);                                             \
        }                                                                                        \
    }

#define ATTENTION_MIX_BODY                                                                        \
    long group = heads / kv_heads;                                                               \
    for (long h = 0; h < heads; h++) {                                                           \
        long kvh = h / group;                                                                    \
        for (long i = 0; i < t; i += 4) {                                                        \
            long quad = t - i >= 4 ? 4 : t - i;                                                  \
            const float *p[4];                                                                   \
            for (long r = 0; r < 4; r++) p[r] = pattern + (h * t + i + (r < quad ? r : 0)) * keys; \
            for (long d = 0; d < head_dim; d += 16) {                                            \
                long width = head_dim - d < 16 ? head_dim - d : 16;                              \
                v8f acc[4][2];                                                                   \
                for (int r = 0; r < 4; r++) acc[r][0] = acc[r][1] = SPLAT(0.0f);                 \
                for (long j = 0; j < keys; j++) {                                                \
                    const float *row = KV_ROW(values0, rows0, values1, ldv, j) + kvh * head_dim + d; \
                    v8f v0, v1;                                                                  \
                    if (width == 16) {                                                           \
                        v0 = LOAD8(row);                                                         \
                        v1 = LOAD8(row + 8);                                                     \
                    } else {                                                                     \
                        float tail[16] = {0};                                                    \
                        memcpy(tail, row, (size_t)width * sizeof(float));                       \
                        v0 = LOAD8(tail);                                                        \
                        v1 = LOAD8(tail + 8);                                                    \
                    }                                                                            \
                    for (int r = 0; r < 4; r++) {                                                \
                        v8f x = SPLAT(p[r][j]);                                                  \
                        acc[r][0] = FMA8(x, v0, acc[r][0]);                                      \
                        acc[r][1] = FMA8(x, v1, acc[r][1]);                                      \
                    }                                                                            \
                }                                                                                \
                for (long r = 0; r < quad; r++) {                                                \
                    float *dst = z + (i + r) * ldz + h * head_dim + d;                           \
                    if (width == 16) {                                                           \
                        STORE8(dst, acc[r][0]);                                                  \
                        STORE8(dst + 8, acc[r][1]);                                              \
                    } else {                                                                     \
                        float out_[16];                                                          \
                        STORE8(out_, acc[r][0]);                                                 \
                        STORE8(out_ + 8, acc[r][1]);                                             \
                        memcpy(dst, out_, (size_t)width * sizeof(float));                        \
                    }                                                                            \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
    }

#define ATTENTION_SCORES_ARGS                                                                     \
    const float *q, long ldq, const float *keys0, long rows0, const float *keys1, long ldk, long t, long keys, \
    long heads, long kv_heads, long head_dim, float scale, long causal_offset, float *scores, float *kt
#define ATTENTION_MIX_ARGS                                                                        \
    const float *pattern, const float *values0, long rows0, const float *values1, long ldv, long t, long keys, \
    long heads, long kv_heads, long head_dim, float *z, long ldz

static void attention_scores_baseline(ATTENTION_SCORES_ARGS) { ATTENTION_SCORES_BODY }
static void attention_mix_baseline(ATTENTION_MIX_ARGS) { ATTENTION_MIX_BODY }

#if ARBITER_X86
__attribute__((target("avx2,fma")))
static void attention_scores_fma(ATTENTION_SCORES_ARGS) { ATTENTION_SCORES_BODY }

__attribute__((target("avx2,fma")))
static void attention_mix_fma(ATTENTION_MIX_ARGS) { ATTENTION_MIX_BODY }

static int has_fma(void) { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
#endif

/// Scratch of the transposed keys: `head_dim` rows of `keys` rounded up to 8.
static float *transposed_keys(long keys, long head_dim) {
    return malloc((size_t)((keys + 7) / 8 * 8 * head_dim) * sizeof(float));
}

int arbiter_attention_scores_variant(int variant, const float *q, long ldq, const float *keys0, long rows0,
                                     const float *keys1, long ldk, long t, long keys, long heads, long kv_heads,
                                     long head_dim, float scale, long causal_offset, float *scores) {
    if (t <= 0 || keys <= 0 || heads <= 0) return 0;
    float *kt = transposed_keys(keys, head_dim);
    if (!kt) return -1;
#if ARBITER_X86
    if (variant == 1 || (variant < 0 && has_fma()))
        attention_scores_fma(q, ldq, keys0, rows0, keys1, ldk, t, keys, heads, kv_heads, head_dim, scale,
                             causal_offset, scores, kt);
    else
#endif
        attention_scores_baseline(q, ldq, keys0, rows0, keys1, ldk, t, keys, heads, kv_heads, head_dim, scale,
                                  causal_offset, scores, kt);
    free(kt);
    return 0;
}

void arbiter_attention_mix_variant(int variant, const float *pattern, const float *values0, long rows0,
                                   const float *values1, long ldv, long t, long keys, long heads, long kv_heads,
                                   long head_dim, float *z, long ldz) {
    if (t <= 0 || heads <= 0 || head_dim <= 0) return;
#if ARBITER_X86
    if (variant == 1 || (variant < 0 && has_fma())) {
        attention_mix_fma(pattern, values0, rows0, values1, ldv, t, keys, heads, kv_heads, head_dim, z, ldz);
        return;
    }
#endif
    attention_mix_baseline(pattern, values0, rows0, values1, ldv, t, keys, heads, kv_heads, head_dim, z, ldz);
}

int arbiter_has_fma(void) {
#if ARBITER_X86
    return has_fma();
#else
    return 0;
#endif
}

// Rotate-half rotary embedding of Sources/ArbiterTensor/Rotary.swift, eight features at a time.
#define ROTARY_BODY                                                                               \
    long half = dimension / 2;                                                                   \
    for (long t = 0; t < tokens; t++) {                                                          \
        const float *ct = cos_table + t * dimension, *st = sin_table + t * dimension;            \
        for (long h = 0; h < heads; h++) {                                                       \
            float *v = x + (t * heads + h) * head_dim;                                           \
            long i = 0;                                                                          \
            for (; i + 8 <= half; i += 8) {                                                      \
                v8f a = LOAD8(v + i), b = LOAD8(v + i + half);                                   \
                STORE8(v + i, a * LOAD8(ct + i) - b * LOAD8(st + i));                            \
                STORE8(v + i + half, b * LOAD8(ct + i + half) + a * LOAD8(st + i + half));       \
            }                                                                                    \
            for (; i < half; i++) {                                                              \
                float a = v[i], b = v[i + half];                                                 \
                v[i] = a * ct[i] - b * st[i];                                                    \
                v[i + half] = b * ct[i + half] + a * st[i + half];                               \
            }                                                                                    \
        }                                                                                        \
    }

void arbiter_rotary_baseline(float *x, const float *cos_table, const float *sin_table, long tokens, long heads,
                             long head_dim, long dimension) { ROTARY_BODY }

#if ARBITER_X86
__attribute__((target("avx2")))
static void rotary_avx2(float *x, const float *cos_table, const float *sin_table, long tokens, long heads,
                        long head_dim, long dimension) { ROTARY_BODY }
#endif

void arbiter_rotary(float *x, const float *cos_table, const float *sin_table, long tokens, long heads, long head_dim,
                    long dimension) {
#if ARBITER_X86
    if (has_avx2()) {
        rotary_avx2(x, cos_table, sin_table, tokens, heads, head_dim, dimension);
        return;
    }
#endif
    arbiter_rotary_baseline(x, cos_table, sin_table, tokens, heads, head_dim, dimension);
}

const char *arbiter_kernel_variant(void) {
#if ARBITER_X86
    return has_avx2() ? "avx2" : "baseline";
#else
    return "baseline";
#endif
}

// ---- bf16 compute: out[r, j] = x[r, :] · W[j, :]ᵀ with VDPBF16PS (AVX512-BF16) --------------------------------
//
// x is rounded to bf16 once per call and packed in pairs (`arbiter_bf16_pack_rows`); W (bf16, row-major as
// torch.nn.Linear) is packed per cache block into panels of 16 outputs × pairs, so that one VDPBF16PS adds
// pair p of 16 outputs for one row: acc[j] = fma(x[2p+1], w[j][2p+1], acc[j]) then fma(x[2p], w[j][2p], ·)
// (the instruction's order; bf16 inputs denormal → 0, results denormal → 0, round to nearest even). Each
// output's accumulator starts at +0 and runs over the pairs in order; between cache blocks over the pairs it is
// stored to `out` as f32 and loaded back, which changes nothing: the result is that sequential sum whatever
// the blocking or the split of the outputs over threads (ReferenceKernels.linearBFloat16 spells it out).

#if ARBITER_X86
#include <immintrin.h>
#include <stdlib.h>

#define BF16_TARGET "avx512f,avx512bw,avx512dq,avx512vl,avx512bf16"
#define BF16_ROWS 6      /* rows of x per micro-kernel */
#define BF16_GROUPS 4    /* groups of 16 outputs per micro-kernel: 6 × 4 accumulators of 32 registers */
#define BF16_KC 256      /* pairs per cache block: 6 rows of x (6 KB) stay in L1 */
#define BF16_NC 512      /* outputs per panel: 512 × 256 pairs × 4 bytes = 512 KB of L2 */

static int has_avx512bf16(void) { return __builtin_cpu_supports("avx512bf16"); }

__attribute__((target(BF16_TARGET)))
static void bf16_pack_rows(const float *x, long n, long in, long ldx, uint32_t *xp) {
    long pairs = (in + 1) / 2;
    for (long r = 0; r < n; r++) {
        const float *row = x + r * ldx;
        uint32_t *dst = xp + r * pairs;
        for (long i = 0; i < in; i += 32) {
            long left = in - i;
            __mmask16 lo = left >= 16 ? 0xFFFF : (__mmask16)((1u << left) - 1);
            __mmask16 hi = left >= 32 ? 0xFFFF : left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1);
            __m512 a = _mm512_maskz_loadu_ps(lo, row + i), b = _mm512_maskz_loadu_ps(hi, row + i + 16);
            __m512i packed = (__m512i)_mm512_cvtne2ps_pbh(b, a);  /* a → bf16 0..15, b → 16..31 */
            long words = (left < 32 ? left : 32), dwords = (words + 1) / 2;
            __mmask16 m = dwords >= 16 ? 0xFFFF : (__mmask16)((1u << dwords) - 1);
            _mm512_mask_storeu_epi32(dst + i / 2, m, packed);
        }
    }
}

/// Pair `p` (0-based over the row) of a W row of `in` bf16 values: (w[2p], w[2p+1]), 0 past the end.
static inline uint32_t weight_pair(const uint16_t *row, long in, long p) {
    uint16_t low, high = 0;  /* memcpy: checkpoint data may sit at any byte offset */
    memcpy(&low, row + 2 * p, sizeof low);
    if (2 * p + 1 < in) memcpy(&high, row + 2 * p + 1, sizeof high);
    return (uint32_t)low | (uint32_t)high << 16;
}

/// 16 × 16 transpose of dwords: r[j][c] → r[c][j].
#define TRANSPOSE16(r) do {                                                                          \
    __m512i t_[16], u_[16];                                                                          \
    for (int i_ = 0; i_ < 8; i_++) {                                                                 \
        t_[2 * i_] = _mm512_unpacklo_epi32(r[2 * i_], r[2 * i_ + 1]);                                \
        t_[2 * i_ + 1] = _mm512_unpackhi_epi32(r[2 * i_], r[2 * i_ + 1]);                            \
    }                                                                                                \
    for (int i_ = 0; i_ < 4; i_++) {                                                                 \
        u_[4 * i_] = _mm512_unpacklo_epi64(t_[4 * i_], t_[4 * i_ + 2]);                              \
        u_[4 * i_ + 1] = _mm512_unpackhi_epi64(t_[4 * i_], t_[4 * i_ + 2]);                          \
        u_[4 * i_ + 2] = _mm512_unpacklo_epi64(t_[4 * i_ + 1], t_[4 * i_ + 3]);                      \
        u_[4 * i_ + 3] = _mm512_unpackhi_epi64(t_[4 * i_ + 1], t_[4 * i_ + 3]);                      \
    }                                                                                                \
    for (int k_ = 0; k_ < 4; k_++) {                                                                 \
        __m512i v0_ = _mm512_shuffle_i32x4(u_[k_], u_[4 + k_], 0x44);                               \
        __m512i v1_ = _mm512_shuffle_i32x4(u_[k_], u_[4 + k_], 0xEE);                               \
        __m512i v2_ = _mm512_shuffle_i32x4(u_[8 + k_], u_[12 + k_], 0x44);                           \
        __m512i v3_ = _mm512_shuffle_i32x4(u_[8 + k_], u_[12 + k_], 0xEE);                           \
        r[k_] = _mm512_shuffle_i32x4(v0_, v2_, 0x88);                                                \
        r[4 + k_] = _mm512_shuffle_i32x4(v0_, v2_, 0xDD);                                            \
        r[8 + k_] = _mm512_shuffle_i32x4(v1_, v3_, 0x88);                                            \
        r[12 + k_] = _mm512_shuffle_i32x4(v1_, v3_, 0xDD);                                           \
    }                                                                                                \
} while (0)

/// Packs outputs [o0, o0 + count) × pairs [p0, p0 + kc) of W (rows of `in` bf16) into `panel`:
/// panel[(g · kc + p) · 16 + j] = pair p0 + p of row o0 + 16g + j, 0 for rows past `count`.
__attribute__((target(BF16_TARGET)))
static void bf16_pack_panel(const uint16_t *w, long in, long o0, long count, long p0, long kc, uint32_t *panel) {
    long whole = in / 2;  /* pairs with both halves inside the row: read as dwords */
    for (long g = 0; g * 16 < count; g++) {
        long rows = count - g * 16 < 16 ? count - g * 16 : 16;
        uint32_t *dst = panel + g * kc * 16;
        long p = 0;
        if (rows == 16) {
            for (; p + 16 <= kc && p0 + p + 16 <= whole; p += 16) {
                __m512i r[16];
                for (int j = 0; j < 16; j++) r[j] = _mm512_loadu_si512(w + (o0 + g * 16 + j) * in + 2 * (p0 + p));
                TRANSPOSE16(r);
                for (int c = 0; c < 16; c++) _mm512_storeu_si512(dst + (p + c) * 16, r[c]);
            }
        }
        for (; p < kc; p++) {
            for (long j = 0; j < 16; j++) {
                dst[p * 16 + j] = j < rows ? weight_pair(w + (o0 + g * 16 + j) * in, in, p0 + p) : 0;
            }
        }
    }
}

/// acc[r][c] over `kc` pairs for ROWS rows and GROUPS groups of 16 outputs; `valid` outputs in the last group.
#define BF16_MICRO(ROWS, GROUPS)                                                                       \
__attribute__((target(BF16_TARGET)))                                                                  \
static void bf16_micro_##ROWS##_##GROUPS(const uint32_t *xp, long ldx, const uint32_t *panel, long kc,  \
                                         float *out, long ldo, int valid, int first) {                  \
    __m512 acc[ROWS][GROUPS];                                                                          \
    __mmask16 last = valid >= 16 ? 0xFFFF : (__mmask16)((1u << valid) - 1);                            \
    for (int r = 0; r < ROWS; r++)                                                                     \
        for (int c = 0; c < GROUPS; c++)                                                               \
            acc[r][c] = first ? _mm512_setzero_ps()                                                    \
                : _mm512_maskz_loadu_ps(c == GROUPS - 1 ? last : 0xFFFF, out + r * ldo + 16 * c);       \
    for (long p = 0; p < kc; p++) {                                                                    \
        __m512bh wv[GROUPS];                                                                           \
        for (int c = 0; c < GROUPS; c++) wv[c] = (__m512bh)_mm512_loadu_si512(panel + (c * kc + p) * 16); \
        for (int r = 0; r < ROWS; r++) {                                                               \
            __m512bh xv = (__m512bh)_mm512_set1_epi32((int)xp[r * ldx + p]);                           \
            for (int c = 0; c < GROUPS; c++) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], xv, wv[c]);        \
        }                                                                                              \
    }                                                                                                  \
    for (int r = 0; r < ROWS; r++)                                                                     \
        for (int c = 0; c < GROUPS; c++)                                                               \
            _mm512_mask_storeu_ps(out + r * ldo + 16 * c, c == GROUPS - 1 ? last : 0xFFFF, acc[r][c]);   \
}
#define BF16_MICRO_ROWS(ROWS) BF16_MICRO(ROWS, 1) BF16_MICRO(ROWS, 2) BF16_MICRO(ROWS, 3) BF16_MICRO(ROWS, 4)
BF16_MICRO_ROWS(1)
BF16_MICRO_ROWS(2)
BF16_MICRO_ROWS(3)
BF16_MICRO_ROWS(4)
BF16_MICRO_ROWS(5)
BF16_MICRO_ROWS(6)

typedef void (*bf16_micro_fn)(const uint32_t *, long, const uint32_t *, long, float *, long, int, int);
#define BF16_ROW_FNS(ROWS) \
    { bf16_micro_##ROWS##_1, bf16_micro_##ROWS##_2, bf16_micro_##ROWS##_3, bf16_micro_##ROWS##_4 }
static const bf16_micro_fn bf16_micro[BF16_ROWS][BF16_GROUPS] = {
    BF16_ROW_FNS(1), BF16_ROW_FNS(2), BF16_ROW_FNS(3), BF16_ROW_FNS(4), BF16_ROW_FNS(5), BF16_ROW_FNS(6),
};

__attribute__((target(BF16_TARGET)))
static int bf16_gemm(const uint32_t *xp, long n, long in, const uint16_t *w, long outputs, float *out, long ldo) {
    long pairs = (in + 1) / 2;
    uint32_t *panel = aligned_alloc(64, (size_t)BF16_NC * BF16_KC * sizeof(uint32_t));
    if (!panel) return -1;
    for (long jc = 0; jc < outputs; jc += BF16_NC) {
        long nc = outputs - jc < BF16_NC ? outputs - jc : BF16_NC, groups = (nc + 15) / 16;
        for (long pc = 0; pc < pairs; pc += BF16_KC) {
            long kc = pairs - pc < BF16_KC ? pairs - pc : BF16_KC;
            bf16_pack_panel(w, in, jc, nc, pc, kc, panel);
            for (long ir = 0; ir < n; ir += BF16_ROWS) {
                long rows = n - ir < BF16_ROWS ? n - ir : BF16_ROWS;
                for (long g = 0; g < groups; g += BF16_GROUPS) {
                    long gs = groups - g < BF16_GROUPS ? groups - g : BF16_GROUPS;
                    int valid = (int)(nc - 16 * (g + gs - 1));
                    bf16_micro[rows - 1][gs - 1](xp + ir * pairs + pc, pairs, panel + g * kc * 16, kc,
                                                  out + ir * ldo + jc + 16 * g, ldo, valid > 16 ? 16 : valid, pc == 0);
                }
            }
        }
    }
    free(panel);
    return 0;
}
#endif

int arbiter_has_avx512bf16(void) {
#if ARBITER_X86
    return has_avx512bf16();
#else
    return 0;
#endif
}

int arbiter_bf16_pack_rows(const float *x, long n, long in, long ldx, uint32_t *xp) {
#if ARBITER_X86
    if (has_avx512bf16()) {
        bf16_pack_rows(x, n, in, ldx, xp);
        return 0;
    }
#endif
    (void)x; (void)n; (void)in; (void)ldx; (void)xp;
    return -1;
}

int arbiter_gemm_bf16(const uint32_t *xp, long n, long in, const uint16_t *w, long outputs, float *out, long ldo) {
#if ARBITER_X86
    if (has_avx512bf16()) return bf16_gemm(xp, n, in, w, outputs, out, ldo);
#endif
    (void)xp; (void)n; (void)in; (void)w; (void)outputs; (void)out; (void)ldo;
    return -1;
}

// The elementwise kernels of ckernels.h: the Cephes expf method of Sources/ArbiterTensor/VectorExp.swift
// (see there for the accuracy and special values), eight lanes at a time with clang vector extensions.
#include "ckernels.h"

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

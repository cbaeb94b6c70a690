#include "fi_kernels.h"
#include <math.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

float fi_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) { bits = sign; }
        else {  // subnormal: normalise
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) { man <<= 1; exp--; }
            bits = sign | (exp << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000 | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t fi_float_to_half(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    int32_t exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
    uint32_t man = x & 0x7fffff;
    if (((x >> 23) & 0xff) == 0xff) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
    if (exp >= 31) return (uint16_t)(sign | 0x7c00);
    if (exp <= 0) {
        if (exp < -10) return (uint16_t)sign;
        man |= 0x800000;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)exp << 10) | (man >> 13);
    uint32_t rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++;  // may carry into the exponent: still correct
    return (uint16_t)half;
}

// ---- portable C ----

static void q8_matvec_c(const int8_t *q, const float *scale, int r0, int r1, int cols, const float *x, int ldx, int nx,
                        float *y, int ldy, int accumulate) {
    for (int r = r0; r < r1; r++) {
        const int8_t *w = q + (size_t)r * cols;
        for (int v = 0; v < nx; v++) {
            const float *xv = x + (size_t)v * ldx;
            float s = 0;
            for (int c = 0; c < cols; c++) s += (float)w[c] * xv[c];
            float *out = y + (size_t)v * ldy + r;
            *out = (accumulate ? *out : 0) + scale[r] * s;
        }
    }
}

static void q4_matvec_c(const uint8_t *q, const uint16_t *d, const uint16_t *m, int group, int r0, int r1, int cols,
                        const float *x, int ldx, int nx, float *y, int ldy, int accumulate) {
    int groups = cols / group;
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = q + (size_t)r * (cols / 2);
        for (int v = 0; v < nx; v++) {
            const float *xv = x + (size_t)v * ldx;
            float total = 0;
            for (int g = 0; g < groups; g++) {
                float sq = 0, sx = 0;
                for (int b = 0; b < group / 32; b++) {
                    const uint8_t *p = row + (g * group + b * 32) / 2;
                    const float *xb = xv + g * group + b * 32;
                    for (int i = 0; i < 16; i++) {
                        sq += (float)(p[i] & 15) * xb[i] + (float)(p[i] >> 4) * xb[i + 16];
                        sx += xb[i] + xb[i + 16];
                    }
                }
                size_t gi = (size_t)r * groups + g;
                total += fi_half_to_float(d[gi]) * sq + fi_half_to_float(m[gi]) * sx;
            }
            float *out = y + (size_t)v * ldy + r;
            *out = (accumulate ? *out : 0) + total;
        }
    }
}

static void q8_dequant_c(const int8_t *q, const float *scale, int r0, int r1, int cols, float *out, int ldo) {
    for (int r = r0; r < r1; r++) {
        const int8_t *w = q + (size_t)r * cols;
        float *o = out + (size_t)(r - r0) * ldo, s = scale[r];
        for (int c = 0; c < cols; c++) o[c] = s * (float)w[c];
    }
}

static void q4_dequant_c(const uint8_t *q, const uint16_t *d, const uint16_t *m, int group, int r0, int r1, int cols,
                         float *out, int ldo) {
    int groups = cols / group;
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = q + (size_t)r * (cols / 2);
        float *o = out + (size_t)(r - r0) * ldo;
        for (int g = 0; g < groups; g++) {
            size_t gi = (size_t)r * groups + g;
            float dd = fi_half_to_float(d[gi]), mm = fi_half_to_float(m[gi]);
            for (int b = 0; b < group / 32; b++) {
                int c0 = g * group + b * 32;
                const uint8_t *p = row + c0 / 2;
                for (int i = 0; i < 16; i++) {
                    o[c0 + i] = mm + dd * (float)(p[i] & 15);
                    o[c0 + i + 16] = mm + dd * (float)(p[i] >> 4);
                }
            }
        }
    }
}

// ---- AVX2 + FMA + F16C ----
#if defined(__x86_64__)
#define VEC __attribute__((target("avx2,fma,f16c")))

VEC static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

VEC static void q8_matvec_avx2(const int8_t *q, const float *scale, int r0, int r1, int cols, const float *x, int ldx, int nx,
                               float *y, int ldy, int accumulate) {
    int c32 = cols & ~31;
    for (int r = r0; r < r1; r++) {
        const int8_t *w = q + (size_t)r * cols;
        if (r + 1 < r1) _mm_prefetch((const char *)(w + cols), _MM_HINT_T0);
        __m256 acc[4][2];
        for (int v = 0; v < 4; v++) { acc[v][0] = _mm256_setzero_ps(); acc[v][1] = _mm256_setzero_ps(); }
        for (int c = 0; c < c32; c += 32) {
            __m256i b = _mm256_loadu_si256((const __m256i *)(w + c));
            __m128i lo = _mm256_castsi256_si128(b), hi = _mm256_extracti128_si256(b, 1);
            __m256 w0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo));
            __m256 w1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)));
            __m256 w2 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi));
            __m256 w3 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)));
            for (int v = 0; v < nx; v++) {
                const float *xv = x + (size_t)v * ldx + c;
                acc[v][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xv), acc[v][0]);
                acc[v][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xv + 8), acc[v][1]);
                acc[v][0] = _mm256_fmadd_ps(w2, _mm256_loadu_ps(xv + 16), acc[v][0]);
                acc[v][1] = _mm256_fmadd_ps(w3, _mm256_loadu_ps(xv + 24), acc[v][1]);
            }
        }
        for (int v = 0; v < nx; v++) {
            const float *xv = x + (size_t)v * ldx;
            float s = hsum(_mm256_add_ps(acc[v][0], acc[v][1]));
            for (int c = c32; c < cols; c++) s += (float)w[c] * xv[c];
            float *out = y + (size_t)v * ldy + r;
            *out = (accumulate ? *out : 0) + scale[r] * s;
        }
    }
}

VEC static inline void q4_unpack32(const uint8_t *p, __m256 *w) {
    __m128i b = _mm_loadu_si128((const __m128i *)p);
    __m128i mask = _mm_set1_epi8(15);
    __m128i lo = _mm_and_si128(b, mask), hi = _mm_and_si128(_mm_srli_epi16(b, 4), mask);
    w[0] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo));
    w[1] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8)));
    w[2] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi));
    w[3] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8)));
}

// Σx per group of every vector, so a group's dot is d·Σ code·x + m·Σx.
VEC static void q4_matvec_avx2(const uint8_t *q, const uint16_t *d, const uint16_t *m, int group, int r0, int r1, int cols,
                               const float *x, int ldx, int nx, float *y, int ldy, int accumulate, const float *xsum) {
    int groups = cols / group;
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = q + (size_t)r * (cols / 2);
        if (r + 1 < r1) _mm_prefetch((const char *)(row + cols / 2), _MM_HINT_T0);
        const uint16_t *dr = d + (size_t)r * groups, *mr = m + (size_t)r * groups;
        __m256 tot[4];
        for (int v = 0; v < 4; v++) tot[v] = _mm256_setzero_ps();
        float mins[4] = {0, 0, 0, 0};
        for (int g = 0; g < groups; g++) {
            float dd = _cvtsh_ss(dr[g]), mm = _cvtsh_ss(mr[g]);
            __m256 acc[4];
            for (int v = 0; v < 4; v++) acc[v] = _mm256_setzero_ps();
            for (int b = 0; b < group; b += 32) {
                __m256 w[4];
                q4_unpack32(row + (g * group + b) / 2, w);
                for (int v = 0; v < nx; v++) {
                    const float *xv = x + (size_t)v * ldx + g * group + b;
                    acc[v] = _mm256_fmadd_ps(w[0], _mm256_loadu_ps(xv), acc[v]);
                    acc[v] = _mm256_fmadd_ps(w[1], _mm256_loadu_ps(xv + 8), acc[v]);
                    acc[v] = _mm256_fmadd_ps(w[2], _mm256_loadu_ps(xv + 16), acc[v]);
                    acc[v] = _mm256_fmadd_ps(w[3], _mm256_loadu_ps(xv + 24), acc[v]);
                }
            }
            __m256 dv = _mm256_set1_ps(dd);
            for (int v = 0; v < nx; v++) {
                tot[v] = _mm256_fmadd_ps(dv, acc[v], tot[v]);
                mins[v] += mm * xsum[(size_t)v * groups + g];
            }
        }
        for (int v = 0; v < nx; v++) {
            float *out = y + (size_t)v * ldy + r;
            *out = (accumulate ? *out : 0) + hsum(tot[v]) + mins[v];
        }
    }
}

VEC static void q8_dequant_avx2(const int8_t *q, const float *scale, int r0, int r1, int cols, float *out, int ldo) {
    int c8 = cols & ~7;
    for (int r = r0; r < r1; r++) {
        const int8_t *w = q + (size_t)r * cols;
        float *o = out + (size_t)(r - r0) * ldo;
        __m256 s = _mm256_set1_ps(scale[r]);
        for (int c = 0; c < c8; c += 8) {
            __m256 wf = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(w + c))));
            _mm256_storeu_ps(o + c, _mm256_mul_ps(s, wf));
        }
        for (int c = c8; c < cols; c++) o[c] = scale[r] * (float)w[c];
    }
}

VEC static void q4_dequant_avx2(const uint8_t *q, const uint16_t *d, const uint16_t *m, int group, int r0, int r1, int cols,
                                float *out, int ldo) {
    int groups = cols / group;
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = q + (size_t)r * (cols / 2);
        float *o = out + (size_t)(r - r0) * ldo;
        for (int g = 0; g < groups; g++) {
            size_t gi = (size_t)r * groups + g;
            __m256 dv = _mm256_set1_ps(_cvtsh_ss(d[gi])), mv = _mm256_set1_ps(_cvtsh_ss(m[gi]));
            for (int b = 0; b < group; b += 32) {
                __m256 w[4];
                q4_unpack32(row + (g * group + b) / 2, w);
                float *ob = o + g * group + b;
                for (int k = 0; k < 4; k++) _mm256_storeu_ps(ob + 8 * k, _mm256_fmadd_ps(dv, w[k], mv));
            }
        }
    }
}

static int vectorized = -1, allowed = 1;
int fi_kernels_vectorized(void) {
    if (vectorized < 0) {
        __builtin_cpu_init();
        vectorized = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    }
    return vectorized && allowed;
}
void fi_kernels_allow_vector(int allow) { allowed = allow; }
#else
int fi_kernels_vectorized(void) { return 0; }
void fi_kernels_allow_vector(int allow) { (void)allow; }
#endif

void fi_q8_matvec(const int8_t *q, const float *scale, int r0, int r1, int cols, const float *x, int ldx, int nx,
                  float *y, int ldy, int accumulate) {
#if defined(__x86_64__)
    if (fi_kernels_vectorized() && nx <= 4) { q8_matvec_avx2(q, scale, r0, r1, cols, x, ldx, nx, y, ldy, accumulate); return; }
#endif
    q8_matvec_c(q, scale, r0, r1, cols, x, ldx, nx, y, ldy, accumulate);
}

void fi_q4_matvec(const uint8_t *q, const uint16_t *d, const uint16_t *m, int group, int r0, int r1, int cols,
                  const float *x, int ldx, int nx, float *y, int ldy, int accumulate) {
#if defined(__x86_64__)
    if (fi_kernels_vectorized() && nx <= 4 && cols / group <= 4096) {
        int groups = cols / group;
        float xsum[4 * 4096];
        for (int v = 0; v < nx; v++)
            for (int g = 0; g < groups; g++) {
                const float *xg = x + (size_t)v * ldx + g * group;
                float s = 0;
                for (int i = 0; i < group; i++) s += xg[i];
                xsum[v * groups + g] = s;
            }
        q4_matvec_avx2(q, d, m, group, r0, r1, cols, x, ldx, nx, y, ldy, accumulate, xsum);
        return;
    }
#endif
    q4_matvec_c(q, d, m, group, r0, r1, cols, x, ldx, nx, y, ldy, accumulate);
}

void fi_q8_dequant(const int8_t *q, const float *scale, int r0, int r1, int cols, float *out, int ldo) {
#if defined(__x86_64__)
    if (fi_kernels_vectorized()) { q8_dequant_avx2(q, scale, r0, r1, cols, out, ldo); return; }
#endif
    q8_dequant_c(q, scale, r0, r1, cols, out, ldo);
}

void fi_q4_dequant(const uint8_t *q, const uint16_t *d, const uint16_t *m, int group, int r0, int r1, int cols,
                   float *out, int ldo) {
#if defined(__x86_64__)
    if (fi_kernels_vectorized()) { q4_dequant_avx2(q, d, m, group, r0, r1, cols, out, ldo); return; }
#endif
    q4_dequant_c(q, d, m, group, r0, r1, cols, out, ldo);
}

// Quantized weight kernels for the engine: fused dequantize-dot products (decode is memory-bandwidth bound, so
// weights are read once, as int8 or 4-bit codes) and row dequantization into fp32 tiles for cblas_sgemm.
#pragma once
#include <stddef.h>
#include <stdint.h>

// int8, one scale per row: w[r][c] = scale[r] * q[r][c].
// y[v*ldy + r] (+)= sum_c w[r][c] * x[v*ldx + c] for rows r0 <= r < r1 and nx <= 4 vectors.
void fi_q8_matvec(const int8_t *q, const float *scale, int r0, int r1, int cols,
                  const float *x, int ldx, int nx, float *y, int ldy, int accumulate);
// out[(r - r0) * ldo + c] = w[r][c] for rows r0 <= r < r1.
void fi_q8_dequant(const int8_t *q, const float *scale, int r0, int r1, int cols, float *out, int ldo);

// 4-bit, groups of `group` (32 or 64) along a row, each group with an fp16 scale d and minimum m:
// w = m + d * code, code in 0...15. A row is cols/2 bytes; every 32 weights are 16 bytes whose low nibbles are
// weights 0..15 and high nibbles weights 16..31.
void fi_q4_matvec(const uint8_t *q, const uint16_t *d, const uint16_t *m, int group, int r0, int r1, int cols,
                  const float *x, int ldx, int nx, float *y, int ldy, int accumulate);
void fi_q4_dequant(const uint8_t *q, const uint16_t *d, const uint16_t *m, int group, int r0, int r1, int cols,
                   float *out, int ldo);

// fp16 <-> fp32 (IEEE binary16, round to nearest even).
float fi_half_to_float(uint16_t h);
uint16_t fi_float_to_half(float f);

// 1 when the AVX2/FMA/F16C kernels run on this CPU (else portable C).
int fi_kernels_vectorized(void);
// Tests: 0 forces the portable C kernels, 1 uses the vector ones when the CPU has them.
void fi_kernels_allow_vector(int allow);

/* out_fletcher: HDF5's Fletcher32 (see out_fletcher.h). Owns only the
 * arithmetic; must stay bit-identical to H5_checksum_fletcher32 (tests
 * compare every length parity against HDF5's own function).
 *
 * HDF5's definition: 16-bit big-endian words w_l, an odd last byte as the
 * high byte of a last word; sum1 += w_l, sum2 += sum1 word by word, both
 * folded (x = (x & 0xffff) + (x >> 16)) after every block of 360 words and
 * twice at the end. The folds are not linear, so the blocks are kept: within
 * a block of t words sum2 grows by t * sum1 + t * S - U and sum1 by S, with
 * S = sum of w_l and U = sum of l * w_l (l = 0 .. t-1), the same integers
 * mod 2^32 as HDF5's word-by-word loop. S and U are what the loops below
 * compute: the portable one word by word, the AVX2 one 8 words per step. */
#include <string.h>

#include "out_fletcher.h"

#define BLOCK_WORDS 360

static inline uint32_t fold(uint32_t x)
{
    return (x & 0xffff) + (x >> 16);
}

/* S and U of t words at p (portable). */
static void block_sums_portable(const unsigned char *p, uint32_t t, uint32_t *s_out,
                                uint32_t *u_out)
{
    uint32_t s = 0, u = 0;
    for (uint32_t l = 0; l < t; l++) {
        uint32_t w = ((uint32_t)p[2 * l] << 8) | p[2 * l + 1];
        s += w;
        u += l * w;
    }
    *s_out = s;
    *u_out = u;
}

typedef void (*block_fn)(const unsigned char *, uint32_t, uint32_t *, uint32_t *);

static uint32_t fletcher(const unsigned char *data, size_t n_bytes, block_fn block)
{
    size_t len = n_bytes / 2;
    uint32_t sum1 = 0, sum2 = 0;
    while (len) {
        uint32_t t = len > BLOCK_WORDS ? BLOCK_WORDS : (uint32_t)len, s, u;
        len -= t;
        block(data, t, &s, &u);
        data += 2 * (size_t)t;
        sum2 += t * sum1 + t * s - u;
        sum1 += s;
        sum1 = fold(sum1);
        sum2 = fold(sum2);
    }
    if (n_bytes % 2) {
        sum1 += (uint32_t)(((uint16_t)*data) << 8);
        sum2 += sum1;
        sum1 = fold(sum1);
        sum2 = fold(sum2);
    }
    sum1 = fold(sum1);
    sum2 = fold(sum2);
    return (sum2 << 16) | sum1;
}

uint32_t bz_out_fletcher32_portable(const void *data, size_t n_bytes)
{
    return fletcher(data, n_bytes, block_sums_portable);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* S and U of t words at p, 8 words per step in 32-bit lanes: lane k of step
 * i holds word 8i + k. a_k = sum_i w, b_k = sum_i (n-1-i) w (each step adds
 * the running a before w), so sum_i i w = (n-1) a_k - b_k and
 * U = sum_k 8 ((n-1) a_k - b_k) + k a_k. All mod 2^32, as HDF5's sums. */
__attribute__((target("avx2"))) static void block_sums_avx2(const unsigned char *p, uint32_t t,
                                                            uint32_t *s_out, uint32_t *u_out)
{
    const __m128i swap = _mm_setr_epi8(1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
    uint32_t n = t / 8;
    __m256i a = _mm256_setzero_si256(), b = _mm256_setzero_si256();
    for (uint32_t i = 0; i < n; i++) {
        __m128i raw = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * (size_t)i));
        __m256i w = _mm256_cvtepu16_epi32(_mm_shuffle_epi8(raw, swap));
        b = _mm256_add_epi32(b, a);
        a = _mm256_add_epi32(a, w);
    }
    uint32_t s = 0, u = 0;
    if (n) {
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        __m256i sum_iw =
            _mm256_sub_epi32(_mm256_mullo_epi32(a, _mm256_set1_epi32((int)(n - 1))), b);
        __m256i uv = _mm256_add_epi32(_mm256_slli_epi32(sum_iw, 3), _mm256_mullo_epi32(a, lane));
        uint32_t av[8], uu[8];
        _mm256_storeu_si256((__m256i *)(void *)av, a);
        _mm256_storeu_si256((__m256i *)(void *)uu, uv);
        for (int k = 0; k < 8; k++) {
            s += av[k];
            u += uu[k];
        }
    }
    for (uint32_t l = 8 * n; l < t; l++) {
        uint32_t w = ((uint32_t)p[2 * l] << 8) | p[2 * l + 1];
        s += w;
        u += l * w;
    }
    *s_out = s;
    *u_out = u;
}

uint32_t bz_out_fletcher32(const void *data, size_t n_bytes)
{
    static int have_avx2 = -1; /* a benign race: every thread stores the same value */
    if (have_avx2 < 0)
        have_avx2 = __builtin_cpu_supports("avx2") ? 1 : 0;
    return fletcher(data, n_bytes, have_avx2 ? block_sums_avx2 : block_sums_portable);
}
#else
uint32_t bz_out_fletcher32(const void *data, size_t n_bytes)
{
    return fletcher(data, n_bytes, block_sums_portable);
}
#endif

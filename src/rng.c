/* rng: counter-based streams. Each draw is a hash of (key, counter): no state
 * beyond the counter, so a stream can be re-created anywhere to give the same
 * numbers. splitmix64's finaliser (Steele, Lea, Flood 2014) passes BigCrush
 * when fed a Weyl sequence, which is what key + counter * golden gives. */
#include <math.h>
#include <string.h>

#include "bazaar/rng.h"

#define BZ_GOLDEN 0x9e3779b97f4a7c15ULL

uint64_t bz_hash64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

uint64_t bz_hash_combine(uint64_t a, uint64_t b)
{
    return bz_hash64(a ^ bz_hash64(b + BZ_GOLDEN + (a << 6) + (a >> 2)));
}

uint64_t bz_hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; s && *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return bz_hash64(h);
}

uint64_t bz_hash_f64(double x)
{
    if (x == 0.0)
        x = 0.0;
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    return bz_hash64(bits);
}

void bz_rng_init(struct bz_rng *r, uint64_t seed, uint64_t purpose)
{
    r->key = bz_hash_combine(seed, purpose);
    r->ctr = 0;
}

uint64_t bz_rng_u64(struct bz_rng *r)
{
    r->ctr++;
    return bz_hash64(r->key + r->ctr * BZ_GOLDEN);
}

double bz_rng_uniform(struct bz_rng *r)
{
    return (double)(bz_rng_u64(r) >> 11) * 0x1.0p-53;
}

uint64_t bz_rng_below(struct bz_rng *r, uint64_t n)
{
    /* Lemire's multiply-shift with rejection of the biased low zone. */
    uint64_t threshold = (0 - n) % n;
    for (;;) {
        uint64_t x = bz_rng_u64(r);
        __uint128_t m = (__uint128_t)x * n;
        if ((uint64_t)m >= threshold)
            return (uint64_t)(m >> 64);
    }
}

double bz_rng_normal(struct bz_rng *r)
{
    double u1 = bz_rng_uniform(r);
    double u2 = bz_rng_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

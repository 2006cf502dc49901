/* rng: counter-based deterministic random streams. A stream is (key, counter):
 * the n-th draw depends only on the key and n, so streams for different purposes
 * (per game, per agent, per phase) never interfere and results do not depend on
 * the order in which games or ranks run. */
#ifndef BAZAAR_RNG_H
#define BAZAAR_RNG_H

#include <stdint.h>

struct bz_rng {
    uint64_t key;
    uint64_t ctr;
};

/* Strong 64-bit mixer (splitmix64 finaliser). */
uint64_t bz_hash64(uint64_t x);
/* Order-dependent combination of two hashes. */
uint64_t bz_hash_combine(uint64_t a, uint64_t b);
/* FNV-1a of a string, then mixed. Stable across platforms. */
uint64_t bz_hash_str(const char *s);
/* Hash of a double's bit pattern (with -0.0 folded onto 0.0). */
uint64_t bz_hash_f64(double x);

/* A stream keyed by (seed, purpose); purpose distinguishes uses of one seed. */
void bz_rng_init(struct bz_rng *r, uint64_t seed, uint64_t purpose);
uint64_t bz_rng_u64(struct bz_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double bz_rng_uniform(struct bz_rng *r);
/* Uniform integer in [0, n); n > 0. Unbiased (rejection). */
uint64_t bz_rng_below(struct bz_rng *r, uint64_t n);
/* Standard normal (Box-Muller; consumes two draws). */
double bz_rng_normal(struct bz_rng *r);

#endif

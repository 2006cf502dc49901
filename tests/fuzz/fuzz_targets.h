/* fuzz_targets: one entry point per parser of outside input, shared by the
 * libFuzzer build (clang) and the deterministic mutation driver (any
 * compiler, run by ctest). Each returns 0 and must never crash, hang or leak,
 * whatever the bytes. */
#ifndef BAZAAR_FUZZ_TARGETS_H
#define BAZAAR_FUZZ_TARGETS_H

#include <stddef.h>
#include <stdint.h>

struct bz_fuzz_target {
    const char *name;
    int (*run)(const uint8_t *data, size_t size);
};

/* info (bz_out_info), merge (bz_shard_committed + bz_merge), provider
 * (both reply formats + JSON extraction), registry, spec, template. */
extern const struct bz_fuzz_target bz_fuzz_targets[];
extern const size_t bz_fuzz_n_targets;

const struct bz_fuzz_target *bz_fuzz_find(const char *name);

#endif

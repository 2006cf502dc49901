/* libfuzzer_main: the libFuzzer entry point of one target, chosen at build
 * time (-DBZ_FUZZ_TARGET="info"); built only with clang (BZ_FUZZ=ON). */
#include <stdlib.h>

#include "fuzz_targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct bz_fuzz_target *t;
    if (!t && !(t = bz_fuzz_find(BZ_FUZZ_TARGET)))
        abort();
    return t->run(data, size);
}

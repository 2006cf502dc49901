/* file: reading an input file whole (specs, registry, prompts, data), with a
 * cap on its size and messages that name the file and what it is for. */
#ifndef BAZAAR_FILE_H
#define BAZAAR_FILE_H

#include <stddef.h>

#include "bazaar/err.h"

/* Read path into *text (malloc'd, NUL-terminated; free it) and its length
 * into *len (may be NULL). what names the kind of file in messages ("spec",
 * "models registry"). A file that cannot be opened is BZ_EINVAL (bad
 * input); one larger than max_bytes, or no memory, BZ_ENOMEM (err.h: a cap
 * on input size); a read error BZ_EIO. */
int bz_file_load(const char *path, size_t max_bytes, const char *what, char **text, size_t *len,
                 struct bz_err *err);

#endif

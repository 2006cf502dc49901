/* out_texts: the transcript store of a results file, read side. /llm_texts
 * holds each distinct text of the sweep once (hash, first use, offset,
 * length) and /llm_text_bytes the texts' bytes, deflate-compressed; see
 * tables.h. Part of the out module (the only one that calls HDF5). */
#ifndef BAZAAR_OUT_TEXTS_H
#define BAZAAR_OUT_TEXTS_H

#include <stddef.h>

#include "bazaar/err.h"

/* Path of the texts' bytes in a results file. */
#define BZ_OUT_TEXT_BYTES_PATH "/llm_text_bytes"

/* Look n texts up by hash (32 hex digits, as /llm_calls names them) in the
 * results file at path: texts[i] is the text under hashes[i], malloc'd (the
 * caller frees each), NULL when the file holds none (or hashes[i] is NULL or
 * ""). Reads the index through a bounded window and only the bytes of the
 * texts found. A file of the earlier layout (per-game rows with a text
 * column, as shards hold it) is read too. A file without /llm_texts finds
 * nothing. BZ_EIO when the file or its store does not read (an index entry
 * pointing past the bytes included); BZ_ENOMEM. On failure every texts[i]
 * is NULL. */
int bz_out_texts_lookup(const char *path, const char *const *hashes, size_t n, char **texts,
                        struct bz_err *err);

#endif

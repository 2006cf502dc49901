/* out_texts: the transcript store of a results file, read side. /llm_texts
 * holds each distinct text of the sweep once (hash, first use, offset,
 * length) and /llm_text_bytes the texts' bytes, deflate-compressed; see
 * tables.h. Part of the out module (the only one that calls HDF5). */
#ifndef BAZAAR_OUT_TEXTS_H
#define BAZAAR_OUT_TEXTS_H

#include <stddef.h>
#include <stdint.h>

#include "bazaar/err.h"
#include "bazaar/tables.h"

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

/* One row of a results file's /llm_texts index, strings NUL-terminated. */
struct bz_out_text_entry {
    int64_t game_id; /* of the text's first use */
    char hash[33];
    char kind[BZ_LLM_TEXT_KIND_MAX + 1];
    uint64_t offset, length; /* in /llm_text_bytes */
};

/* Call fn on every index row of the results file at path, in file order
 * (first use), reading a bounded window at a time; fn returning non-zero
 * stops the walk and is returned. A file without /llm_texts calls nothing; a
 * file of the per-game layout (a shard's) is BZ_EINVAL. BZ_EIO when it does
 * not read. */
int bz_out_texts_each(const char *path,
                      int (*fn)(void *ctx, const struct bz_out_text_entry *e, struct bz_err *err),
                      void *ctx, struct bz_err *err);

#endif

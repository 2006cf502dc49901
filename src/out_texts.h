/* out_texts (private to src/out_*.c): the merge of the shards' per-game
 * /llm_texts rows into the results file's store, and its read-back check. */
#ifndef BAZAAR_OUT_TEXTS_INTERNAL_H
#define BAZAAR_OUT_TEXTS_INTERNAL_H

#include <stdint.h>

#include "bazaar/out_texts.h"
#include "out_h5.h"

/* The shard of the list that owns game_id in the merged file, or -1. */
typedef long (*bz_out_owner_fn)(const void *ctx, int64_t game_id);

/* Whether the merge leaves table path (a dataset path found in the shards)
 * to bz_out_texts_merge: /llm_texts and /llm_text_bytes. */
int bz_out_texts_is_store(const char *path);

/* Build the store in the open output file out from the /llm_texts of the
 * games each source owns (owner(ctx, game) == its index): games in id
 * order, the texts a game is the first to use by kind then text (the
 * order its calls completed in is not reproducible), each text kept at its
 * first use only: /llm_texts, the index, and /llm_text_bytes. A source is a
 * shard (per-game rows) or a results file (a store: OUT when a run resumes;
 * a game's entries there are the texts it used first, all the merge needs:
 * so the store equals an uninterrupted run's). Both paths name the one
 * store: the first call builds it, and *n_rows is the length of path's
 * dataset (index rows or bytes). Every kept text is checked to hash to its
 * hash (BZ_EIO naming source and game otherwise). Memory: the set of hashes
 * seen (32 to 64 bytes per distinct text, 96 while it grows), one entry per
 * (game, source) run, one game's rows of one source (its texts included)
 * and one output chunk of each dataset; never the texts as a whole. */
int bz_out_texts_merge(hid_t out, const char *out_name, const char *path, const char *const *shards,
                       size_t n_shards, bz_out_owner_fn owner, const void *ctx,
                       unsigned long long *n_rows, struct bz_err *err);

/* The order in which a merge takes runs (a game's rows in one shard, from
 * row start): by game id, then shard, then start; <0, 0 or >0 as qsort
 * wants. */
int bz_out_run_order(int64_t game_a, size_t shard_a, hsize_t start_a, int64_t game_b,
                     size_t shard_b, hsize_t start_b);

/* Read-back of the merged file (open read-only): when it has /llm_texts,
 * every index entry lies inside /llm_text_bytes, entries are contiguous in
 * order, and every byte reads (checksums and inflate). BZ_EIO otherwise. */
int bz_out_texts_check(hid_t file, const char *file_name, struct bz_err *err);

#endif

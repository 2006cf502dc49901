/* out: the HDF5 results format. Shard writer (one per rank and attempt),
 * journal, reading back which games a shard committed, and the merge into one
 * results file ordered by game_id. The only module that calls HDF5. */
#ifndef BAZAAR_OUT_H
#define BAZAAR_OUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bazaar/err.h"
#include "bazaar/records.h"

struct bz_shard;

/* Create a new shard file at path (must not exist: BZ_EIO otherwise) and its
 * journal at path + ".journal". Free with bz_shard_close. */
int bz_shard_create(const char *path, struct bz_shard **out, struct bz_err *err);

/* How a merged file stores its tables (bazaar run/merge --layout).
 * BZ_LAYOUT_PLAIN (the default): every table is one chunked, compressed
 * dataset; the merge gathers rows in game order and compresses them.
 * BZ_LAYOUT_VIRTUAL: each table without strings is an HDF5 virtual dataset
 * of the same file over "parts" (/.parts/<source>/<table>: a copy of each
 * source's stored chunks, compressed by the rank that wrote them), mapped in
 * game order; tables with strings are stored as in PLAIN. h5py (HDF5 1.10
 * or later) reads both the same: same rows, same order, same values. The
 * merge then copies chunks instead of compressing rows, so its cost does
 * not grow with the ranks' compression work. */
enum bz_layout { BZ_LAYOUT_PLAIN = 0, BZ_LAYOUT_VIRTUAL = 1 };

/* The layout the shard writes for (before its first append; PLAIN by
 * default). VIRTUAL: each full chunk of a table without strings is
 * deflate-compressed as it is stored (the rank's CPU; what the virtual merge
 * copies); the partial last chunk is stored uncompressed (its deflate
 * filter skipped in the chunk's filter mask), so it is still rewritten in
 * place as it grows. */
void bz_shard_set_layout(struct bz_shard *s, enum bz_layout layout);
/* In the virtual layout: deflate full chunks on n background threads (a CPU
 * the play leaves idle) instead of in the writer's own; they are stored
 * before the next flush, so what a commit makes durable is unchanged. 0
 * (the default): in the writer. Before the first append. */
void bz_shard_set_threads(struct bz_shard *s, int n);

/* Append one finished game: every table's rows except /games first, then its
 * /games row (the commit record), then H5Fflush, then a journal line. After a
 * kill -9 the shard reads back up to the last committed game. Tables are
 * created on first use from their descriptors (chunked, deflate-compressed
 * 1-D compound datasets that h5py reads as structured arrays). */
int bz_shard_append(struct bz_shard *s, const struct bz_records *rec, struct bz_err *err);

/* Hand over rows of a game still being played (a long game's batch of
 * turns): every table's rows of rec, all of one game, none of them /games
 * (the commit record comes last, with bz_shard_append). The caller may drop
 * them afterwards (bz_records_drop_rows). They are not committed: a kill
 * before the game's bz_shard_append leaves rows that no reader takes, and
 * the game is played again. Memory: the shard holds at most a bounded
 * staging buffer per table, whatever the size of the game. */
int bz_shard_put(struct bz_shard *s, const struct bz_records *rec, struct bz_err *err);

/* Group commit: with it on, bz_shard_append writes a game (its /games row
 * last) but leaves the flush, fsync and journal line to the next
 * bz_shard_sync (or close), so that one fsync serves a batch of small games.
 * A kill before the sync loses only the unsynced games (they are not
 * committed and get replayed). Off by default. */
void bz_shard_set_group_commit(struct bz_shard *s, int on);
/* Games appended but not yet made durable. */
size_t bz_shard_pending(const struct bz_shard *s);
/* Group commit's policy (the runner's; the benches follow it): sync once
 * the oldest pending game waits BZ_SHARD_SYNC_INTERVAL_S (counted from the
 * last sync) or BZ_SHARD_SYNC_MAX_GAMES are pending. A kill -9 loses at most
 * that (those games are played again); fewer games per fsync cost more: at
 * 256 games the fsync was 12% of the records' cost of a small game. */
#define BZ_SHARD_SYNC_INTERVAL_S 0.5
#define BZ_SHARD_SYNC_MAX_GAMES 4096
/* 1 when the pending games are due for bz_shard_sync by that policy. */
int bz_shard_sync_due(const struct bz_shard *s);
/* Flush, fsync, journal the pending games, fsync the journal. */
int bz_shard_sync(struct bz_shard *s, struct bz_err *err);

/* Sync, then close; NULL is fine. */
int bz_shard_close(struct bz_shard *s, struct bz_err *err);

/* Durability off the writer's thread (out_durable.c): one background thread
 * that runs, in the order they came, jobs of "fsync a file, then append text
 * to a journal and fsync it". A shard given one (bz_shard_set_durable)
 * flushes at each sync and close as before, then hands the fsync and its
 * journal lines to the thread instead of waiting for them: a game is
 * committed (its line written) a few milliseconds later, and a kill loses at
 * most the jobs still queued (at most 4 batches: replayed identically).
 * Writers that share one keep the order of their lines. */
struct bz_durable;
int bz_durable_create(struct bz_durable **out, struct bz_err *err);
/* Queue a job. fd and journal_fd (-1: none) become the job's and are closed
 * after it (pass descriptors of the job's own: for a file HDF5 holds open, a
 * new open() of its path, not a dup, which would share HDF5's flock and keep
 * the file from being opened again until the job ran); text is copied.
 * Waits while 4 jobs are queued. quiet: the job's own error is dropped.
 * BZ_EIO: an earlier job failed (its message), and nothing more is queued. */
int bz_durable_submit(struct bz_durable *d, int fd, int journal_fd, const char *text, size_t len,
                      const char *path, const char *journal_path, int quiet, struct bz_err *err);
/* Wait until every queued job ran; the first failed job's error. NULL is fine. */
int bz_durable_wait(struct bz_durable *d, struct bz_err *err);
/* Run what is queued, then stop the thread and free; NULL is fine. */
void bz_durable_destroy(struct bz_durable *d);
/* From now on the shard's syncs hand their fsync and journal lines to d
 * (which must outlive the shard's close). */
void bz_shard_set_durable(struct bz_shard *s, struct bz_durable *d);

/* The game_ids committed in a shard, sorted ascending; *ids is malloc'd (free
 * it). A game counts when it has its /games row and its journal line (the
 * line is written after the flush completed; without a journal file /games
 * alone counts). Every table is read in full to prove the shard readable: a
 * shard that cannot be opened or read (truncated, garbage, or a writer killed
 * inside a flush) gives BZ_EIO with a message naming the file; the caller
 * sets it aside and replays its games. A shard without /games yet gives 0. */
int bz_shard_committed(const char *path, int64_t **ids, size_t *n, struct bz_err *err);
/* The same ids from the commit records and the journal alone, without
 * reading the tables back: for shards already checked, or just written and
 * closed by this process. */
int bz_shard_committed_quick(const char *path, int64_t **ids, size_t *n, struct bz_err *err);

/* 1 when the shard's journal exists and confirms no game: nothing in the
 * shard counts, whatever its HDF5 holds (a writer killed before or inside
 * its first commit's flush), so an unreadable such shard can be removed
 * rather than kept; also 1 for an empty file without a journal (a writer
 * that created the shard before its journal, killed in between); 0
 * otherwise (a journal line, or no journal and bytes: a shard of the old
 * layout). BZ_EIO when the journal cannot be read. */
int bz_shard_recorded_nothing(const char *path, int *nothing, struct bz_err *err);

/* Root attributes of the merged file (strings; NULL ones are omitted). */
struct bz_provenance {
    const char *spec_json;
    const char *version;
    const char *git_commit;
    const char *hosts;      /* comma-separated host names */
    const char *started_at; /* ISO 8601 UTC */
    const char *finished_at;
    int64_t ranks;
    int64_t n_games;
};

/* The root attributes of a results file (bz_merge's, from its prov) into
 * prov: its strings point into *buf (malloc'd; free it). BZ_EINVAL (no
 * message) for a file that has none (a shard), BZ_EIO when it cannot be
 * opened. For a results file merged again (`bazaar merge --layout plain
 * virtual.h5`): the copy records the run that made it. */
int bz_out_read_provenance(const char *path, struct bz_provenance *prov, char **buf,
                           struct bz_err *err);

/* Merge shards into out_path (written to out_path + ".tmp" then renamed, so a
 * kill during the merge leaves no half file under the final name). Holds the
 * output's lock (bz_out_lock_take; re-entrant for a caller that holds it)
 * before anything is written: another live writer is BZ_EINVAL naming it. A
 * leftover .tmp (a killed merge's) is removed and the new one created
 * exclusively; the renamed file was closed, fsynced and read back in full
 * first. A failed close (full disk) is BZ_EIO. Every game
 * committed in some shard is copied once (first shard in the list wins), all
 * tables ordered by game_id with each game's rows in the order they were
 * written. Tables are copied whatever their schema (a table whose columns
 * differ between shards is BZ_EINVAL); a table seen only with uncommitted
 * rows is written empty. An unreadable shard is BZ_EIO naming it (filter the
 * list with bz_shard_committed first). Root attributes from prov (NULL: none).
 * Memory: bounded by 256 MiB (BZ_MERGE_MEMORY sets another bound, e.g. "64M")
 * whatever the number of games; tables without strings are compressed on
 * BZ_MERGE_THREADS threads (default: the CPUs the caller may run on). */
int bz_merge(const char *const *shards, size_t n_shards, const char *out_path,
             const struct bz_provenance *prov, struct bz_err *err);
/* bz_merge with the merged file's layout (bz_merge: BZ_LAYOUT_PLAIN). */
int bz_merge_layout(const char *const *shards, size_t n_shards, const char *out_path,
                    const struct bz_provenance *prov, enum bz_layout layout, struct bz_err *err);

/* The same merge, fed as it goes (the follower merge, `bazaar merge
 * --follow`, merges a sweep's closed segments while it plays): open takes
 * the lock and creates out_path.tmp; add gives a source and its committed
 * ids (sorted; every id of a source added after an advance must be at or
 * past that advance's hi); advance merges, in every table at once, the
 * games with ids below hi not merged yet (the caller vouches that every
 * source of those games was added); finish merges the rest, then writes,
 * reads back and renames as bz_merge does. streaming: every table gets the
 * standard chunk (the total is not known), else a small table gets one
 * chunk sized to its rows, as bz_merge does. Rows, order and content are
 * bz_merge's over the same sources in the same order. finish and abort
 * free ms (abort removes the tmp). */
struct bz_merge_stream;
int bz_merge_stream_open(const char *out_path, int streaming, struct bz_merge_stream **ms,
                         struct bz_err *err);
/* The stream's layout (before its first add; BZ_LAYOUT_PLAIN by default). */
void bz_merge_stream_set_layout(struct bz_merge_stream *ms, enum bz_layout layout);
int bz_merge_stream_add(struct bz_merge_stream *ms, const char *shard, const int64_t *ids, size_t n,
                        struct bz_err *err);
int bz_merge_stream_advance(struct bz_merge_stream *ms, int64_t hi, struct bz_err *err);
int bz_merge_stream_finish(struct bz_merge_stream *ms, const struct bz_provenance *prov,
                           struct bz_err *err);
void bz_merge_stream_abort(struct bz_merge_stream *ms);
/* Games merged so far (ids below the last advance's hi that some source
 * committed). */
uint64_t bz_merge_stream_games(const struct bz_merge_stream *ms);

/* Append the rows of desc->path in the file at path to rec, laid out as
 * desc's row struct: members are matched by name, so desc may name a subset
 * of the file's columns; strings are copied to rec. A file without the table
 * adds no rows. */
int bz_out_read_table(const char *path, const struct bz_table_desc *desc, struct bz_records *rec,
                      struct bz_err *err);

/* Print a results file's root attributes and every table with its row count
 * and columns to f (bazaar info). */
int bz_out_info(const char *path, FILE *f, struct bz_err *err);

#endif

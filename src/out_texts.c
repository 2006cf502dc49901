/* out_texts: the transcript store of a results file. The merge turns the
 * shards' per-game /llm_texts rows (game_id, hash, kind, text) into each
 * distinct text of the sweep once: /llm_texts, an index in order of first
 * use (games by id, the texts a game uses first by kind, then text), and
 * /llm_text_bytes, the texts' bytes back to back in a chunked,
 * deflate-compressed u8 dataset. Readers look texts up by hash. Never writes
 * a shard; never holds the texts as a whole (one game's rows and one output
 * chunk at a time). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bazaar/llm_call.h"
#include "bazaar/out.h"
#include "bazaar/records.h"
#include "bazaar/tables.h"
#include "out_texts.h"

/* Chunk of /llm_text_bytes and its deflate level. Measured on
 * sweeps/llm_example.json against tests/llm_server.py (bench/texts_bytes.py):
 * see the README's output section. A reader of one text inflates one or two
 * chunks. */
#ifndef TEXT_CHUNK_BYTES
#define TEXT_CHUNK_BYTES (256 * 1024)
#endif
#ifndef TEXT_DEFLATE
#define TEXT_DEFLATE 6
#endif
/* the index: raw bytes per chunk, and shuffle + deflate as every table */
#define INDEX_CHUNK_BYTES (256 * 1024)
#define INDEX_DEFLATE 6
/* sources kept open while the games are taken in id order (games are dealt
 * round-robin to ranks: more ranks than this reopen a file per game) */
#define OPEN_SHARDS 32
/* index rows read at once by the readers */
#define WINDOW_ROWS 4096
/* a text longer than this in a file is refused by the readers */
#define TEXT_MAX_BYTES ((uint64_t)1 << 30)
#define HASH_HEX 32

static const char *const TEXTS_PATH = "/llm_texts";

/* One index row in memory (the file holds it packed, little-endian). */
struct index_row {
    int64_t game_id;
    char hash[HASH_HEX];
    char kind[BZ_LLM_TEXT_KIND_MAX];
    uint64_t offset, length;
};

/* ---- types ---------------------------------------------------------------- */

/* The index row type: in memory (struct index_row) or in the file (packed,
 * little-endian). Column order and names as bz_llm_text_index_table. */
static hid_t index_type(int in_file)
{
    hid_t hash = bz_out_h5_fixed_str_type(HASH_HEX),
          kind = bz_out_h5_fixed_str_type(BZ_LLM_TEXT_KIND_MAX);
    size_t packed = 8 + HASH_HEX + BZ_LLM_TEXT_KIND_MAX + 8 + 8;
    hid_t t = H5Tcreate(H5T_COMPOUND, in_file ? packed : sizeof(struct index_row));
    hid_t i64 = in_file ? H5T_STD_I64LE : H5T_NATIVE_INT64;
    hid_t u64 = in_file ? H5T_STD_U64LE : H5T_NATIVE_UINT64;
    size_t at[5] = {offsetof(struct index_row, game_id), offsetof(struct index_row, hash),
                    offsetof(struct index_row, kind), offsetof(struct index_row, offset),
                    offsetof(struct index_row, length)};
    if (in_file) {
        size_t p[5] = {0, 8, 8 + HASH_HEX, 8 + HASH_HEX + BZ_LLM_TEXT_KIND_MAX,
                       16 + HASH_HEX + BZ_LLM_TEXT_KIND_MAX};
        memcpy(at, p, sizeof at);
    }
    if (hash < 0 || kind < 0 || t < 0 || H5Tinsert(t, "game_id", at[0], i64) < 0 ||
        H5Tinsert(t, "hash", at[1], hash) < 0 || H5Tinsert(t, "kind", at[2], kind) < 0 ||
        H5Tinsert(t, "offset", at[3], u64) < 0 || H5Tinsert(t, "length", at[4], u64) < 0) {
        bz_out_h5_close(t);
        t = H5I_INVALID_HID;
    }
    bz_out_h5_close(hash);
    bz_out_h5_close(kind);
    return t;
}

int bz_out_texts_is_store(const char *path)
{
    return strcmp(path, TEXTS_PATH) == 0 || strcmp(path, BZ_OUT_TEXT_BYTES_PATH) == 0;
}

/* ---- the set of hashes seen ------------------------------------------------
 * Open addressing over the 16 bytes of the hash, kept at most half full; an
 * all-zero slot is empty (the all-zero hash itself is a flag). The keys are
 * hash outputs: their first 8 bytes are the bucket. */

struct seen {
    unsigned char *keys; /* cap x 16 */
    size_t cap, n;
    int zero;
};

static uint64_t load64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static const unsigned char zero16[16];

static void seen_put(unsigned char *keys, size_t cap, const unsigned char *key)
{
    size_t i = (size_t)load64(key) & (cap - 1);
    while (memcmp(keys + 16 * i, zero16, 16) != 0)
        i = (i + 1) & (cap - 1);
    memcpy(keys + 16 * i, key, 16);
}

static int seen_grow(struct seen *s)
{
    size_t cap = s->cap ? 2 * s->cap : 1024;
    unsigned char *keys = calloc(cap, 16);
    if (!keys)
        return -1;
    for (size_t i = 0; i < s->cap; i++)
        if (memcmp(s->keys + 16 * i, zero16, 16) != 0)
            seen_put(keys, cap, s->keys + 16 * i);
    free(s->keys);
    s->keys = keys;
    s->cap = cap;
    return 0;
}

/* 1: key added; 0: seen before; -1: out of memory. */
static int seen_add(struct seen *s, const unsigned char key[16])
{
    if (memcmp(key, zero16, 16) == 0) {
        int added = !s->zero;
        s->zero = 1;
        return added;
    }
    if (2 * (s->n + 1) > s->cap && seen_grow(s))
        return -1;
    size_t mask = s->cap - 1;
    for (size_t i = (size_t)load64(key) & mask;; i = (i + 1) & mask) {
        unsigned char *k = s->keys + 16 * i;
        if (memcmp(k, key, 16) == 0)
            return 0;
        if (memcmp(k, zero16, 16) == 0) {
            memcpy(k, key, 16);
            s->n++;
            return 1;
        }
    }
}

static int seen_has(const struct seen *s, const unsigned char key[16])
{
    if (memcmp(key, zero16, 16) == 0)
        return s->zero;
    if (!s->cap)
        return 0;
    size_t mask = s->cap - 1;
    for (size_t i = (size_t)load64(key) & mask;; i = (i + 1) & mask) {
        const unsigned char *k = s->keys + 16 * i;
        if (memcmp(k, key, 16) == 0)
            return 1;
        if (memcmp(k, zero16, 16) == 0)
            return 0;
    }
}

static int nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The 16 bytes of a 32-hex-digit hash; -1 when it is not one. */
static int parse_hash(const char *hex, unsigned char key[16])
{
    if (!hex || strlen(hex) != HASH_HEX)
        return -1;
    for (int i = 0; i < 16; i++) {
        int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        key[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

/* ---- an output dataset written in whole chunks ------------------------------ */

struct appender {
    hid_t dset, mtype;
    size_t elem;          /* bytes of one element in memory */
    hsize_t chunk, n_buf; /* elements per chunk; held in buf */
    hsize_t written;      /* elements in the dataset */
    unsigned char *buf;
};

static int app_flush(struct appender *a)
{
    if (!a->n_buf)
        return 0;
    int rc = -1;
    hsize_t size = a->written + a->n_buf;
    hid_t fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
    if (H5Dset_extent(a->dset, &size) < 0 || (fspace = H5Dget_space(a->dset)) < 0 ||
        (mspace = H5Screate_simple(1, &a->n_buf, NULL)) < 0 ||
        H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &a->written, NULL, &a->n_buf, NULL) < 0 ||
        H5Dwrite(a->dset, a->mtype, mspace, fspace, H5P_DEFAULT, a->buf) < 0)
        goto out;
    a->written = size;
    a->n_buf = 0;
    rc = 0;
out:
    bz_out_h5_close(mspace);
    bz_out_h5_close(fspace);
    return rc;
}

static int app_put(struct appender *a, const void *src, size_t n)
{
    const unsigned char *p = src;
    while (n) {
        size_t take = (size_t)(a->chunk - a->n_buf) < n ? (size_t)(a->chunk - a->n_buf) : n;
        memcpy(a->buf + (size_t)a->n_buf * a->elem, p, take * a->elem);
        a->n_buf += take;
        p += take * a->elem;
        n -= take;
        if (a->n_buf == a->chunk && app_flush(a))
            return -1;
    }
    return 0;
}

static uint64_t app_size(const struct appender *a)
{
    return (uint64_t)(a->written + a->n_buf);
}

/* ---- the merge -------------------------------------------------------------- */

static int each_index_row(hid_t file, const char *name,
                          int (*fn)(void *ctx, const struct index_row *row, struct bz_err *err),
                          void *ctx, struct bz_err *err);
static int open_bytes(hid_t file, const char *name, hid_t *dset, hsize_t *n, struct bz_err *err);

/* A stretch of consecutive /llm_texts rows of one game in one source. */
struct run {
    int64_t game_id;
    size_t shard;
    hsize_t start, len;
};

/* A source open for reading: a shard (per-game rows: game_id, hash, kind,
 * text) or a results file (the store: OUT when a run resumes; its rows of a
 * game are the texts that game used first, which is all the merge needs of
 * it: the texts it shares with earlier games come with those games). */
struct source {
    long shard; /* -1: slot free */
    int store;
    hid_t file, dset, bytes;
    hsize_t n_bytes;
    unsigned long used;
};

struct texts_merge {
    const char *out_name;
    const char *const *shards;
    size_t n_shards;
    struct run *runs;
    size_t n_runs, cap_runs;
    struct source open[OPEN_SHARDS];
    unsigned long tick;
    hid_t row_type, entry_type; /* struct bz_llm_texts_row, struct index_row */
    struct seen seen;
    struct appender index, bytes;
};

int bz_out_run_order(int64_t game_a, size_t shard_a, hsize_t start_a, int64_t game_b,
                     size_t shard_b, hsize_t start_b)
{
    if (game_a != game_b)
        return (game_a > game_b) - (game_a < game_b);
    if (shard_a != shard_b)
        return (shard_a > shard_b) - (shard_a < shard_b);
    return (start_a > start_b) - (start_a < start_b);
}

static int cmp_run(const void *a, const void *b)
{
    const struct run *x = a, *y = b;
    return bz_out_run_order(x->game_id, x->shard, x->start, y->game_id, y->shard, y->start);
}

static int push_run(struct texts_merge *tm, struct run r)
{
    if (tm->n_runs == tm->cap_runs) {
        size_t cap = tm->cap_runs ? 2 * tm->cap_runs : 256;
        struct run *p = realloc(tm->runs, cap * sizeof *p);
        if (!p)
            return -1;
        tm->runs = p;
        tm->cap_runs = cap;
    }
    tm->runs[tm->n_runs++] = r;
    return 0;
}

static void source_close(struct source *s)
{
    bz_out_h5_close(s->bytes);
    bz_out_h5_close(s->dset);
    bz_out_h5_close(s->file);
    *s = (struct source){-1, 0, H5I_INVALID_HID, H5I_INVALID_HID, H5I_INVALID_HID, 0, 0};
}

/* Open source i's /llm_texts (and a store's bytes): per-game rows or a
 * store, anything else refused. On failure s is closed. */
static int source_open(const struct texts_merge *tm, size_t i, struct source *s, struct bz_err *err)
{
    const char *name = tm->shards[i];
    hid_t ftype = H5I_INVALID_HID;
    source_close(s);
    int rc = bz_out_h5_open_ro(name, &s->file, err);
    if (rc)
        return rc;
    if ((s->dset = H5Dopen2(s->file, TEXTS_PATH, H5P_DEFAULT)) < 0 ||
        (ftype = H5Dget_type(s->dset)) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot open table %s", name, TEXTS_PATH);
        goto out;
    }
    int compound = H5Tget_class(ftype) == H5T_COMPOUND;
    int rows = compound && H5Tget_member_index(ftype, "text") >= 0 &&
               H5Tget_member_index(ftype, "hash") >= 0 && H5Tget_member_index(ftype, "kind") >= 0;
    s->store = !rows && compound && H5Tget_member_index(ftype, "offset") >= 0 &&
               H5Tget_member_index(ftype, "length") >= 0 && H5Tget_member_index(ftype, "hash") >= 0;
    H5Eclear2(H5E_DEFAULT);
    if (!rows && !s->store)
        rc = bz_err_set(err, BZ_EIO, "%s: %s holds neither a game's texts nor a texts index", name,
                        TEXTS_PATH);
    else if (s->store)
        rc = open_bytes(s->file, name, &s->bytes, &s->n_bytes, err);
    s->shard = (long)i;
out:
    bz_out_h5_close(ftype);
    if (rc)
        source_close(s);
    return rc;
}

/* The runs of the games each source owns, sorted by game id. */
static int find_runs(struct texts_merge *tm, bz_out_owner_fn owner, const void *ctx,
                     struct bz_err *err)
{
    int rc = BZ_OK;
    int64_t *ids = NULL;
    struct source s = {-1, 0, H5I_INVALID_HID, H5I_INVALID_HID, H5I_INVALID_HID, 0, 0};
    for (size_t i = 0; i < tm->n_shards && !rc; i++) {
        hid_t file = H5I_INVALID_HID;
        size_t n = 0;
        if ((rc = bz_out_h5_open_ro(tm->shards[i], &file, err)))
            break;
        htri_t has = H5Lexists(file, TEXTS_PATH, H5P_DEFAULT);
        bz_out_h5_close(file);
        if (has <= 0)
            continue;
        if (!(rc = source_open(tm, i, &s, err)))
            rc = bz_out_h5_read_game_ids(s.dset, &ids, &n, tm->shards[i], TEXTS_PATH, err);
        source_close(&s);
        for (size_t r = 0; !rc && r < n;) {
            size_t e = r + 1;
            while (e < n && ids[e] == ids[r])
                e++;
            if (owner(ctx, ids[r]) == (long)i && push_run(tm, (struct run){ids[r], i, r, e - r}))
                rc = bz_err_set(err, BZ_ENOMEM, "%s: no memory", tm->out_name);
            r = e;
        }
        free(ids);
        ids = NULL;
    }
    if (!rc && tm->n_runs)
        qsort(tm->runs, tm->n_runs, sizeof *tm->runs, cmp_run);
    return rc;
}

/* Source i, from the few kept open (least recently used closed first). */
static int source_get(struct texts_merge *tm, size_t i, struct source **out, struct bz_err *err)
{
    struct source *slot = &tm->open[0];
    for (size_t k = 0; k < OPEN_SHARDS; k++) {
        struct source *o = &tm->open[k];
        if (o->shard == (long)i) {
            o->used = ++tm->tick;
            *out = o;
            return BZ_OK;
        }
        if (o->shard < 0 || o->used < slot->used)
            slot = o;
        if (o->shard < 0)
            break;
    }
    int rc = source_open(tm, i, slot, err);
    if (rc)
        return rc;
    slot->used = ++tm->tick;
    *out = slot;
    return BZ_OK;
}

/* Keep a text at its first use: its index row and its bytes; hex is the
 * hash the source names it by (32 hex digits, not terminated). */
static int keep_text(struct texts_merge *tm, const struct run *r, const char *hex, const char *kind,
                     size_t kind_len, const char *text, size_t len, struct bz_err *err)
{
    unsigned char key[16];
    char hash[HASH_HEX + 1], again[BZ_LLM_TEXT_HASH_HEX];
    memcpy(hash, hex, HASH_HEX);
    hash[HASH_HEX] = '\0';
    if (parse_hash(hash, key))
        return bz_err_set(err, BZ_EIO, "%s: %s (game %lld): hash \"%s\" is not 32 hex digits",
                          tm->shards[r->shard], TEXTS_PATH, (long long)r->game_id, hash);
    int added = seen_add(&tm->seen, key);
    if (added < 0)
        return bz_err_set(err, BZ_ENOMEM, "%s: no memory for the texts' hashes", tm->out_name);
    if (!added)
        return BZ_OK;
    bz_llm_text_hash(text, again);
    if (strlen(text) != len || memcmp(again, hash, HASH_HEX) != 0)
        return bz_err_set(err, BZ_EIO, "%s: %s game %lld: the text under %s does not hash to it",
                          tm->shards[r->shard], TEXTS_PATH, (long long)r->game_id, hash);
    struct index_row ir = {
        .game_id = r->game_id, .offset = app_size(&tm->bytes), .length = (uint64_t)len};
    memcpy(ir.hash, hash, HASH_HEX);
    /* NUL-padded (ir is zeroed); a longer kind is cut */
    memcpy(ir.kind, kind, kind_len < sizeof ir.kind ? kind_len : sizeof ir.kind);
    if (app_put(&tm->index, &ir, 1) || app_put(&tm->bytes, text, len))
        return bz_out_h5_fail(err, BZ_EIO, "%s: cannot write %s", tm->out_name, TEXTS_PATH);
    return BZ_OK;
}

/* A text of one game not seen before it: to be kept, in (kind, text) order. */
struct cand {
    const char *hash; /* 32 hex digits, not terminated */
    const char *kind, *text;
    size_t kind_len, len;
    char *owned; /* text read from a store */
};

/* Order of a game's new texts: by kind, then by text, so that similar texts
 * (a phase's prompts) sit side by side for deflate; reproducible, unlike the
 * order the game's calls completed in. The hash breaks ties (one text in
 * two rows of a game). */
static int cmp_cand(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    size_t n = x->kind_len < y->kind_len ? x->kind_len : y->kind_len;
    int c = memcmp(x->kind, y->kind, n);
    if (c || x->kind_len != y->kind_len)
        return c ? c : (x->kind_len > y->kind_len) - (x->kind_len < y->kind_len);
    n = x->len < y->len ? x->len : y->len;
    c = memcmp(x->text, y->text, n);
    if (c || x->len != y->len)
        return c ? c : (x->len > y->len) - (x->len < y->len);
    return memcmp(x->hash, y->hash, HASH_HEX);
}

/* Whether hex (32 characters) names a text seen before; -1: not a hash. */
static int cand_seen(const struct texts_merge *tm, const char *hex)
{
    unsigned char key[16];
    char hash[HASH_HEX + 1];
    memcpy(hash, hex, HASH_HEX);
    hash[HASH_HEX] = '\0';
    return parse_hash(hash, key) ? -1 : seen_has(&tm->seen, key);
}

/* A store's entry: its text read from the source's bytes. */
static int read_entry(struct texts_merge *tm, const struct run *r, const struct source *s,
                      const struct index_row *e, struct cand *c, struct bz_err *err)
{
    const char *name = tm->shards[r->shard];
    if (e->length > TEXT_MAX_BYTES || e->offset > s->n_bytes || e->length > s->n_bytes - e->offset)
        return bz_err_set(err, BZ_EIO, "%s: %s: text %.32s at %llu, %llu bytes, lies outside %s",
                          name, TEXTS_PATH, e->hash, (unsigned long long)e->offset,
                          (unsigned long long)e->length, BZ_OUT_TEXT_BYTES_PATH);
    size_t len = (size_t)e->length;
    if (!(c->owned = malloc(len + 1)))
        return bz_err_set(err, BZ_ENOMEM, "%s: no memory for a text of %zu bytes", tm->out_name,
                          len);
    int rc = BZ_OK;
    hsize_t off = e->offset, count = len;
    hid_t fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
    if (len && ((fspace = H5Dget_space(s->bytes)) < 0 ||
                (mspace = H5Screate_simple(1, &count, NULL)) < 0 ||
                H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &off, NULL, &count, NULL) < 0 ||
                H5Dread(s->bytes, H5T_NATIVE_UCHAR, mspace, fspace, H5P_DEFAULT, c->owned) < 0))
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: %s: cannot read text %.32s", name,
                            BZ_OUT_TEXT_BYTES_PATH, e->hash);
    bz_out_h5_close(mspace);
    bz_out_h5_close(fspace);
    c->owned[len] = '\0';
    *c = (struct cand){e->hash, e->kind, c->owned, strnlen(e->kind, sizeof e->kind), len, c->owned};
    return rc;
}

/* Row k of a game's rows as a candidate: 1; 0 when seen before the game;
 * minus an error code. */
static int make_cand(struct texts_merge *tm, const struct run *r, const struct source *s,
                     const unsigned char *rows, hsize_t k, struct cand *c, struct bz_err *err)
{
    const char *hash;
    int64_t game;
    memset(c, 0, sizeof *c);
    if (s->store) {
        const struct index_row *e = (const struct index_row *)rows + k;
        hash = e->hash;
        game = e->game_id;
    } else {
        const struct bz_llm_texts_row *row = (const struct bz_llm_texts_row *)rows + k;
        hash = row->hash && strlen(row->hash) == HASH_HEX ? row->hash : NULL;
        game = row->game_id;
    }
    int seen = hash && game == r->game_id ? cand_seen(tm, hash) : -1;
    if (seen < 0)
        return -bz_err_set(err, BZ_EIO, "%s: %s (game %lld, its row %llu): not a 32-hex hash",
                           tm->shards[r->shard], TEXTS_PATH, (long long)r->game_id,
                           (unsigned long long)k);
    if (seen)
        return 0;
    if (s->store) {
        int rc = read_entry(tm, r, s, (const struct index_row *)rows + k, c, err);
        return rc ? -rc : 1;
    }
    const struct bz_llm_texts_row *row = (const struct bz_llm_texts_row *)rows + k;
    const char *kind = row->kind ? row->kind : "", *text = row->text ? row->text : "";
    *c = (struct cand){row->hash, kind, text, strlen(kind), strlen(text), NULL};
    return 1;
}

/* Read run r's rows into rows (r->len of them, of the source's row type). */
static int read_run(struct texts_merge *tm, const struct run *r, const struct source *s,
                    unsigned char *rows, struct bz_err *err)
{
    int rc = BZ_OK;
    hid_t fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
    if ((fspace = H5Dget_space(s->dset)) < 0 || (mspace = H5Screate_simple(1, &r->len, NULL)) < 0 ||
        H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &r->start, NULL, &r->len, NULL) < 0 ||
        H5Dread(s->dset, s->store ? tm->entry_type : tm->row_type, mspace, fspace, H5P_DEFAULT,
                rows) < 0)
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot read %s of game %lld", tm->shards[r->shard],
                            TEXTS_PATH, (long long)r->game_id);
    bz_out_h5_close(mspace);
    bz_out_h5_close(fspace);
    return rc;
}

/* One game's rows (its runs, all of one source: the owner): read, the
 * texts not seen before the game kept in (kind, text) order, freed. Within
 * a game the texts are distinct, so which of them are new does not depend
 * on that order: a store source's entries of the game (the texts it used
 * first there) give what its full rows would. */
static int take_game(struct texts_merge *tm, const struct run *runs, size_t n_runs,
                     struct bz_err *err)
{
    int rc;
    struct source *s;
    hsize_t total = 0, at = 0;
    size_t n = 0;
    if ((rc = source_get(tm, runs[0].shard, &s, err)))
        return rc;
    for (size_t k = 0; k < n_runs; k++)
        total += runs[k].len;
    size_t size = s->store ? sizeof(struct index_row) : sizeof(struct bz_llm_texts_row);
    unsigned char *rows = calloc((size_t)total, size);
    struct cand *c = calloc((size_t)total, sizeof *c);
    if (!rows || !c) {
        rc = bz_err_set(err, BZ_ENOMEM, "%s: no memory for game %lld's texts", tm->out_name,
                        (long long)runs[0].game_id);
        goto out;
    }
    for (size_t k = 0; k < n_runs && !rc; k++) {
        rc = read_run(tm, &runs[k], s, rows + (size_t)at * size, err);
        at += runs[k].len;
    }
    for (hsize_t k = 0; k < total && !rc; k++) {
        int got = make_cand(tm, &runs[0], s, rows, k, &c[n], err);
        if (got < 0)
            rc = -got;
        else if (got > 0)
            n++;
        else
            free(c[n].owned);
    }
    if (!rc && n)
        qsort(c, n, sizeof *c, cmp_cand);
    for (size_t k = 0; k < n && !rc; k++)
        rc = keep_text(tm, &runs[0], c[k].hash, c[k].kind, c[k].kind_len, c[k].text, c[k].len, err);
out:
    for (size_t k = 0; c && k < total; k++)
        free(c[k].owned);
    if (rows && !s->store) {
        /* every string read (calloc'd rows: NULL where nothing was) */
        hid_t space = H5Screate_simple(1, &total, NULL);
        if (space >= 0)
            H5Dvlen_reclaim(tm->row_type, space, H5P_DEFAULT, rows);
        bz_out_h5_close(space);
    }
    free(c);
    free(rows);
    return rc;
}

static int attr_doc(hid_t obj, const char *text)
{
    hid_t type = bz_out_h5_str_type(), space = H5Screate(H5S_SCALAR), attr = H5I_INVALID_HID;
    int rc = type < 0 || space < 0 ||
                     (attr = H5Acreate2(obj, "doc", type, space, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
                     H5Awrite(attr, type, &text) < 0
                 ? -1
                 : 0;
    bz_out_h5_close(attr);
    bz_out_h5_close(space);
    bz_out_h5_close(type);
    return rc;
}

/* The two output datasets, empty, and their write buffers. */
static int create_store(struct texts_merge *tm, hid_t out, hsize_t max_rows, struct bz_err *err)
{
    int rc = BZ_OK;
    hid_t ftype = index_type(1), dcpl = H5I_INVALID_HID, space = H5I_INVALID_HID;
    hsize_t zero = 0, unlimited = H5S_UNLIMITED, chunk = TEXT_CHUNK_BYTES;
    tm->index.mtype = index_type(0);
    tm->index.elem = sizeof(struct index_row);
    tm->index.chunk = bz_out_h5_chunk_rows(H5Tget_size(ftype), INDEX_CHUNK_BYTES, max_rows);
    tm->bytes.mtype = H5T_NATIVE_UCHAR;
    tm->bytes.elem = 1;
    tm->bytes.chunk = chunk;
    if (ftype < 0 || tm->index.mtype < 0 ||
        (tm->index.dset = bz_out_h5_create_table(out, TEXTS_PATH, ftype, 0, tm->index.chunk,
                                                 INDEX_DEFLATE, H5I_INVALID_HID, NULL)) < 0 ||
        bz_out_h5_write_col_attrs(tm->index.dset, &bz_llm_text_index_table) < 0 ||
        (space = H5Screate_simple(1, &zero, &unlimited)) < 0 ||
        (dcpl = H5Pcreate(H5P_DATASET_CREATE)) < 0 || H5Pset_chunk(dcpl, 1, &chunk) < 0 ||
        H5Pset_deflate(dcpl, TEXT_DEFLATE) < 0 || H5Pset_fletcher32(dcpl) < 0 ||
        (tm->bytes.dset = H5Dcreate2(out, BZ_OUT_TEXT_BYTES_PATH, H5T_STD_U8LE, space, H5P_DEFAULT,
                                     dcpl, H5P_DEFAULT)) < 0 ||
        attr_doc(tm->bytes.dset, "the texts of /llm_texts back to back (UTF-8, no separators): "
                                 "a text is bytes [offset, offset + length)") < 0)
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot create the texts' store", tm->out_name);
    else if (!(tm->index.buf = malloc((size_t)tm->index.chunk * tm->index.elem)) ||
             !(tm->bytes.buf = malloc((size_t)tm->bytes.chunk)))
        rc = bz_err_set(err, BZ_ENOMEM, "%s: no memory for the texts' store", tm->out_name);
    bz_out_h5_close(dcpl);
    bz_out_h5_close(space);
    bz_out_h5_close(ftype);
    return rc;
}

/* The length of dataset path in the open file out. */
static int out_length(hid_t out, const char *out_name, const char *path, unsigned long long *n,
                      struct bz_err *err)
{
    hid_t dset = H5Dopen2(out, path, H5P_DEFAULT), space = H5I_INVALID_HID;
    hsize_t dims = 0;
    int rc = BZ_OK;
    if (dset < 0 || (space = H5Dget_space(dset)) < 0 ||
        H5Sget_simple_extent_dims(space, &dims, NULL) != 1)
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot read the size of %s", out_name, path);
    *n = (unsigned long long)dims;
    bz_out_h5_close(space);
    bz_out_h5_close(dset);
    return rc;
}

int bz_out_texts_merge(hid_t out, const char *out_name, const char *path, const char *const *shards,
                       size_t n_shards, bz_out_owner_fn owner, const void *ctx,
                       unsigned long long *n_rows, struct bz_err *err)
{
    int rc = BZ_OK;
    struct texts_merge tm = {.out_name = out_name, .shards = shards, .n_shards = n_shards};
    tm.index.dset = tm.bytes.dset = tm.index.mtype = H5I_INVALID_HID;
    for (size_t k = 0; k < OPEN_SHARDS; k++)
        tm.open[k] =
            (struct source){-1, 0, H5I_INVALID_HID, H5I_INVALID_HID, H5I_INVALID_HID, 0, 0};
    *n_rows = 0;
    /* both paths name the one store: the first call builds it (a results
     * file among the sources has both) */
    htri_t built = H5Lexists(out, TEXTS_PATH, H5P_DEFAULT);
    if (built < 0)
        return bz_out_h5_fail(err, BZ_EIO, "%s: cannot look for %s", out_name, TEXTS_PATH);
    if (built)
        return out_length(out, out_name, path, n_rows, err);
    if ((tm.row_type = bz_out_h5_mem_type(&bz_llm_texts_table)) < 0 ||
        (tm.entry_type = index_type(0)) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot build the texts' row types", out_name);
        goto out;
    }
    if ((rc = find_runs(&tm, owner, ctx, err)))
        goto out;
    hsize_t total = 0;
    for (size_t k = 0; k < tm.n_runs; k++)
        total += tm.runs[k].len; /* more than the distinct texts: sizes the index chunk */
    if ((rc = create_store(&tm, out, total, err)))
        goto out;
    for (size_t k = 0, e; k < tm.n_runs && !rc; k = e) {
        for (e = k + 1; e < tm.n_runs && tm.runs[e].game_id == tm.runs[k].game_id;)
            e++;
        rc = take_game(&tm, tm.runs + k, e - k, err);
    }
    if (rc)
        goto out;
    if (app_flush(&tm.index) || app_flush(&tm.bytes) || H5Dclose(tm.index.dset) < 0 ||
        H5Dclose(tm.bytes.dset) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot write %s", out_name, TEXTS_PATH);
        tm.index.dset = tm.bytes.dset = H5I_INVALID_HID;
        goto out;
    }
    tm.index.dset = tm.bytes.dset = H5I_INVALID_HID;
    *n_rows =
        (unsigned long long)(strcmp(path, TEXTS_PATH) == 0 ? tm.index.written : tm.bytes.written);
out:
    for (size_t k = 0; k < OPEN_SHARDS; k++)
        source_close(&tm.open[k]);
    bz_out_h5_close(tm.index.dset);
    bz_out_h5_close(tm.bytes.dset);
    bz_out_h5_close(tm.index.mtype);
    bz_out_h5_close(tm.entry_type);
    bz_out_h5_close(tm.row_type);
    free(tm.index.buf);
    free(tm.bytes.buf);
    free(tm.seen.keys);
    free(tm.runs);
    return rc;
}

/* ---- reading the store ------------------------------------------------------ */

/* Calls fn on every index row of the open file's /llm_texts, in order, read
 * WINDOW_ROWS at a time; fn returns non-zero to stop with that code. */
static int each_index_row(hid_t file, const char *name,
                          int (*fn)(void *ctx, const struct index_row *row, struct bz_err *err),
                          void *ctx, struct bz_err *err)
{
    int rc = BZ_OK;
    hid_t dset = H5I_INVALID_HID, fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
    hid_t mtype = index_type(0);
    hsize_t n = 0, cap = WINDOW_ROWS;
    struct index_row *win = malloc(WINDOW_ROWS * sizeof *win);
    if (!win || mtype < 0) {
        rc = bz_err_set(err, BZ_ENOMEM, "%s: no memory", name);
        goto out;
    }
    if ((dset = H5Dopen2(file, TEXTS_PATH, H5P_DEFAULT)) < 0 || (fspace = H5Dget_space(dset)) < 0 ||
        H5Sget_simple_extent_ndims(fspace) != 1 ||
        H5Sget_simple_extent_dims(fspace, &n, NULL) < 0 ||
        (mspace = H5Screate_simple(1, &cap, NULL)) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot open %s", name, TEXTS_PATH);
        goto out;
    }
    if (n > ((hsize_t)1 << 32)) { /* a crafted dataspace may claim any size */
        rc = bz_err_set(err, BZ_EIO, "%s: %s claims %llu rows, more than bazaar reads", name,
                        TEXTS_PATH, (unsigned long long)n);
        goto out;
    }
    for (hsize_t start = 0; start < n && !rc; start += cap) {
        hsize_t count = n - start < cap ? n - start : cap, zero = 0;
        if (H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &start, NULL, &count, NULL) < 0 ||
            H5Sselect_hyperslab(mspace, H5S_SELECT_SET, &zero, NULL, &count, NULL) < 0 ||
            H5Dread(dset, mtype, mspace, fspace, H5P_DEFAULT, win) < 0) {
            rc = bz_out_h5_fail(err, BZ_EIO, "%s: %s rows %llu..%llu unreadable", name, TEXTS_PATH,
                                (unsigned long long)start, (unsigned long long)(start + count));
            break;
        }
        for (hsize_t k = 0; k < count && !rc; k++)
            rc = fn(ctx, &win[k], err);
    }
out:
    free(win);
    bz_out_h5_close(mspace);
    bz_out_h5_close(fspace);
    bz_out_h5_close(dset);
    bz_out_h5_close(mtype);
    return rc;
}

/* Number of bytes in the open file's /llm_text_bytes, and the dataset. */
static int open_bytes(hid_t file, const char *name, hid_t *dset, hsize_t *n, struct bz_err *err)
{
    hid_t space = H5I_INVALID_HID;
    int rc = BZ_OK;
    *n = 0;
    if ((*dset = H5Dopen2(file, BZ_OUT_TEXT_BYTES_PATH, H5P_DEFAULT)) < 0 ||
        (space = H5Dget_space(*dset)) < 0 || H5Sget_simple_extent_ndims(space) != 1 ||
        H5Sget_simple_extent_dims(space, n, NULL) < 0)
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: has %s but no readable %s", name, TEXTS_PATH,
                            BZ_OUT_TEXT_BYTES_PATH);
    bz_out_h5_close(space);
    return rc;
}

struct check {
    const char *name;
    uint64_t next; /* where the next text must start */
    uint64_t row;
};

static int check_row(void *ctx, const struct index_row *row, struct bz_err *err)
{
    struct check *c = ctx;
    unsigned char key[16];
    char hash[HASH_HEX + 1];
    memcpy(hash, row->hash, HASH_HEX);
    hash[HASH_HEX] = '\0';
    if (row->offset != c->next || row->length > TEXT_MAX_BYTES || parse_hash(hash, key))
        return bz_err_set(err, BZ_EIO,
                          "%s: %s row %llu: offset %llu, length %llu, hash \"%s\" (expected a "
                          "32-hex hash at offset %llu)",
                          c->name, TEXTS_PATH, (unsigned long long)c->row,
                          (unsigned long long)row->offset, (unsigned long long)row->length, hash,
                          (unsigned long long)c->next);
    c->next += row->length;
    c->row++;
    return BZ_OK;
}

int bz_out_texts_check(hid_t file, const char *file_name, struct bz_err *err)
{
    htri_t has = H5Lexists(file, TEXTS_PATH, H5P_DEFAULT);
    if (has < 0)
        return bz_out_h5_fail(err, BZ_EIO, "%s: cannot look for %s", file_name, TEXTS_PATH);
    if (!has)
        return BZ_OK;
    struct check c = {.name = file_name};
    hid_t dset = H5I_INVALID_HID;
    hsize_t n;
    int rc = each_index_row(file, file_name, check_row, &c, err);
    if (!rc)
        rc = open_bytes(file, file_name, &dset, &n, err);
    if (!rc && n != c.next)
        rc = bz_err_set(err, BZ_EIO, "%s: %s holds %llu bytes, the index names %llu", file_name,
                        BZ_OUT_TEXT_BYTES_PATH, (unsigned long long)n, (unsigned long long)c.next);
    if (!rc)
        rc = bz_out_h5_check_readable(dset, n, file_name, BZ_OUT_TEXT_BYTES_PATH, err);
    bz_out_h5_close(dset);
    return rc;
}

/* A hash asked for, and where its text is once found. */
struct wanted {
    const char *hash;
    size_t i;
    int found;
    uint64_t offset, length;
};

struct lookup {
    struct wanted *w;
    size_t n;
};

static int cmp_wanted(const void *a, const void *b)
{
    return strcmp(((const struct wanted *)a)->hash, ((const struct wanted *)b)->hash);
}

static int cmp_wanted_offset(const void *a, const void *b)
{
    const struct wanted *x = a, *y = b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

static int lookup_row(void *ctx, const struct index_row *row, struct bz_err *err)
{
    (void)err;
    struct lookup *l = ctx;
    char hash[HASH_HEX + 1];
    memcpy(hash, row->hash, HASH_HEX);
    hash[HASH_HEX] = '\0';
    struct wanted key = {.hash = hash};
    struct wanted *w = bsearch(&key, l->w, l->n, sizeof *l->w, cmp_wanted);
    if (!w)
        return BZ_OK;
    while (w > l->w && strcmp(w[-1].hash, hash) == 0)
        w--;
    for (; w < l->w + l->n && strcmp(w->hash, hash) == 0; w++)
        if (!w->found) {
            w->found = 1;
            w->offset = row->offset;
            w->length = row->length;
        }
    return BZ_OK;
}

/* Read the texts found from /llm_text_bytes, in offset order. */
static int read_found(hid_t file, const char *path, struct lookup *l, char **texts,
                      struct bz_err *err)
{
    hid_t dset = H5I_INVALID_HID, fspace = H5I_INVALID_HID;
    hsize_t n;
    int rc = open_bytes(file, path, &dset, &n, err);
    if (!rc && (fspace = H5Dget_space(dset)) < 0)
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: %s: dataspace", path, BZ_OUT_TEXT_BYTES_PATH);
    qsort(l->w, l->n, sizeof *l->w, cmp_wanted_offset);
    for (size_t k = 0; k < l->n && !rc; k++) {
        struct wanted *w = &l->w[k];
        if (!w->found)
            continue;
        if (w->length > TEXT_MAX_BYTES || w->offset > n || w->length > n - w->offset) {
            rc = bz_err_set(err, BZ_EIO, "%s: %s: text %s at %llu, %llu bytes, lies outside %s",
                            path, TEXTS_PATH, w->hash, (unsigned long long)w->offset,
                            (unsigned long long)w->length, BZ_OUT_TEXT_BYTES_PATH);
            break;
        }
        char *t = malloc((size_t)w->length + 1);
        if (!t) {
            rc = bz_err_set(err, BZ_ENOMEM, "%s: no memory for a text", path);
            break;
        }
        hsize_t off = w->offset, len = w->length;
        hid_t mspace = len ? H5Screate_simple(1, &len, NULL) : H5I_INVALID_HID;
        if (len && (mspace < 0 ||
                    H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &off, NULL, &len, NULL) < 0 ||
                    H5Dread(dset, H5T_NATIVE_UCHAR, mspace, fspace, H5P_DEFAULT, t) < 0)) {
            rc = bz_out_h5_fail(err, BZ_EIO, "%s: %s: cannot read text %s", path,
                                BZ_OUT_TEXT_BYTES_PATH, w->hash);
            free(t);
            t = NULL;
        }
        bz_out_h5_close(mspace);
        if (t) {
            t[len] = '\0';
            texts[w->i] = t;
        }
    }
    bz_out_h5_close(fspace);
    bz_out_h5_close(dset);
    return rc;
}

/* The earlier layout (and a shard's): rows with the text, any game's. */
static int lookup_rows(const char *path, const char *const *hashes, size_t n, char **texts,
                       struct bz_err *err)
{
    struct bz_records rec;
    bz_records_init(&rec);
    int rc = bz_out_read_table(path, &bz_llm_texts_table, &rec, err);
    const struct bz_rowbuf *rb = rc ? NULL : bz_records_find(&rec, &bz_llm_texts_table);
    for (size_t i = 0; rb && i < n && !rc; i++) {
        if (!hashes[i] || !hashes[i][0])
            continue;
        for (size_t r = 0; r < rb->n_rows; r++) {
            const struct bz_llm_texts_row *row =
                (const void *)(rb->data + r * sizeof(struct bz_llm_texts_row));
            if (strcmp(row->hash, hashes[i]) != 0)
                continue;
            size_t len = strlen(row->text);
            if (!(texts[i] = malloc(len + 1)))
                rc = bz_err_set(err, BZ_ENOMEM, "%s: no memory for a text", path);
            else
                memcpy(texts[i], row->text, len + 1);
            break;
        }
    }
    bz_records_cleanup(&rec);
    return rc;
}

int bz_out_texts_lookup(const char *path, const char *const *hashes, size_t n, char **texts,
                        struct bz_err *err)
{
    int rc;
    hid_t file = H5I_INVALID_HID, dset = H5I_INVALID_HID, ftype = H5I_INVALID_HID;
    struct lookup l = {0};
    for (size_t i = 0; i < n; i++)
        texts[i] = NULL;
    bz_out_h5_quiet();
    if ((rc = bz_out_h5_open_ro(path, &file, err)))
        return rc;
    htri_t has = H5Lexists(file, TEXTS_PATH, H5P_DEFAULT);
    if (has <= 0) {
        if (has < 0)
            rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot look for %s", path, TEXTS_PATH);
        goto out;
    }
    if ((dset = H5Dopen2(file, TEXTS_PATH, H5P_DEFAULT)) < 0 || (ftype = H5Dget_type(dset)) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot open %s", path, TEXTS_PATH);
        goto out;
    }
    if (H5Tget_class(ftype) == H5T_COMPOUND && H5Tget_member_index(ftype, "text") >= 0) {
        bz_out_h5_close(file);
        file = H5I_INVALID_HID;
        rc = lookup_rows(path, hashes, n, texts, err);
        goto out;
    }
    if (n && !(l.w = calloc(n, sizeof *l.w))) {
        rc = bz_err_set(err, BZ_ENOMEM, "%s: no memory", path);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (hashes[i] && hashes[i][0])
            l.w[l.n++] = (struct wanted){.hash = hashes[i], .i = i};
    if (l.n)
        qsort(l.w, l.n, sizeof *l.w, cmp_wanted);
    if (l.n && !(rc = each_index_row(file, path, lookup_row, &l, err)))
        rc = read_found(file, path, &l, texts, err);
out:
    if (rc)
        for (size_t i = 0; i < n; i++) {
            free(texts[i]);
            texts[i] = NULL;
        }
    free(l.w);
    bz_out_h5_close(ftype);
    bz_out_h5_close(dset);
    bz_out_h5_close(file);
    return rc;
}

struct each {
    int (*fn)(void *ctx, const struct bz_out_text_entry *e, struct bz_err *err);
    void *ctx;
};

static int each_row(void *ctx, const struct index_row *row, struct bz_err *err)
{
    struct each *e = ctx;
    struct bz_out_text_entry x = {
        .game_id = row->game_id, .offset = row->offset, .length = row->length};
    memcpy(x.hash, row->hash, HASH_HEX);
    memcpy(x.kind, row->kind, BZ_LLM_TEXT_KIND_MAX);
    return e->fn(e->ctx, &x, err);
}

int bz_out_texts_each(const char *path,
                      int (*fn)(void *ctx, const struct bz_out_text_entry *e, struct bz_err *err),
                      void *ctx, struct bz_err *err)
{
    hid_t file = H5I_INVALID_HID, dset = H5I_INVALID_HID, ftype = H5I_INVALID_HID;
    struct each e = {fn, ctx};
    bz_out_h5_quiet();
    int rc = bz_out_h5_open_ro(path, &file, err);
    if (rc)
        return rc;
    htri_t has = H5Lexists(file, TEXTS_PATH, H5P_DEFAULT);
    if (has < 0)
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot look for %s", path, TEXTS_PATH);
    else if (has && ((dset = H5Dopen2(file, TEXTS_PATH, H5P_DEFAULT)) < 0 ||
                     (ftype = H5Dget_type(dset)) < 0))
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot open %s", path, TEXTS_PATH);
    else if (has && H5Tget_member_index(ftype, "text") >= 0)
        rc = bz_err_set(err, BZ_EINVAL, "%s: %s holds per-game rows (a shard), not the index", path,
                        TEXTS_PATH);
    else if (has)
        rc = each_index_row(file, path, each_row, &e, err);
    bz_out_h5_close(ftype);
    bz_out_h5_close(dset);
    bz_out_h5_close(file);
    return rc;
}

/* test_out_texts: the results file's transcript store built by the merge
 * from the shards' per-game /llm_texts rows: each distinct text once, in
 * first-use order (games by id), the same however games were spread over
 * shards and in whatever order they finished (a game's texts by kind, then
 * text); a game committed twice gives
 * its texts from the winning shard only; a results file merged again with
 * new shards (resume) gives an uninterrupted run's store; texts larger than
 * a chunk; lookups by hash; hashes that do not match their text are
 * refused. */
#include <inttypes.h>
#include <setjmp.h> /* before cmocka.h */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "bazaar/llm_call.h"
#include "bazaar/out.h"
#include "bazaar/out_texts.h"
#include "bazaar/records.h"
#include "bazaar/tables.h"
#include "out_internal.h"
#define TMP_PATH_PREFIX "texts"
#include "tmp_path.h"

#define N_GAMES 40
#define BIG_BYTES (700 * 1024) /* more than two chunks of /llm_text_bytes */

static char *big_text(void)
{
    char *t = malloc(BIG_BYTES + 1);
    assert_non_null(t);
    for (size_t i = 0; i < BIG_BYTES; i++)
        t[i] = (char)('a' + (i * 7 + i / 1000) % 26);
    t[BIG_BYTES] = '\0';
    return t;
}

static char *big; /* shared by games 5 and 30 */

static void add_text(struct bz_records *rec, int64_t id, const char *kind, const char *text,
                     int bad_hash)
{
    struct bz_llm_texts_row *r = bz_records_add(rec, &bz_llm_texts_table);
    assert_non_null(r);
    char hex[BZ_LLM_TEXT_HASH_HEX];
    bz_llm_text_hash(text, hex);
    if (bad_hash)
        hex[0] = hex[0] == '0' ? '1' : '0';
    r->game_id = id;
    r->hash = bz_records_strdup(rec, hex);
    r->kind = bz_records_strdup(rec, kind);
    r->text = bz_records_strdup(rec, text);
}

/* Game id's texts in its order of first use: the run's provenance (shared
 * by every game), a system prompt shared by a quarter of the games, prompts
 * of its own, replies shared with other games; variant changes its own
 * texts (a replayed game that sampled differently). */
static void make_game(struct bz_records *rec, int64_t id, int variant, int bad_hash)
{
    char text[256], kind[80];
    bz_records_reset(rec);
    add_text(rec, id, "registry", "{\"models\": []}", 0);
    add_text(rec, id, "template:system.txt", "You are company {{agent}}.", 0);
    snprintf(text, sizeof text, "You are company %d of a market. Ünïcode — ok.", (int)(id % 4));
    add_text(rec, id, "system", text, 0);
    for (int t = 0; t < 3; t++) {
        snprintf(text, sizeof text, "game %" PRId64 " turn %d: what do you sell? v%d", id, t,
                 variant);
        add_text(rec, id, "prompt", text, bad_hash && t == 2);
        snprintf(text, sizeof text, "{\"amount\": %d}", (int)((id + t) % 7));
        add_text(rec, id, "reply", text, 0);
    }
    if (id == 5 || id == 30)
        add_text(rec, id, "reply", big, 0);
    if (id == 7) { /* a kind longer than the column: cut, text intact */
        memset(kind, 'k', sizeof kind - 1);
        kind[sizeof kind - 1] = '\0';
        add_text(rec, id, kind, "", 0);
    }
    struct bz_games_row *g = bz_records_add(rec, &bz_games_table);
    assert_non_null(g);
    g->game_id = id;
    g->game = "fake";
    g->status = "ok";
}

static void write_shard(const char *path, const int64_t *ids, size_t n, int variant, int bad)
{
    struct bz_err err = {0};
    struct bz_shard *s = NULL;
    struct bz_records rec;
    bz_records_init(&rec);
    if (bz_shard_create(path, &s, &err))
        fail_msg("%s", err.msg);
    for (size_t i = 0; i < n; i++) {
        make_game(&rec, ids[i], variant, bad && ids[i] == 3);
        if (bz_shard_append(s, &rec, &err))
            fail_msg("%s", err.msg);
    }
    assert_int_equal(bz_shard_close(s, &err), BZ_OK);
    bz_records_cleanup(&rec);
}

/* The store as a list of entries. */
struct entries {
    struct bz_out_text_entry *e;
    size_t n, cap;
};

static int collect(void *ctx, const struct bz_out_text_entry *e, struct bz_err *err)
{
    (void)err;
    struct entries *l = ctx;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->e = realloc(l->e, l->cap * sizeof *l->e);
        assert_non_null(l->e);
    }
    l->e[l->n++] = *e;
    return 0;
}

static void read_store(const char *path, struct entries *l)
{
    struct bz_err err = {0};
    memset(l, 0, sizeof *l);
    if (bz_out_texts_each(path, collect, l, &err))
        fail_msg("%s", err.msg);
}

/* Every text of the entries, looked up by hash, in entry order. */
static char **texts_of(const char *path, const struct entries *l)
{
    const char **h = calloc(l->n + 1, sizeof *h);
    char **t = calloc(l->n + 1, sizeof *t);
    assert_true(h && t);
    for (size_t i = 0; i < l->n; i++)
        h[i] = l->e[i].hash;
    struct bz_err err = {0};
    if (bz_out_texts_lookup(path, h, l->n, t, &err))
        fail_msg("%s", err.msg);
    free(h);
    return t;
}

static void free_texts(char **t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(t[i]);
    free(t);
}

static int cmp_row(const void *a, const void *b)
{
    const struct bz_llm_texts_row *x = a, *y = b;
    int c = strcmp(x->kind, y->kind);
    c = c ? c : strcmp(x->text, y->text);
    return c ? c : strcmp(x->hash, y->hash);
}

/* What the store must hold: games in id order, a game's rows by kind then
 * text, each hash kept at its first use. */
static void expected(struct bz_records *want)
{
    struct bz_records rec;
    bz_records_init(&rec);
    bz_records_init(want);
    for (int64_t id = 0; id < N_GAMES; id++) {
        make_game(&rec, id, 0, 0);
        const struct bz_rowbuf *rb = bz_records_find(&rec, &bz_llm_texts_table);
        qsort(rb->data, rb->n_rows, sizeof(struct bz_llm_texts_row), cmp_row);
        for (size_t r = 0; r < rb->n_rows; r++) {
            const struct bz_llm_texts_row *x = (const void *)(rb->data + r * sizeof *x);
            const struct bz_rowbuf *w = bz_records_find(want, &bz_llm_texts_table);
            int dup = 0;
            for (size_t k = 0; w && k < w->n_rows && !dup; k++)
                dup = strcmp(((const struct bz_llm_texts_row *)w->data)[k].hash, x->hash) == 0;
            if (!dup)
                add_text(want, id, x->kind, x->text, 0);
        }
    }
    bz_records_cleanup(&rec);
}

static void merge_ok(const char *const *shards, size_t n, const char *out)
{
    struct bz_err err = {0};
    if (bz_merge(shards, n, out, NULL, &err))
        fail_msg("%s", err.msg);
}

static void texts_merge_should_store_each_text_once_in_first_use_order_on_any_sharding(void **st)
{
    (void)st;
    char one[512], a[512], b[512], c[512], out1[512], out3[512];
    tmp_path(one, sizeof one, "one.h5");
    tmp_path(a, sizeof a, "a.h5");
    tmp_path(b, sizeof b, "b.h5");
    tmp_path(c, sizeof c, "c.h5");
    tmp_path(out1, sizeof out1, "out1.h5");
    tmp_path(out3, sizeof out3, "out3.h5");
    int64_t all[N_GAMES];
    for (int i = 0; i < N_GAMES; i++)
        all[i] = i;
    write_shard(one, all, N_GAMES, 0, 0);
    /* three ranks: games dealt round-robin, finished in a scrambled order;
     * game 9 also replayed by a later shard with other texts (it loses) */
    int64_t sa[N_GAMES], sb[N_GAMES], sc[N_GAMES];
    size_t na = 0, nb = 0, nc = 0;
    for (int i = N_GAMES - 1; i >= 0; i--) {
        int64_t id = (i * 17) % N_GAMES;
        if (id % 3 == 0)
            sa[na++] = id;
        else if (id % 3 == 1)
            sb[nb++] = id;
        else
            sc[nc++] = id;
    }
    write_shard(a, sa, na, 0, 0);
    write_shard(b, sb, nb, 0, 0);
    int64_t again = 9;
    write_shard(c, sc, nc, 0, 0);
    char c2[512];
    tmp_path(c2, sizeof c2, "c2.h5");
    write_shard(c2, &again, 1, 1, 0);
    merge_ok((const char *const[]){one}, 1, out1);
    merge_ok((const char *const[]){a, b, c, c2}, 4, out3);

    /* byte for byte the same index on both */
    unsigned char *d1, *d3;
    size_t l1, l3, r1, r3;
    struct bz_err err = {0};
    assert_int_equal(bz_out_dump_table(out1, "/llm_texts", &d1, &l1, &r1, &err), BZ_OK);
    assert_int_equal(bz_out_dump_table(out3, "/llm_texts", &d3, &l3, &r3, &err), BZ_OK);
    assert_int_equal(r1, r3);
    assert_true(l1 == l3 && memcmp(d1, d3, l1) == 0);
    free(d1);
    free(d3);

    /* the expected texts, in first-use order, each once; offsets contiguous */
    struct bz_records want;
    expected(&want);
    const struct bz_rowbuf *w = bz_records_find(&want, &bz_llm_texts_table);
    const char *outs[] = {out1, out3};
    for (int o = 0; o < 2; o++) {
        struct entries l;
        read_store(outs[o], &l);
        assert_int_equal(l.n, w->n_rows);
        char **t = texts_of(outs[o], &l);
        uint64_t at = 0;
        for (size_t i = 0; i < l.n; i++) {
            const struct bz_llm_texts_row *x = (const void *)(w->data + i * sizeof *x);
            assert_string_equal(l.e[i].hash, x->hash);
            assert_int_equal(l.e[i].game_id, x->game_id);
            assert_true(strncmp(l.e[i].kind, x->kind, BZ_LLM_TEXT_KIND_MAX) == 0);
            assert_int_equal(l.e[i].offset, at);
            assert_int_equal(l.e[i].length, strlen(x->text));
            assert_non_null(t[i]);
            assert_string_equal(t[i], x->text);
            char hex[BZ_LLM_TEXT_HASH_HEX];
            bz_llm_text_hash(t[i], hex);
            assert_string_equal(hex, l.e[i].hash);
            at += l.e[i].length;
        }
        /* the shared system prompts: 4 of them for 40 games; one big text */
        size_t systems = 0, bigs = 0;
        for (size_t i = 0; i < l.n; i++) {
            systems += strcmp(l.e[i].kind, "system") == 0;
            bigs += l.e[i].length == BIG_BYTES;
        }
        assert_int_equal(systems, 4);
        assert_int_equal(bigs, 1);
        free_texts(t, l.n);
        free(l.e);
    }
    bz_records_cleanup(&want);
    /* the losing copy of game 9 left nothing */
    const char *h[] = {NULL};
    char hex[BZ_LLM_TEXT_HASH_HEX], *got[1];
    bz_llm_text_hash("game 9 turn 0: what do you sell? v1", hex);
    h[0] = hex;
    assert_int_equal(bz_out_texts_lookup(out3, h, 1, got, &err), BZ_OK);
    assert_null(got[0]);
    bz_llm_text_hash("game 9 turn 0: what do you sell? v0", hex);
    assert_int_equal(bz_out_texts_lookup(out3, h, 1, got, &err), BZ_OK);
    assert_non_null(got[0]);
    free(got[0]);
    const char *files[] = {one, a, b, c, c2, out1, out3};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        remove_tmp_file(files[i]);
}

static void texts_lookup_should_find_asked_hashes_in_any_order_and_skip_unknown(void **st)
{
    (void)st;
    char shard[512], out[512];
    tmp_path(shard, sizeof shard, "l.h5");
    tmp_path(out, sizeof out, "lout.h5");
    int64_t ids[] = {2, 1};
    write_shard(shard, ids, 2, 0, 0);
    merge_ok((const char *const[]){shard}, 1, out);
    char h1[BZ_LLM_TEXT_HASH_HEX], h2[BZ_LLM_TEXT_HASH_HEX], h3[BZ_LLM_TEXT_HASH_HEX];
    bz_llm_text_hash("game 2 turn 1: what do you sell? v0", h1);
    bz_llm_text_hash("{\"models\": []}", h2);
    bz_llm_text_hash("never stored", h3);
    const char *want[] = {h1, "", h2, h3, NULL, h1};
    char *got[6];
    struct bz_err err = {0};
    /* the results file, and the shard itself (per-game rows) */
    const char *files[] = {out, shard};
    for (int f = 0; f < 2; f++) {
        assert_int_equal(bz_out_texts_lookup(files[f], want, 6, got, &err), BZ_OK);
        assert_string_equal(got[0], "game 2 turn 1: what do you sell? v0");
        assert_null(got[1]);
        assert_string_equal(got[2], "{\"models\": []}");
        assert_null(got[3]);
        assert_null(got[4]);
        assert_string_equal(got[5], got[0]);
        for (int i = 0; i < 6; i++)
            free(got[i]);
    }
    /* game 1 is first in id order: the store names it as the registry's first use */
    struct entries l;
    read_store(out, &l);
    assert_true(l.n > 0);
    for (size_t i = 0; i < l.n; i++)
        if (strcmp(l.e[i].hash, h2) == 0) {
            assert_int_equal(l.e[i].game_id, 1);
            assert_string_equal(l.e[i].kind, "registry");
        }
    free(l.e);
    assert_int_equal(bz_out_texts_each(shard, collect, &l, &err), BZ_EINVAL);
    unlink(shard);
    unlink(out);
}

static void texts_merge_should_refuse_a_text_that_does_not_match_its_hash(void **st)
{
    (void)st;
    char shard[512], out[512], j[600];
    tmp_path(shard, sizeof shard, "bad.h5");
    tmp_path(out, sizeof out, "badout.h5");
    int64_t ids[] = {0, 3, 4};
    write_shard(shard, ids, 3, 0, 1);
    struct bz_err err = {0};
    assert_int_equal(bz_merge((const char *const[]){shard}, 1, out, NULL, &err), BZ_EIO);
    assert_non_null(strstr(err.msg, "game 3"));
    assert_non_null(strstr(err.msg, "does not hash to it"));
    assert_int_equal(access(out, F_OK), -1); /* no half file */
    snprintf(j, sizeof j, "%s.tmp", out);
    assert_int_equal(access(j, F_OK), -1);
    unlink(shard);
}

/* On resume the results file written so far (OUT) is a source beside new
 * shards: the store must come out as an uninterrupted run's. */
static void texts_merge_of_a_results_file_and_shards_should_equal_one_merge(void **st)
{
    (void)st;
    char ref_shard[512], ref[512], even[512], odd[512], r1[512], r2[512], r3[512];
    tmp_path(ref_shard, sizeof ref_shard, "rs.h5");
    tmp_path(ref, sizeof ref, "ref.h5");
    tmp_path(even, sizeof even, "even.h5");
    tmp_path(odd, sizeof odd, "odd.h5");
    tmp_path(r1, sizeof r1, "r1.h5");
    tmp_path(r2, sizeof r2, "r2.h5");
    tmp_path(r3, sizeof r3, "r3.h5");
    int64_t all[N_GAMES], ev[N_GAMES], od[N_GAMES + 1];
    size_t ne = 0, no = 0;
    for (int i = 0; i < N_GAMES; i++) {
        all[i] = i;
        if (i % 2 == 0)
            ev[ne++] = i;
        else
            od[no++] = N_GAMES - i; /* odd ids, finished last first */
    }
    write_shard(ref_shard, all, N_GAMES, 0, 0);
    merge_ok((const char *const[]){ref_shard}, 1, ref);
    write_shard(even, ev, ne, 0, 0);
    merge_ok((const char *const[]){even}, 1, r1); /* a stopped run's OUT */
    write_shard(odd, od, no, 0, 0);
    char again[512];
    tmp_path(again, sizeof again, "again.h5");
    int64_t four = 4; /* replayed elsewhere with other texts: OUT, first, wins */
    write_shard(again, &four, 1, 1, 0);
    merge_ok((const char *const[]){r1, odd, again}, 3, r2);
    merge_ok((const char *const[]){r2}, 1, r3); /* resumed with nothing left */
    unsigned char *d0, *d;
    size_t l0, l, n0, n;
    struct bz_err err = {0};
    assert_int_equal(bz_out_dump_table(ref, "/llm_texts", &d0, &l0, &n0, &err), BZ_OK);
    const char *outs[] = {r2, r3};
    for (int o = 0; o < 2; o++) {
        assert_int_equal(bz_out_dump_table(outs[o], "/llm_texts", &d, &l, &n, &err), BZ_OK);
        assert_int_equal(n, n0);
        assert_true(l == l0 && memcmp(d, d0, l) == 0);
        free(d);
        struct entries e0, e;
        read_store(ref, &e0);
        read_store(outs[o], &e);
        char **t0 = texts_of(ref, &e0), **t = texts_of(outs[o], &e);
        for (size_t i = 0; i < e.n; i++)
            assert_string_equal(t[i], t0[i]);
        free_texts(t0, e0.n);
        free_texts(t, e.n);
        free(e0.e);
        free(e.e);
    }
    free(d0);
    const char *files[] = {ref_shard, ref, even, odd, r1, r2, r3, again};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        remove_tmp_file(files[i]);
}

static void texts_merge_of_games_without_llm_rows_should_write_no_store(void **st)
{
    (void)st;
    char shard[512], out[512];
    tmp_path(shard, sizeof shard, "h.h5");
    tmp_path(out, sizeof out, "hout.h5");
    struct bz_err err = {0};
    struct bz_shard *s = NULL;
    struct bz_records rec;
    bz_records_init(&rec);
    assert_int_equal(bz_shard_create(shard, &s, &err), BZ_OK);
    struct bz_games_row *g = bz_records_add(&rec, &bz_games_table);
    g->game_id = 0;
    g->status = "ok";
    assert_int_equal(bz_shard_append(s, &rec, &err), BZ_OK);
    assert_int_equal(bz_shard_close(s, &err), BZ_OK);
    bz_records_cleanup(&rec);
    merge_ok((const char *const[]){shard}, 1, out);
    char **paths;
    size_t n;
    assert_int_equal(bz_out_list_tables(out, &paths, &n, &err), BZ_OK);
    for (size_t i = 0; i < n; i++)
        assert_null(strstr(paths[i], "llm_text"));
    bz_out_free_paths(paths, n);
    unlink(shard);
    unlink(out);
}

int main(void)
{
    big = big_text();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            texts_merge_should_store_each_text_once_in_first_use_order_on_any_sharding),
        cmocka_unit_test(texts_lookup_should_find_asked_hashes_in_any_order_and_skip_unknown),
        cmocka_unit_test(texts_merge_should_refuse_a_text_that_does_not_match_its_hash),
        cmocka_unit_test(texts_merge_of_a_results_file_and_shards_should_equal_one_merge),
        cmocka_unit_test(texts_merge_of_games_without_llm_rows_should_write_no_store),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(big);
    return rc;
}

/* test_tables: a table declared once (records.h's X-macro form) gives a row
 * struct, a descriptor with the struct's offsets, HDF5 members and per-column
 * units/doc attributes that agree, through a shard and a merge; the legacy
 * BZ_COL form still works; /<game>/config is built from a game's parameter
 * list (one column per parameter, typed by kind) and round-trips; the
 * summary rows of a game (/games seeds as uint64, /agents, config); the
 * printed schema lists every common column with its unit and meaning. */
#include <math.h>
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

#include "bazaar/match.h"
#include "bazaar/out.h"
#include "bazaar/tables.h"
#include "out_internal.h"

#define KINDS_COLUMNS(X, R)                                                                        \
    X(R, game_id, I64, "", "game id")                                                              \
    X(R, flag, U8, "", "a flag")                                                                   \
    X(R, turn, I32, "", "turn, 0-based")                                                           \
    X(R, seed, U64, "", "a seed")                                                                  \
    X(R, price_per_mwh, F64, "USD/MWh", "a price")                                                 \
    X(R, label, STR, "", "a label")                                                                \
    X(R, ratio, F64, "1", "a ratio")
BZ_TABLE_ROW(kinds_row, KINDS_COLUMNS);
static BZ_TABLE_DEFINE(kinds_table, "/t/kinds", kinds_row, KINDS_COLUMNS);

/* the legacy form, as electricity's tables are written until converted */
struct legacy_row {
    int64_t game_id;
    double x;
};
static const struct bz_column legacy_cols[] = {
    BZ_COL(struct legacy_row, game_id, BZ_COL_I64),
    BZ_COL(struct legacy_row, x, BZ_COL_F64),
};
static const struct bz_table_desc legacy_table = {"/t/legacy", sizeof(struct legacy_row), 2,
                                                  legacy_cols};

static void tmp_path(char *buf, size_t cap, const char *name)
{
    mkdir(BZ_TEST_TMP, 0755);
    snprintf(buf, cap, "%s/tables_%ld_%s", BZ_TEST_TMP, (long)getpid(), name);
    char journal[600];
    snprintf(journal, sizeof journal, "%s.journal", buf);
    unlink(buf);
    unlink(journal);
}

static void write_one(const char *path, const struct bz_records *rec)
{
    struct bz_err err = {0};
    struct bz_shard *s = NULL;
    if (bz_shard_create(path, &s, &err) || bz_shard_append(s, rec, &err) || bz_shard_close(s, &err))
        fail_msg("%s", err.msg);
}

static void add_games_row(struct bz_records *rec, int64_t id)
{
    struct bz_games_row *g = bz_records_add(rec, &bz_games_table);
    assert_non_null(g);
    g->game_id = id;
    g->game = "t";
    g->seed = UINT64_MAX - 5;
    g->status = "ok";
}

static void declared_table_should_give_struct_offsets_types_units_and_docs(void **state)
{
    (void)state;
    const struct bz_table_desc *d = &kinds_table;
    assert_int_equal(d->row_size, sizeof(struct kinds_row));
    assert_int_equal(d->n_cols, 7);
    static const struct {
        const char *name;
        enum bz_col_type type;
        size_t offset, size;
        const char *unit;
    } want[] = {
        {"game_id", BZ_COL_I64, offsetof(struct kinds_row, game_id), sizeof(int64_t), ""},
        {"flag", BZ_COL_U8, offsetof(struct kinds_row, flag), sizeof(uint8_t), ""},
        {"turn", BZ_COL_I32, offsetof(struct kinds_row, turn), sizeof(int32_t), ""},
        {"seed", BZ_COL_U64, offsetof(struct kinds_row, seed), sizeof(uint64_t), ""},
        {"price_per_mwh", BZ_COL_F64, offsetof(struct kinds_row, price_per_mwh), sizeof(double),
         "USD/MWh"},
        {"label", BZ_COL_STR, offsetof(struct kinds_row, label), sizeof(const char *), ""},
        {"ratio", BZ_COL_F64, offsetof(struct kinds_row, ratio), sizeof(double), "1"},
    };
    struct kinds_row probe;
    /* the struct's members have the declared C types */
    assert_int_equal(sizeof probe.flag, 1);
    assert_int_equal(sizeof probe.turn, 4);
    assert_int_equal(sizeof probe.seed, 8);
    probe.seed = UINT64_MAX;
    assert_true(probe.seed > 0); /* unsigned */
    for (size_t i = 0; i < d->n_cols; i++) {
        assert_string_equal(d->cols[i].name, want[i].name);
        assert_int_equal(d->cols[i].type, want[i].type);
        assert_int_equal(d->cols[i].offset, want[i].offset);
        assert_true(d->cols[i].offset + want[i].size <= d->row_size);
        assert_string_equal(d->cols[i].unit, want[i].unit);
        assert_non_null(d->cols[i].doc);
        assert_true(d->cols[i].doc[0] != '\0');
    }
    assert_null(legacy_table.cols[1].unit);
    assert_int_equal(legacy_table.cols[1].offset, offsetof(struct legacy_row, x));
}

/* The file's members, kinds, units and docs equal the descriptor's, in the
 * shard and after a merge; a legacy table gets empty units. */
static void file_should_hold_the_declared_members_units_and_docs(void **state)
{
    (void)state;
    char shard[512], merged[512];
    tmp_path(shard, sizeof shard, "decl.h5");
    tmp_path(merged, sizeof merged, "decl_merged.h5");
    struct bz_records rec;
    bz_records_init(&rec);
    struct kinds_row *r = bz_records_add(&rec, &kinds_table);
    assert_non_null(r);
    *r = (struct kinds_row){.game_id = 4,
                            .flag = 1,
                            .turn = 2,
                            .seed = UINT64_MAX - 1,
                            .price_per_mwh = 41.5,
                            .label = "x",
                            .ratio = 0.25};
    struct legacy_row *l = bz_records_add(&rec, &legacy_table);
    assert_non_null(l);
    l->game_id = 4;
    l->x = 1.5;
    add_games_row(&rec, 4);
    write_one(shard, &rec);
    struct bz_err err = {0};
    const char *list[] = {shard};
    if (bz_merge(list, 1, merged, NULL, &err))
        fail_msg("%s", err.msg);
    const char *files[] = {shard, merged};
    for (int f = 0; f < 2; f++) {
        struct bz_out_column *c;
        size_t n;
        if (bz_out_describe_table(files[f], "/t/kinds", &c, &n, &err))
            fail_msg("%s", err.msg);
        assert_int_equal(n, kinds_table.n_cols);
        for (size_t i = 0; i < n; i++) {
            assert_string_equal(c[i].name, kinds_table.cols[i].name);
            assert_int_equal(c[i].type, (int)kinds_table.cols[i].type);
            assert_string_equal(c[i].unit, kinds_table.cols[i].unit);
            assert_string_equal(c[i].doc, kinds_table.cols[i].doc);
        }
        bz_out_free_columns(c, n);
        if (bz_out_describe_table(files[f], "/t/legacy", &c, &n, &err))
            fail_msg("%s", err.msg);
        assert_int_equal(n, 2);
        assert_string_equal(c[1].name, "x");
        assert_string_equal(c[1].unit, "");
        bz_out_free_columns(c, n);
        if (bz_out_describe_table(files[f], "/games", &c, &n, &err))
            fail_msg("%s", err.msg);
        assert_int_equal(n, bz_games_table.n_cols);
        for (size_t i = 0; i < n; i++) {
            assert_string_equal(c[i].name, bz_games_table.cols[i].name);
            assert_int_equal(c[i].type, (int)bz_games_table.cols[i].type);
            assert_string_equal(c[i].unit, bz_games_table.cols[i].unit);
        }
        bz_out_free_columns(c, n);
    }
    /* values round trip, the u64 above 2^63 included */
    bz_records_reset(&rec);
    if (bz_out_read_table(merged, &kinds_table, &rec, &err))
        fail_msg("%s", err.msg);
    const struct bz_rowbuf *rb = bz_records_find(&rec, &kinds_table);
    assert_non_null(rb);
    assert_int_equal(rb->n_rows, 1);
    const struct kinds_row *got = (const void *)rb->data;
    assert_true(got->seed == UINT64_MAX - 1);
    assert_int_equal(got->turn, 2);
    assert_string_equal(got->label, "x");
    bz_records_cleanup(&rec);
    unlink(shard);
    unlink(merged);
}

/* ---- /<game>/config --------------------------------------------------------- */

static const struct bz_param_desc fake_params[] = {
    {"alpha", BZ_PARAM_NUM, 0.5, 0, 1, NULL, 1, "a number"},
    {"on", BZ_PARAM_BOOL, 1, 0, 1, NULL, 0, "a switch"},
    {"rounds", BZ_PARAM_INT, 3, 1, 100, NULL, 0, "a small integer"},
    {"name", BZ_PARAM_STR, 0, 0, 0, "dflt", 0, "a string"},
    {"budget", BZ_PARAM_INT, 0, 0, 1e12, NULL, 0, "a large integer"},
    {"beta", BZ_PARAM_NUM, 2, 0, 10, NULL, 0, "another number"},
};
static const struct bz_game_ops fake_ops = {
    .name = "fakegame",
    .params = fake_params,
    .n_params = sizeof fake_params / sizeof fake_params[0],
};

static void config_table_should_have_a_typed_column_per_parameter(void **state)
{
    (void)state;
    const struct bz_table_desc *d = bz_tables_config(&fake_ops);
    assert_non_null(d);
    assert_ptr_equal(d, bz_tables_config(&fake_ops)); /* built once */
    assert_string_equal(d->path, "/fakegame/config");
    assert_int_equal(d->n_cols, 1 + fake_ops.n_params);
    assert_string_equal(d->cols[0].name, "game_id");
    assert_int_equal(d->cols[0].type, BZ_COL_I64);
    const enum bz_col_type want[] = {BZ_COL_F64, BZ_COL_U8,  BZ_COL_I32,
                                     BZ_COL_STR, BZ_COL_I64, BZ_COL_F64};
    size_t end = 0;
    for (size_t i = 1; i < d->n_cols; i++) {
        const struct bz_column *c = &d->cols[i];
        assert_string_equal(c->name, fake_params[i - 1].name);
        assert_string_equal(c->doc, fake_params[i - 1].help);
        assert_non_null(c->unit);
        assert_int_equal(c->type, want[i - 1]);
        size_t size = c->type == BZ_COL_U8 ? 1 : c->type == BZ_COL_I32 ? 4 : 8;
        assert_int_equal(c->offset % size, 0); /* aligned */
        assert_true(c->offset >= end);         /* no overlap */
        end = c->offset + size;
    }
    assert_true(end <= d->row_size);
    assert_int_equal(d->row_size % 8, 0);
}

static void config_rows_should_round_trip_one_per_game(void **state)
{
    (void)state;
    char shard[512];
    tmp_path(shard, sizeof shard, "config.h5");
    struct bz_err err = {0};
    struct bz_shard *s = NULL;
    if (bz_shard_create(shard, &s, &err))
        fail_msg("%s", err.msg);
    struct bz_records rec;
    bz_records_init(&rec);
    for (int64_t id = 0; id < 3; id++) {
        struct bz_game_config cfg = {.game_id = id, .ops = &fake_ops};
        cfg.num[0] = 0.1 * (double)id;
        cfg.num[1] = (double)(id % 2);
        cfg.num[2] = 7 + (double)id;
        cfg.str[3] = id == 1 ? NULL : "given"; /* NULL: the default */
        cfg.num[4] = 5e11;
        cfg.num[5] = 9;
        bz_records_reset(&rec);
        if (bz_tables_add_config_row(&rec, &cfg, NULL, &err))
            fail_msg("%s", err.msg);
        add_games_row(&rec, id);
        if (bz_shard_append(s, &rec, &err))
            fail_msg("%s", err.msg);
    }
    if (bz_shard_close(s, &err))
        fail_msg("%s", err.msg);
    const struct bz_table_desc *d = bz_tables_config(&fake_ops);
    bz_records_reset(&rec);
    if (bz_out_read_table(shard, d, &rec, &err))
        fail_msg("%s", err.msg);
    const struct bz_rowbuf *rb = bz_records_find(&rec, d);
    assert_non_null(rb);
    assert_int_equal(rb->n_rows, 3);
    for (size_t r = 0; r < 3; r++) {
        const unsigned char *row = rb->data + r * d->row_size;
        int64_t id;
        double alpha, beta;
        uint8_t on;
        int32_t rounds;
        int64_t budget;
        const char *name;
        memcpy(&id, row + d->cols[0].offset, sizeof id);
        memcpy(&alpha, row + d->cols[1].offset, sizeof alpha);
        memcpy(&on, row + d->cols[2].offset, sizeof on);
        memcpy(&rounds, row + d->cols[3].offset, sizeof rounds);
        memcpy(&name, row + d->cols[4].offset, sizeof name);
        memcpy(&budget, row + d->cols[5].offset, sizeof budget);
        memcpy(&beta, row + d->cols[6].offset, sizeof beta);
        assert_int_equal(id, (int64_t)r);
        assert_true(alpha == 0.1 * (double)r);
        assert_int_equal(on, r % 2);
        assert_int_equal(rounds, 7 + (int)r);
        assert_string_equal(name, r == 1 ? "dflt" : "given");
        assert_true(budget == 500000000000LL);
        assert_true(beta == 9);
    }
    bz_records_cleanup(&rec);
    unlink(shard);
}

/* ---- the summary rows -------------------------------------------------------- */

static void summary_should_add_agents_config_and_a_neutral_games_row(void **state)
{
    (void)state;
    struct bz_agent_spec agents[2] = {
        {.kind = BZ_AGENT_HEURISTIC,
         .policy = "p",
         .skill = 0.5,
         .capability = 0.5,
         .label = "heuristic:p"},
        {.kind = BZ_AGENT_LLM, .policy = "m", .capability = 3, .label = "m"},
    };
    struct bz_game_config cfg = {.game_id = 9,
                                 .ops = &fake_ops,
                                 .seed = 0xfedcba9876543210ULL,
                                 .env_seed = 0x8000000000000001ULL,
                                 .repetition = 2,
                                 .n_agents = 2,
                                 .communication = 1,
                                 .agents = agents,
                                 .lineup_name = "lu"};
    struct bz_game_outcome oc = {.turns_played = 4,
                                 .welfare = 3,
                                 .max_welfare = 5,
                                 .efficiency = 0.6,
                                 .n_invalid = 1,
                                 .n_fallback = 2};
    struct bz_match_usage usage = {.llm_calls = 3, .cost_nano_usd = 1500000000, .n_fallback = 1};
    double payoff[2] = {1, -2};
    struct bz_records rec;
    struct bz_err err = {0};
    bz_records_init(&rec);
    for (int failed = 0; failed < 2; failed++) {
        bz_records_reset(&rec);
        if (bz_tables_add_summary(&rec, &cfg, &oc, payoff, &usage, failed, failed ? "boom" : "",
                                  &err))
            fail_msg("%s", err.msg);
        const struct bz_rowbuf *g = bz_records_find(&rec, &bz_games_table);
        const struct bz_rowbuf *a = bz_records_find(&rec, &bz_agents_table);
        const struct bz_rowbuf *c = bz_records_find(&rec, bz_tables_config(&fake_ops));
        assert_non_null(g);
        assert_non_null(a);
        assert_non_null(c);
        assert_int_equal(g->n_rows, 1);
        assert_int_equal(a->n_rows, 2);
        assert_int_equal(c->n_rows, 1);
        /* /games is the commit record: added after every other table */
        assert_ptr_equal(&rec.tables[rec.n_tables - 1], g);
        const struct bz_games_row *row = (const void *)g->data;
        assert_true(row->seed == 0xfedcba9876543210ULL);
        assert_true(row->env_seed == 0x8000000000000001ULL);
        assert_int_equal(row->repetition, 2);
        assert_string_equal(row->game, "fakegame");
        assert_string_equal(row->lineup, "lu");
        assert_true(row->cost_usd == 1.5);
        assert_int_equal(row->n_fallback, 2);
        assert_string_equal(row->status, failed ? "failed" : "ok");
        assert_string_equal(row->error, failed ? "boom" : "");
        assert_true(failed ? isnan(row->welfare) : row->welfare == 3);
        assert_true(failed ? isnan(row->efficiency) : row->efficiency == 0.6);
        const struct bz_agents_row *ag = (const void *)a->data;
        assert_true(isnan(ag[1].skill));
        assert_true(failed ? isnan(ag[0].payoff) : ag[0].payoff == 1);
    }
    bz_records_cleanup(&rec);
}

/* ---- the schema ------------------------------------------------------------- */

static void schema_should_list_every_common_column_with_unit_and_meaning(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    struct bz_err err = {0};
    assert_int_equal(bz_tables_print_schema(f, NULL, &err), BZ_OK);
    fclose(f);
    for (size_t t = 0; t < bz_tables_common_count(); t++) {
        const struct bz_table_desc *d = bz_tables_common_at(t);
        char head[128];
        snprintf(head, sizeof head, "\n%s  (", d->path);
        const char *at = t == 0 ? strstr(text, head + 1) : strstr(text, head);
        assert_non_null(at);
        for (size_t i = 0; i < d->n_cols; i++) {
            const struct bz_column *c = &d->cols[i];
            assert_non_null(c->unit);
            assert_non_null(c->doc);
            char want[512];
            const char *line = strstr(at, "\n  ");
            /* the column's line: name, type, unit ("-": none), meaning */
            for (size_t k = 0; k < i; k++)
                line = strstr(line + 1, "\n  ");
            assert_non_null(line);
            char name[64], type[8], unit[32];
            assert_int_equal(sscanf(line, " %63s %7s %31s", name, type, unit), 3);
            assert_string_equal(name, c->name);
            char want_type[32]; /* a fixed-width string shows its width: s32 */
            if (c->type == BZ_COL_STR && c->width)
                snprintf(want_type, sizeof want_type, "s%zu", c->width);
            else
                snprintf(want_type, sizeof want_type, "%s", bz_col_type_name(c->type));
            assert_string_equal(type, want_type);
            assert_string_equal(unit, c->unit[0] ? c->unit : "-");
            snprintf(want, sizeof want, "%s\n", c->doc);
            assert_non_null(strstr(line, want));
        }
    }
    /* every registered game: its config table */
    for (size_t g = 0; g < bz_game_count(); g++) {
        char head[128];
        snprintf(head, sizeof head, "/%s/config  (", bz_game_at(g)->name);
        assert_non_null(strstr(text, head));
    }
    free(text);
    f = open_memstream(&text, &len);
    assert_int_equal(bz_tables_print_schema(f, "no-such-game", &err), BZ_EINVAL);
    fclose(f);
    assert_non_null(strstr(err.msg, "no-such-game"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(declared_table_should_give_struct_offsets_types_units_and_docs),
        cmocka_unit_test(file_should_hold_the_declared_members_units_and_docs),
        cmocka_unit_test(config_table_should_have_a_typed_column_per_parameter),
        cmocka_unit_test(config_rows_should_round_trip_one_per_game),
        cmocka_unit_test(summary_should_add_agents_config_and_a_neutral_games_row),
        cmocka_unit_test(schema_should_list_every_common_column_with_unit_and_meaning),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

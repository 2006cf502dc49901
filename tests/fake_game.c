/* fake_game: the tests' game (see fake_game.h). Written as a new game is: its
 * rules, one heuristic policy, observe/parse, one table; everything else is the
 * game base's. */
#include "fake_game.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SLOTS 2

struct bz_game {
    struct bz_game_base base; /* first */
    int n, rounds, slots, round, fail_step_at, fail_apply_at, break_at;
    int32_t *value;  /* n x MAX_SLOTS action slots */
    uint8_t *filled; /* n x MAX_SLOTS */
    int64_t total;
};

static const struct bz_param_desc params[BZ_FAKE_N_PARAMS] = {
    {"n_agents", BZ_PARAM_INT, 2, 1, 64, NULL, 1, "players"},
    {"communication", BZ_PARAM_BOOL, 1, 0, 1, NULL, 0, "messages travel"},
    {"rounds", BZ_PARAM_INT, 3, 0, 1000, NULL, 1, "rounds played"},
    {"slots", BZ_PARAM_INT, 1, 1, MAX_SLOTS, NULL, 0, "questions to agent 0 per step"},
    {"fail_step_at", BZ_PARAM_INT, -1, -1, 1000, NULL, 0, "round whose step() errs (-1 never)"},
    {"fail_apply_at", BZ_PARAM_INT, -1, -1, 1000, NULL, 0, "round whose apply() errs (-1 never)"},
    {"break_at", BZ_PARAM_INT, -1, -1, 1000, NULL, 0,
     "round whose step() asks nothing yet says DECIDE (-1 never)"},
};

static const char *const phases[] = {"offer"};

#define A struct bz_fake_answer_row
static const struct bz_column answer_cols[] = {
    BZ_COL(A, game_id, BZ_COL_I64), BZ_COL(A, round, BZ_COL_I32), BZ_COL(A, agent, BZ_COL_I32),
    BZ_COL(A, slot, BZ_COL_I32),    BZ_COL(A, value, BZ_COL_I32), BZ_COL(A, order, BZ_COL_I32),
};
#undef A
const struct bz_table_desc bz_fake_answers_table = {
    "/fake/answers", sizeof(struct bz_fake_answer_row), sizeof answer_cols / sizeof answer_cols[0],
    answer_cols};
static const struct bz_table_desc *const tables[] = {&bz_fake_answers_table};

static void destroy(struct bz_game *g)
{
    if (!g)
        return;
    free(g->value);
    free(g->filled);
    bz_game_base_cleanup(&g->base);
    free(g);
}

static int create(const struct bz_game_config *cfg, struct bz_records *rec, struct bz_game **out,
                  struct bz_err *err)
{
    *out = NULL;
    struct bz_game *g = calloc(1, sizeof *g);
    if (!g)
        return bz_err_set(err, BZ_ENOMEM, "fake: out of memory");
    int rc = bz_game_base_init(&g->base, cfg, rec, err);
    if (rc) {
        free(g);
        return rc;
    }
    g->n = cfg->n_agents;
    g->rounds = (int)cfg->num[BZ_FAKE_ROUNDS];
    g->slots = (int)cfg->num[BZ_FAKE_SLOTS];
    g->fail_step_at = (int)cfg->num[BZ_FAKE_FAIL_STEP_AT];
    g->fail_apply_at = (int)cfg->num[BZ_FAKE_FAIL_APPLY_AT];
    g->break_at = (int)cfg->num[BZ_FAKE_BREAK_AT];
    if (g->slots < 1 || g->slots > MAX_SLOTS)
        g->slots = 1;
    g->value = calloc((size_t)g->n * MAX_SLOTS, sizeof *g->value);
    g->filled = calloc((size_t)g->n * MAX_SLOTS, sizeof *g->filled);
    if (!g->value || !g->filled) {
        destroy(g);
        return bz_err_set(err, BZ_ENOMEM, "fake: out of memory");
    }
    if (g->base.tx)
        fprintf(g->base.tx, "== fake: %d agents, %d rounds\n", g->n, g->rounds);
    *out = g;
    return BZ_OK;
}

static int step(struct bz_game *g, int *state, struct bz_err *err)
{
    if (g->round == g->fail_step_at)
        /* a positive rc, as bz_err_set returns: once read as "decide" */
        return bz_err_set(err, BZ_EINTERNAL, "fake: step failed on purpose at round %d", g->round);
    if (g->round >= g->rounds) {
        *state = BZ_STEP_DONE;
        return BZ_OK;
    }
    g->base.round = g->round;
    bz_game_ask_phase(g, 0);
    if (g->round != g->break_at) {
        for (int i = 0; i < g->n; i++) {
            int slots = i == 0 ? g->slots : 1;
            for (int s = 0; s < slots; s++) {
                g->filled[i * MAX_SLOTS + s] = 0;
                if (bz_game_ask(g, i, s))
                    return bz_err_set(err, BZ_ENOMEM, "fake: out of memory");
            }
        }
    }
    *state = BZ_STEP_DECIDE;
    return BZ_OK;
}

static int apply(struct bz_game *g, struct bz_err *err)
{
    if (g->round == g->fail_apply_at)
        return bz_err_set(err, BZ_EINVAL, "fake: apply failed on purpose at round %d", g->round);
    for (int k = 0; k < g->base.n_req; k++) {
        const struct bz_request *r = &g->base.req[k];
        struct bz_fake_answer_row *row = bz_records_add(g->base.rec, &bz_fake_answers_table);
        if (!row)
            return bz_err_set(err, BZ_ENOMEM, "fake: out of memory");
        row->game_id = g->base.cfg->game_id;
        row->round = g->round;
        row->agent = r->agent;
        row->slot = r->slot;
        row->value = g->value[r->agent * MAX_SLOTS + r->slot];
        row->order = k;
        g->total += row->value;
        if (g->base.tx)
            fprintf(g->base.tx, "round %d: a%d slot %d offers %d\n", g->round, r->agent, r->slot,
                    row->value);
    }
    if (g->n > 1)
        bz_game_message(g, 0, 0, 1, "fake: hello");
    g->round++;
    return BZ_OK;
}

static void outcome(const struct bz_game *g, struct bz_game_outcome *out, double *payoff)
{
    out->turns_played = g->round;
    out->welfare = (double)g->total;
    out->max_welfare = 100.0 * g->n * g->rounds;
    out->efficiency = out->max_welfare > 0 ? out->welfare / out->max_welfare : 1;
    out->n_invalid = g->base.n_invalid;
    out->n_fallback = g->base.n_fallback;
    for (int i = 0; i < g->n; i++)
        payoff[i] = (double)g->value[i * MAX_SLOTS];
}

static int check_action(const struct bz_game *g, const struct bz_request *r, struct bz_err *err)
{
    int v = g->value[r->agent * MAX_SLOTS + r->slot];
    if (!g->filled[r->agent * MAX_SLOTS + r->slot])
        return bz_err_set(err, BZ_EINVAL, "value: missing");
    /* the rule the schema cannot say: slot 1 must offer an even number */
    if (r->slot == 1 && v % 2)
        return bz_err_set(err, BZ_EINVAL, "value: slot 1 takes an even number, got %d", v);
    return BZ_OK;
}

static void set_value(struct bz_game *g, const struct bz_request *r, int v)
{
    g->value[r->agent * MAX_SLOTS + r->slot] = v;
    g->filled[r->agent * MAX_SLOTS + r->slot] = 1;
}

static void safe_action(struct bz_game *g, const struct bz_request *r)
{
    set_value(g, r, 0);
}

static void random_action(struct bz_game *g, const struct bz_request *r, struct bz_rng *rng)
{
    int v = (int)bz_rng_below(rng, 101);
    set_value(g, r, r->slot == 1 ? v & ~1 : v);
}

/* The heuristic: agent*10 + slot + round, even in slot 1. */
static void decide_fixed(struct bz_game *g, const struct bz_request *r, struct bz_rng *rng)
{
    (void)rng;
    int v = (r->agent * 10 + r->slot + g->round) % 101;
    set_value(g, r, r->slot == 1 ? v & ~1 : v);
}

static const struct bz_policy_ops fixed = {"fixed", "offers agent*10 + slot + round", decide_fixed};
static const struct bz_policy_ops zi = {"zi", "random admissible offers", NULL};
static const struct bz_policy_ops *const policies[] = {&fixed, &zi};

static int observe(const struct bz_game *g, const struct bz_request *r, cJSON *obs,
                   struct bz_err *err)
{
    (void)err;
    cJSON *pub = cJSON_AddObjectToObject(obs, "public");
    cJSON *priv = cJSON_AddObjectToObject(obs, "private");
    cJSON *meta = cJSON_AddObjectToObject(obs, "meta");
    if (!pub || !priv || !meta)
        return bz_err_set(err, BZ_ENOMEM, "fake: out of memory");
    cJSON_AddNumberToObject(pub, "total", (double)g->total);
    cJSON_AddNumberToObject(priv, "slot", r->slot);
    cJSON_AddNumberToObject(meta, "turn", g->round);
    return BZ_OK;
}

static cJSON *action_schema(const struct bz_game *g, int phase)
{
    if (phase != 0)
        return NULL;
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "type", "object");
    cJSON_AddBoolToObject(s, "additionalProperties", 0);
    cJSON *req = cJSON_AddArrayToObject(s, "required");
    cJSON_AddItemToArray(req, cJSON_CreateString("value"));
    cJSON *props = cJSON_AddObjectToObject(s, "properties");
    cJSON *v = cJSON_AddObjectToObject(props, "value");
    cJSON_AddStringToObject(v, "type", "integer");
    cJSON_AddNumberToObject(v, "minimum", 0);
    cJSON_AddNumberToObject(v, "maximum", 100);
    if (g->base.communication) {
        cJSON *m = cJSON_AddObjectToObject(props, "message");
        cJSON_AddStringToObject(m, "type", "string");
        cJSON_AddNumberToObject(m, "maxLength", 200);
    }
    return s;
}

static int parse_action(struct bz_game *g, const struct bz_request *r, const cJSON *reply,
                        struct bz_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(reply, "value");
    if (!cJSON_IsNumber(v))
        return bz_err_set(err, BZ_EINVAL, "value: expected an integer");
    set_value(g, r, (int)v->valuedouble);
    return BZ_OK;
}

const struct bz_game_ops bz_fake_game_ops = {
    .name = "fake",
    .params = params,
    .n_params = BZ_FAKE_N_PARAMS,
    .phases = phases,
    .n_phases = 1,
    .policies = policies,
    .n_policies = sizeof policies / sizeof policies[0],
    .tables = tables,
    .n_tables = 1,
    .create = create,
    .destroy = destroy,
    .step = step,
    .apply = apply,
    .outcome = outcome,
    .check_action = check_action,
    .safe_action = safe_action,
    .random_action = random_action,
    .observe = observe,
    .action_schema = action_schema,
    .parse_action = parse_action,
};

int bz_fake_game_register(void)
{
    if (bz_game_find(bz_fake_game_ops.name))
        return BZ_OK;
    return bz_game_register(&bz_fake_game_ops);
}

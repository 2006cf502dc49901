/* tables_common: the descriptors of the tables every game shares (declared in
 * tables.h) and the rows a finished game adds to them: /agents, its
 * /<game>/config row and its /games row (the commit record, added last).
 * Never does I/O. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bazaar/match.h"
#include "bazaar/tables.h"

BZ_TABLE_DEFINE(bz_games_table, "/games", bz_games_row, BZ_GAMES_COLUMNS);
BZ_TABLE_DEFINE(bz_agents_table, "/agents", bz_agents_row, BZ_AGENTS_COLUMNS);
BZ_TABLE_DEFINE(bz_messages_table, "/messages", bz_messages_row, BZ_MESSAGES_COLUMNS);
BZ_TABLE_DEFINE(bz_llm_calls_table, "/llm_calls", bz_llm_calls_row, BZ_LLM_CALLS_COLUMNS);
BZ_TABLE_DEFINE(bz_llm_texts_table, "/llm_texts", bz_llm_texts_row, BZ_LLM_TEXTS_COLUMNS);
BZ_TABLE_DEFINE(bz_llm_text_index_table, "/llm_texts", bz_llm_text_index_row,
                BZ_LLM_TEXT_INDEX_COLUMNS);

static const struct bz_table_desc *const common[] = {&bz_games_table, &bz_agents_table,
                                                     &bz_messages_table, &bz_llm_calls_table,
                                                     &bz_llm_text_index_table};

size_t bz_tables_common_count(void)
{
    return sizeof common / sizeof common[0];
}

const struct bz_table_desc *bz_tables_common_at(size_t i)
{
    return i < bz_tables_common_count() ? common[i] : NULL;
}

const char *bz_col_type_name(enum bz_col_type t)
{
    switch (t) {
    case BZ_COL_I32: return "i32";
    case BZ_COL_I64: return "i64";
    case BZ_COL_U64: return "u64";
    case BZ_COL_F64: return "f64";
    case BZ_COL_U8: return "u8";
    case BZ_COL_STR: return "str";
    }
    return "?";
}

static int add_agents_rows(struct bz_records *rec, const struct bz_game_config *cfg,
                           const double *payoff, const double *gain, int failed)
{
    double abs_sum = 0;
    for (int i = 0; i < cfg->n_agents; i++)
        abs_sum += fabs(payoff[i]);
    for (int i = 0; i < cfg->n_agents; i++) {
        struct bz_agents_row *r = bz_records_add(rec, &bz_agents_table);
        if (!r)
            return BZ_ENOMEM;
        const struct bz_agent_spec *a = &cfg->agents[i];
        r->game_id = cfg->game_id;
        r->agent = i;
        r->kind = a->kind == BZ_AGENT_LLM ? "llm" : "heuristic";
        r->policy = bz_records_strdup(rec, a->label);
        r->skill = a->kind == BZ_AGENT_LLM ? NAN : a->skill;
        r->capability = a->capability;
        r->payoff = failed ? NAN : payoff[i];
        r->payoff_share = abs_sum > 0 && !failed ? payoff[i] / abs_sum : NAN;
        r->gain = gain && !failed ? gain[i] : NAN;
        if (!r->policy)
            return BZ_ENOMEM;
    }
    return BZ_OK;
}

static int add_games_row(struct bz_records *rec, const struct bz_game_config *cfg,
                         const struct bz_game_outcome *oc, const struct bz_match_usage *usage,
                         int failed, const char *error)
{
    struct bz_games_row *g = bz_records_add(rec, &bz_games_table);
    if (!g)
        return BZ_ENOMEM;
    g->game_id = cfg->game_id;
    g->game = cfg->ops->name;
    g->seed = cfg->seed;
    g->env_seed = cfg->env_seed;
    g->repetition = cfg->repetition;
    g->n_agents = cfg->n_agents;
    g->communication = (uint8_t)(cfg->communication != 0);
    g->memory_turns = cfg->memory_turns;
    g->lineup = bz_records_strdup(rec, cfg->lineup_name);
    g->turns_played = oc->turns_played;
    g->welfare = failed ? NAN : oc->welfare;
    g->max_welfare = failed ? NAN : oc->max_welfare;
    g->efficiency = failed ? NAN : oc->efficiency;
    /* the game counts inadmissible actions (from any agent); the LLM layer
     * counts replies that failed to parse or check: one inadmissible LLM
     * reply is in both, so they stay separate columns */
    g->n_invalid = oc->n_invalid;
    g->n_bad_replies = usage->n_invalid;
    g->n_repair = usage->n_repair;
    g->n_fallback = oc->n_fallback > usage->n_fallback ? oc->n_fallback : usage->n_fallback;
    g->llm_calls = usage->llm_calls;
    g->cache_hits = usage->cache_hits;
    g->input_tokens = usage->input_tokens;
    g->cached_input_tokens = usage->cached_input_tokens;
    g->output_tokens = usage->output_tokens;
    g->cost_usd = (double)usage->cost_nano_usd * 1e-9;
    g->status = failed == 2 ? "timeout" : failed ? "failed" : "ok";
    g->error = bz_records_strdup(rec, error);
    return g->lineup && g->error ? BZ_OK : BZ_ENOMEM;
}

int bz_tables_add_summary(struct bz_records *rec, const struct bz_game_config *cfg,
                          const struct bz_game_outcome *oc, const double *payoff,
                          const struct bz_match_usage *usage, int failed, const char *error,
                          struct bz_err *err)
{
    int rc = add_agents_rows(rec, cfg, payoff, oc->gain, failed);
    if (!rc)
        rc = bz_tables_add_config_row(rec, cfg, failed ? NULL : oc->measures, err);
    if (!rc)
        rc = add_games_row(rec, cfg, oc, usage, failed, error);
    if (rc)
        return bz_err_set(err, BZ_ENOMEM, "out of memory finishing game %lld",
                          (long long)cfg->game_id);
    return BZ_OK;
}

static int cmp_call(const void *a, const void *b)
{
    const struct bz_llm_calls_row *x = a, *y = b;
    int c;
    if (x->agent != y->agent)
        return (x->agent > y->agent) - (x->agent < y->agent);
    if ((c = strcmp(x->prompt_text ? x->prompt_text : "", y->prompt_text ? y->prompt_text : "")))
        return c;
    if ((c = strcmp(x->repair_text ? x->repair_text : "", y->repair_text ? y->repair_text : "")))
        return c;
    if ((c = strcmp(x->reply_text ? x->reply_text : "", y->reply_text ? y->reply_text : "")))
        return c; /* one agent's slots asked the same prompt under other schemas */
    return (x->attempt > y->attempt) - (x->attempt < y->attempt);
}

void bz_tables_order_llm_calls(struct bz_records *rec, size_t from)
{
    const struct bz_rowbuf *rb = bz_records_find(rec, &bz_llm_calls_table);
    if (!rb || rb->n_rows <= from + 1)
        return;
    qsort(rb->data + from * sizeof(struct bz_llm_calls_row), rb->n_rows - from,
          sizeof(struct bz_llm_calls_row), cmp_call);
}

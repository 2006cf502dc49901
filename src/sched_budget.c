/* sched_budget: the LLM spending a sweep counts against its budget: what
 * earlier attempts of a resumed sweep spent (replayed from the /llm_calls
 * rows of their files; cache hits cost nothing) plus what every rank of this
 * attempt has spent so far. Never calls MPI (sched.c carries the per-rank
 * totals to rank 0). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bazaar/out.h"
#include "bazaar/records.h"
#include "sched_internal.h"

struct spend_row {
    int64_t game_id;
    int64_t input_tokens;
    int64_t output_tokens;
    double cost_usd;
    uint8_t cache_hit;
};
static const struct bz_column spend_cols[] = {
    BZ_COL(struct spend_row, game_id, BZ_COL_I64),
    BZ_COL(struct spend_row, input_tokens, BZ_COL_I64),
    BZ_COL(struct spend_row, output_tokens, BZ_COL_I64),
    BZ_COL(struct spend_row, cost_usd, BZ_COL_F64),
    BZ_COL(struct spend_row, cache_hit, BZ_COL_U8),
};
static const struct bz_table_desc spend_table = {
    "/llm_calls", sizeof(struct spend_row), sizeof spend_cols / sizeof spend_cols[0], spend_cols};

int bz_sched_add_spend(const char *path, int64_t *tokens, double *cost, struct bz_err *err)
{
    struct bz_records rec;
    bz_records_init(&rec);
    int rc = bz_out_read_table(path, &spend_table, &rec, err);
    const struct bz_rowbuf *rb = bz_records_find(&rec, &spend_table);
    for (size_t i = 0; !rc && rb && i < rb->n_rows; i++) {
        const struct spend_row *r = (const struct spend_row *)(rb->data + i * sizeof *r);
        if (!r->cache_hit) {
            *tokens += r->input_tokens + r->output_tokens;
            *cost += r->cost_usd;
        }
    }
    bz_records_cleanup(&rec);
    return rc;
}

int bz_sched_spend_init(struct bz_sched_spend *s, const struct bz_budget *budget,
                        int64_t spent_tokens, double spent_cost, int n_ranks, struct bz_err *err)
{
    memset(s, 0, sizeof *s);
    s->budget = *budget;
    s->spent_tokens = spent_tokens;
    s->spent_cost = spent_cost;
    s->n_ranks = n_ranks;
    if (budget->max_tokens <= 0 && budget->max_cost_usd <= 0)
        return BZ_OK;
    s->rank_tokens = calloc((size_t)n_ranks, sizeof *s->rank_tokens);
    s->rank_cost = calloc((size_t)n_ranks, sizeof *s->rank_cost);
    if (!s->rank_tokens || !s->rank_cost)
        return bz_err_set(err, BZ_ENOMEM, "out of memory");
    return BZ_OK;
}

void bz_sched_spend_cleanup(struct bz_sched_spend *s)
{
    free(s->rank_tokens);
    free(s->rank_cost);
    memset(s, 0, sizeof *s);
}

int bz_sched_spend_update(struct bz_sched_spend *s, int rank, int64_t tokens, double cost_usd)
{
    if (!s->rank_tokens)
        return 0;
    s->rank_tokens[rank] = tokens;
    s->rank_cost[rank] = cost_usd;
    if (s->hit)
        return 0;
    int64_t all_tokens = s->spent_tokens;
    double all_cost = s->spent_cost;
    for (int r = 0; r < s->n_ranks; r++) {
        all_tokens += s->rank_tokens[r];
        all_cost += s->rank_cost[r];
    }
    if ((s->budget.max_tokens > 0 && all_tokens >= s->budget.max_tokens) ||
        (s->budget.max_cost_usd > 0 && all_cost >= s->budget.max_cost_usd)) {
        s->hit = 1;
        fprintf(stderr,
                "bazaar: budget reached (%lld tokens, $%.4f): finishing the games in hand\n",
                (long long)all_tokens, all_cost);
        return 1;
    }
    return 0;
}

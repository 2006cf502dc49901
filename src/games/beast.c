/* beast: the beast game on the platform (bz_beast_ops): alliances, transfers
 * and elimination votes. This file owns the parameters, the mapping of each
 * engine step onto (agent, slot) requests of one platform phase, applying the
 * actions, the per-seat heuristic memory and the records (/beast/wealth,
 * /beast/transfers, /beast/votes, /beast/messages, /beast/agents and the
 * conversations' text in /messages). The rules are the engine's
 * (beast_rules.c); the LLM view is beast_llm.c; the policies are
 * src/agents/beast_agents.c. Never does I/O but the transcript.
 *
 * Mapping: one engine step = one platform step. Its requests all share one
 * kind (partners, message, declare or vote), which is the platform phase;
 * request k is asked as (rq[k].agent, rq[k].slot) in the engine's order, so a
 * player in three conversations of one talk step is asked three slots. The
 * engine draws only from cfg->env_seed (wealth, openers, tally ties): games
 * paired on env_seed (lineups, communication) see the same players' wealth.
 *
 * Rows: /messages gets one row per message with communication on: turn and
 * round are the beast round, conversation the engine's conversation id; the
 * text is the LLM's free text, or for a heuristic seat a plain rendering of
 * what its message carries. The structured content of every message is in
 * /beast/messages whatever communication is. /agents' payoff is the final
 * wealth; rank, elimination round and promises are in /beast/agents. The
 * /games efficiency of beast is the share of promises kept over all players
 * (NaN when none were made): wealth is conserved, so welfare says nothing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "games/beast_game.h"

static const struct bz_param_desc params[BZ_BEAST_N_PARAMS] = {
    {"n_agents", BZ_PARAM_INT, 10, 2, BZ_BEAST_MAX_AGENTS, NULL, 1, "players"},
    {"communication", BZ_PARAM_BOOL, 1, 0, 1, NULL, 0,
     "1: messages carry free text, vote promises/requests and declared votes are seen; 0: "
     "offers and acceptances only"},
    {"partners", BZ_PARAM_INT, 3, 0, BZ_BEAST_MAX_PARTNERS, NULL, 0,
     "others each player picks to talk with per round"},
    {"exchanges", BZ_PARAM_INT, 5, 1, 1000, NULL, 0, "messages per conversation at most"},
    {"eliminations", BZ_PARAM_INT, 5, 1, BZ_BEAST_MAX_AGENTS - 1, NULL, 0,
     "the game ends after this many eliminations (one per round)"},
    {"bonus_slots", BZ_PARAM_INT, 5, 0, 100000, NULL, 0,
     "the first bonus_slots eliminated players receive the bonus"},
    {"bonus", BZ_PARAM_INT, 250000, 0, 1e12, NULL, 0, "bonus paid to an eliminated player"},
    {"max_rounds", BZ_PARAM_INT, 5, 1, 100000, NULL, 0, "the game ends after this many rounds"},
    {"wealth_max", BZ_PARAM_INT, 200000, 0, 1e12, NULL, 1,
     "initial wealth is drawn uniformly from [0, wealth_max] (environment stream)"},
    {"max_slots", BZ_PARAM_INT, 3, 1, BZ_BEAST_MAX_AGENTS, NULL, 0,
     "conversations a player answers per talk step (its request slots)"},
};

static const char *const phase_names[BZ_BEAST_N_PHASES] = {"partners", "message", "declare",
                                                           "vote"};

static const struct bz_policy_ops *const policies[] = {&bz_beast_loyal, &bz_beast_mercenary,
                                                       &bz_beast_zi, &bz_beast_bully};

BZ_TABLE_DEFINE(bz_beast_wealth_table, "/beast/wealth", bz_beast_wealth_trow,
                BZ_BEAST_WEALTH_COLUMNS);
BZ_TABLE_DEFINE(bz_beast_transfers_table, "/beast/transfers", bz_beast_transfer_trow,
                BZ_BEAST_TRANSFERS_COLUMNS);
BZ_TABLE_DEFINE(bz_beast_votes_table, "/beast/votes", bz_beast_vote_trow, BZ_BEAST_VOTES_COLUMNS);
BZ_TABLE_DEFINE(bz_beast_messages_table, "/beast/messages", bz_beast_message_trow,
                BZ_BEAST_MESSAGES_COLUMNS);
BZ_TABLE_DEFINE(bz_beast_agents_table, "/beast/agents", bz_beast_agent_trow,
                BZ_BEAST_AGENTS_COLUMNS);

static const struct bz_table_desc *const tables[] = {
    &bz_beast_wealth_table, &bz_beast_transfers_table, &bz_beast_votes_table,
    &bz_beast_messages_table, &bz_beast_agents_table};

static void config_of(const struct bz_game_config *cfg, struct bz_beast_config *c)
{
    bz_beast_config_default(c);
    c->n_agents = cfg->n_agents;
    c->communication = cfg->communication != 0;
    c->partners = (int)cfg->num[BZ_BEAST_P_PARTNERS];
    c->exchanges = (int)cfg->num[BZ_BEAST_P_EXCHANGES];
    c->eliminations = (int)cfg->num[BZ_BEAST_P_ELIMINATIONS];
    c->bonus_slots = (int)cfg->num[BZ_BEAST_P_BONUS_SLOTS];
    c->bonus = (int64_t)cfg->num[BZ_BEAST_P_BONUS];
    c->max_rounds = (int)cfg->num[BZ_BEAST_P_MAX_ROUNDS];
    c->wealth_max = (int64_t)cfg->num[BZ_BEAST_P_WEALTH_MAX];
    c->max_slots = (int)cfg->num[BZ_BEAST_P_MAX_SLOTS];
}

static int check(const struct bz_game_config *cfg, struct bz_err *err)
{
    for (int i = 0; i < BZ_BEAST_N_PARAMS; i++) {
        const struct bz_param_desc *p = &params[i];
        if (i == BZ_BEAST_P_N_AGENTS || i == BZ_BEAST_P_COMMUNICATION)
            continue;
        double v = cfg->num[i];
        if (!isfinite(v) || v < p->min || v > p->max || v != floor(v))
            return bz_err_set(err, BZ_EINVAL, "%s: expected an integer in [%g, %g], got %g",
                              p->name, p->min, p->max, v);
    }
    struct bz_beast_config c;
    config_of(cfg, &c);
    return bz_beast_config_check(&c, err);
}

/* ---- create / destroy ---------------------------------------------------- */

static void destroy(struct bz_game *g)
{
    if (!g)
        return;
    bz_beast_destroy(g->eng);
    free(g->rq);
    free(g->act);
    free(g->filled);
    free(g->text);
    free(g->slot_idx);
    free(g->mem);
    free(g->msg_text);
    bz_game_base_cleanup(&g->base);
    free(g);
}

static int create(const struct bz_game_config *cfg, struct bz_records *rec, struct bz_game **out,
                  struct bz_err *err)
{
    *out = NULL;
    int rc = check(cfg, err);
    if (rc)
        return rc;
    struct bz_game *g = calloc(1, sizeof *g);
    if (!g)
        return bz_err_set(err, BZ_ENOMEM, "beast: out of memory");
    if ((rc = bz_game_base_init(&g->base, cfg, rec, err))) {
        free(g);
        return rc;
    }
    config_of(cfg, &g->bc);
    if ((rc = bz_beast_create(&g->bc, cfg->env_seed, &g->eng, err)))
        goto out;
    g->n = g->bc.n_agents;
    g->cap = g->n * g->bc.max_slots;
    size_t cap = (size_t)g->cap, n = (size_t)g->n;
    g->rq = calloc(cap, sizeof *g->rq);
    g->act = calloc(cap, sizeof *g->act);
    g->filled = calloc(cap, sizeof *g->filled);
    g->text = calloc(cap, sizeof *g->text);
    g->slot_idx = malloc(cap * sizeof *g->slot_idx);
    g->mem = calloc(n, sizeof *g->mem);
    if (!g->rq || !g->act || !g->filled || !g->text || !g->slot_idx || !g->mem) {
        rc = bz_err_set(err, BZ_ENOMEM, "beast: out of memory for %d agents", g->n);
        goto out;
    }
    for (size_t k = 0; k < cap; k++)
        g->slot_idx[k] = -1;
    for (int i = 0; i < g->n; i++) {
        int p = cfg->agents && cfg->agents[i].kind == BZ_AGENT_HEURISTIC
                    ? bz_beast_policy_parse(cfg->agents[i].policy)
                    : -1;
        bz_beast_mem_init(&g->mem[i], i, p >= 0 ? p : BZ_BEAST_ZI);
    }
    if (g->base.tx) {
        fprintf(g->base.tx,
                "== beast: %d players, partners %d, exchanges %d, eliminations %d, bonus %lld "
                "to the first %d eliminated, communication %s, env seed %llu\n",
                g->n, g->bc.partners, g->bc.exchanges, g->bc.eliminations, (long long)g->bc.bonus,
                g->bc.bonus_slots, g->bc.communication ? "on" : "off",
                (unsigned long long)cfg->env_seed);
        for (int i = 0; i < g->n; i++)
            fprintf(g->base.tx, "   a%d %-28s wealth %lld\n", i,
                    cfg->agents ? cfg->agents[i].label : "?",
                    (long long)bz_beast_wealth(g->eng, i));
    }
    *out = g;
    g = NULL;
out:
    destroy(g);
    return rc;
}

int bz_beast_game_index(const struct bz_game *g, const struct bz_request *r)
{
    if (!r || r->agent < 0 || r->agent >= g->n || r->slot < 0 || r->slot >= g->bc.max_slots)
        return -1;
    return g->slot_idx[r->agent * g->bc.max_slots + r->slot];
}

/* ---- records ---------------------------------------------------------------- */

static const char *why_not_name(int w)
{
    return w == BZ_BEAST_EXECUTED        ? ""
           : w == BZ_BEAST_CANNOT_AFFORD ? "cannot afford"
                                         : "not accepted";
}

#define ADD(var, table)                                                                            \
    if (!(var = bz_records_add(rec, &table)))                                                      \
    return bz_err_set(err, BZ_ENOMEM, "beast: out of memory for records")

static int write_records(struct bz_game *g, struct bz_err *err)
{
    struct bz_records *rec = g->base.rec;
    int64_t gid = g->base.cfg->game_id;
    struct bz_beast_records r;
    bz_beast_records(g->eng, &r);
    for (int i = 0; i < r.n_wealth; i++) {
        const struct bz_beast_wealth_row *w = &r.wealth[i];
        struct bz_beast_wealth_trow *o;
        ADD(o, bz_beast_wealth_table);
        *o = (struct bz_beast_wealth_trow){gid,
                                           w->round,
                                           w->agent,
                                           w->wealth_start,
                                           w->transfers_in,
                                           w->transfers_out,
                                           w->bonus,
                                           w->wealth_end,
                                           (uint8_t)w->active};
    }
    for (int i = 0; i < r.n_transfers; i++) {
        const struct bz_beast_transfer_row *t = &r.transfers[i];
        struct bz_beast_transfer_trow *o;
        ADD(o, bz_beast_transfers_table);
        o->game_id = gid;
        o->round = t->round;
        o->conversation = t->conv;
        o->payer = t->payer;
        o->payee = t->payee;
        o->amount = t->amount;
        o->offered_by = t->offered_by_payer ? "payer" : "payee";
        o->accepted = (uint8_t)t->accepted;
        o->executed = (uint8_t)t->executed;
        o->why_not = why_not_name(t->executed ? BZ_BEAST_EXECUTED : t->why_not);
        o->message = t->msg >= 0 && t->msg < r.n_msgs ? r.msgs[t->msg].index : -1;
    }
    for (int i = 0; i < r.n_votes; i++) {
        const struct bz_beast_vote_row *v = &r.votes[i];
        struct bz_beast_vote_trow *o;
        ADD(o, bz_beast_votes_table);
        *o = (struct bz_beast_vote_trow){gid,     v->round,     v->voter, v->declared_vote,
                                         v->vote, v->eliminated};
    }
    for (int i = 0; i < r.n_msgs; i++) {
        const struct bz_beast_msg_row *m = &r.msgs[i];
        struct bz_beast_message_trow *o;
        ADD(o, bz_beast_messages_table);
        o->game_id = gid;
        o->round = m->round;
        o->conversation = m->conv;
        o->index = m->index;
        o->step = m->step;
        o->sender = m->sender;
        o->receiver = m->receiver;
        o->offer = bz_beast_offer_name(m->msg.offer);
        o->amount = m->msg.offer != BZ_BEAST_OFFER_NONE ? m->msg.amount : 0;
        o->accept = (uint8_t)m->msg.accept;
        o->leave = (uint8_t)m->msg.leave;
        o->vote_promise = m->msg.vote_promise;
        o->vote_request = m->msg.vote_request;
        o->fallback = (uint8_t)m->fallback;
    }
    for (int i = 0; r.outcomes && i < g->n; i++) {
        const struct bz_beast_outcome *oc = &r.outcomes[i];
        struct bz_beast_agent_trow *o;
        ADD(o, bz_beast_agents_table);
        o->game_id = gid;
        o->agent = i;
        o->final_wealth = oc->final_wealth;
        o->rank = oc->rank;
        o->elimination_round = oc->elim_round;
        o->promises_made = oc->promises_made;
        o->promises_kept = oc->promises_kept;
        o->promises_kept_share = oc->promises_made ? oc->promises_kept_share : NAN;
        o->invalid_actions = oc->invalid_actions;
    }
    return BZ_OK;
}
#undef ADD

/* ---- the state machine ------------------------------------------------------ */

static int step(struct bz_game *g, int *state, struct bz_err *err)
{
    if (g->done) {
        *state = BZ_STEP_DONE;
        return BZ_OK;
    }
    int n = bz_beast_requests(g->eng, g->rq, g->cap);
    if (n > g->cap)
        return bz_err_set(err, BZ_EINTERNAL, "beast: %d requests exceed the capacity %d", n,
                          g->cap);
    if (n == 0) {
        int rc = write_records(g, err);
        if (rc)
            return rc;
        g->done = 1;
        *state = BZ_STEP_DONE;
        return BZ_OK;
    }
    for (int k = 0; k < g->cap; k++)
        g->slot_idx[k] = -1;
    g->n_rq = n;
    g->base.round = bz_beast_round(g->eng);
    bz_game_ask_phase(g, g->rq[0].kind);
    for (int k = 0; k < n; k++) {
        const struct bz_beast_request *q = &g->rq[k];
        if (q->kind != g->rq[0].kind)
            return bz_err_set(err, BZ_EINTERNAL, "beast: one step asks two kinds of decision");
        g->filled[k] = 0;
        g->text[k] = NULL;
        g->slot_idx[q->agent * g->bc.max_slots + q->slot] = k;
        if (bz_game_ask(g, q->agent, q->slot))
            return bz_err_set(err, BZ_ENOMEM, "beast: out of memory");
    }
    *state = BZ_STEP_DECIDE;
    return BZ_OK;
}

/* A heuristic seat's message as text (communication on): what it carries. */
static const char *render(struct bz_game *g, const struct bz_beast_msg *m)
{
    char buf[256];
    size_t len = 0;
    buf[0] = 0;
#define PUT(...)                                                                                   \
    do {                                                                                           \
        int w_ = snprintf(buf + len, sizeof buf - len, __VA_ARGS__);                               \
        if (w_ > 0 && (size_t)w_ < sizeof buf - len)                                               \
            len += (size_t)w_;                                                                     \
    } while (0)
    if (m->accept)
        PUT("I accept your offer.");
    if (m->offer == BZ_BEAST_OFFER_GIVE)
        PUT("%sI offer you %lld.", len ? " " : "", (long long)m->amount);
    else if (m->offer == BZ_BEAST_OFFER_ASK)
        PUT("%sPay me %lld.", len ? " " : "", (long long)m->amount);
    if (m->vote_promise >= 0)
        PUT("%sI will vote for a%d.", len ? " " : "", m->vote_promise);
    if (m->vote_request >= 0)
        PUT("%sVote for a%d.", len ? " " : "", m->vote_request);
    if (m->leave)
        PUT("%sGoodbye.", len ? " " : "");
#undef PUT
    return len ? bz_records_strdup(g->base.rec, buf) : NULL;
}

static int grow_msg_text(struct bz_game *g, int need)
{
    if (need <= g->cap_msg_text)
        return BZ_OK;
    int cap = g->cap_msg_text ? g->cap_msg_text : 64;
    while (cap < need)
        cap *= 2;
    const char **t = realloc(g->msg_text, (size_t)cap * sizeof *t);
    if (!t)
        return BZ_ENOMEM;
    memset(t + g->cap_msg_text, 0, (size_t)(cap - g->cap_msg_text) * sizeof *t);
    g->msg_text = t;
    g->cap_msg_text = cap;
    return BZ_OK;
}

static void tx_step(struct bz_game *g, const struct bz_beast_records *r, int msg0, int vote0)
{
    FILE *tx = g->base.tx;
    int kind = g->rq[0].kind;
    if (kind == BZ_BEAST_PARTNERS) {
        fprintf(tx, "-- round %d: %d active, prize %lld\n", g->base.round,
                bz_beast_n_active(g->eng), (long long)bz_beast_prize(g->eng));
        for (int k = 0; k < g->n_rq; k++) {
            const struct bz_beast_action *a = &g->act[k];
            fprintf(tx, "   a%d talks to", g->rq[k].agent);
            for (int j = 0; j < a->n_partners; j++)
                fprintf(tx, " a%d", a->partners[j]);
            fputc('\n', tx);
        }
    } else if (kind == BZ_BEAST_MESSAGE) {
        for (int i = msg0; i < r->n_msgs; i++) {
            const struct bz_beast_msg_row *m = &r->msgs[i];
            fprintf(tx, "   c%d #%d a%d->a%d: %s", m->conv, m->index, m->sender, m->receiver,
                    bz_beast_offer_name(m->msg.offer));
            if (m->msg.offer)
                fprintf(tx, " %lld", (long long)m->msg.amount);
            fprintf(tx, "%s%s", m->msg.accept ? " accept" : "", m->msg.leave ? " leave" : "");
            for (int k = 0; m->msg.accept && k < r->n_transfers; k++) {
                const struct bz_beast_transfer_row *t = &r->transfers[k];
                if (t->conv == m->conv && t->msg >= 0 && r->msgs[t->msg].index == m->index - 1)
                    fprintf(tx, t->executed ? " (a%d pays a%d %lld)" : " (a%d cannot pay a%d %lld)",
                            t->payer, t->payee, (long long)t->amount);
            }
            if (g->bc.communication && g->msg_text[i])
                fprintf(tx, " \"%.160s\"", g->msg_text[i]);
            fputc('\n', tx);
        }
    } else if (kind == BZ_BEAST_VOTE) {
        for (int i = vote0; i < r->n_votes; i++)
            fprintf(tx, "   a%d declared a%d, voted a%d\n", r->votes[i].voter,
                    r->votes[i].declared_vote, r->votes[i].vote);
        if (r->n_votes > vote0)
            fprintf(tx, "   eliminated: a%d\n", r->votes[vote0].eliminated);
    }
}

static int apply(struct bz_game *g, struct bz_err *err)
{
    struct bz_beast_records r;
    bz_beast_records(g->eng, &r);
    int msg0 = r.n_msgs, vote0 = r.n_votes;
    int kind = g->rq[0].kind;
    int rc = bz_beast_step(g->eng, g->rq, g->act, g->n_rq, err);
    if (rc)
        return rc;
    bz_beast_records(g->eng, &r);
    if (kind == BZ_BEAST_MESSAGE) {
        if (grow_msg_text(g, r.n_msgs))
            return bz_err_set(err, BZ_ENOMEM, "beast: out of memory");
        for (int i = msg0; i < r.n_msgs; i++) {
            const struct bz_beast_msg_row *m = &r.msgs[i];
            int k = -1;
            for (int q = 0; q < g->n_rq; q++)
                if (g->rq[q].conv == m->conv && g->rq[q].agent == m->sender) {
                    k = q;
                    break;
                }
            const char *text = NULL;
            if (g->bc.communication && !m->fallback) {
                int heuristic = g->base.cfg->agents &&
                                g->base.cfg->agents[m->sender].kind == BZ_AGENT_HEURISTIC;
                text = k >= 0 && g->text[k] ? g->text[k] : heuristic ? render(g, &m->msg) : NULL;
            }
            g->msg_text[i] = text;
            bz_game_message_in(g, BZ_BEAST_PHASE_MESSAGE, m->sender, m->receiver, m->round, m->conv,
                               "private", text);
        }
    }
    if (g->base.tx)
        tx_step(g, &r, msg0, vote0);
    return BZ_OK;
}

static void outcome(const struct bz_game *g, struct bz_game_outcome *out, double *payoff)
{
    struct bz_beast_records r;
    bz_beast_records(g->eng, &r);
    double welfare = 0;
    int made = 0, kept = 0;
    for (int i = 0; i < g->n; i++) {
        double w =
            r.outcomes ? (double)r.outcomes[i].final_wealth : (double)bz_beast_wealth(g->eng, i);
        payoff[i] = w;
        welfare += w;
        if (r.outcomes) {
            made += r.outcomes[i].promises_made;
            kept += r.outcomes[i].promises_kept;
        }
    }
    out->turns_played = r.rounds;
    out->welfare = welfare;
    /* wealth is conserved: the sum is the initial wealth plus the bonuses */
    out->max_welfare = welfare;
    out->efficiency = made ? (double)kept / made : NAN;
    out->n_invalid = g->base.n_invalid;
    out->n_fallback = g->base.n_fallback;
}

/* ---- actions ---------------------------------------------------------------- */

static const char *const why_field[BZ_BEAST_N_WHY] = {
    "",
    "kind: the action does not answer this request",
    "id: not an active player",
    "id: names yourself where another player is needed",
    "partners: the same player twice",
    "partners: more than allowed",
    "offer: expected \"none\", \"give\" or \"ask\"",
    "amount: expected an integer in (0, 1e12] with an offer",
    "accept: there is no open offer from your partner to accept",
    "accept: a message either accepts or makes an offer, not both",
    "leave: a message that makes an offer cannot leave (nobody could answer it)",
};

static int check_action(const struct bz_game *g, const struct bz_request *r, struct bz_err *err)
{
    int k = bz_beast_game_index(g, r);
    if (k < 0)
        return bz_err_set(err, BZ_EINTERNAL, "beast: agent %d slot %d is not asked", r->agent,
                          r->slot);
    if (!g->filled[k])
        return bz_err_set(err, BZ_EINVAL, "no action given");
    int why = bz_beast_check(g->eng, &g->rq[k], &g->act[k]);
    if (why == BZ_BEAST_OK)
        return BZ_OK;
    if (why == BZ_BEAST_TOO_MANY)
        return bz_err_set(err, BZ_EINVAL, "partners: at most %d", g->bc.partners);
    const char *what = why > 0 && why < BZ_BEAST_N_WHY ? why_field[why] : bz_beast_why_name(why);
    const char *field = g->rq[k].kind == BZ_BEAST_PARTNERS  ? "partners"
                        : g->rq[k].kind == BZ_BEAST_DECLARE ? "declared_vote"
                        : g->rq[k].kind == BZ_BEAST_VOTE    ? "vote"
                                                            : "message";
    if (why == BZ_BEAST_BAD_TARGET || why == BZ_BEAST_SELF_TARGET)
        return bz_err_set(err, BZ_EINVAL, "%s: %s", field, what + 4);
    return bz_err_set(err, BZ_EINVAL, "%s", what);
}

static void safe_action(struct bz_game *g, const struct bz_request *r)
{
    int k = bz_beast_game_index(g, r);
    if (k < 0)
        return;
    bz_beast_fallback(g->eng, &g->rq[k], &g->act[k]);
    g->filled[k] = 1;
    g->text[k] = NULL;
}

static int observe(const struct bz_game *g, const struct bz_request *r, struct cJSON *obs,
                   struct bz_err *err)
{
    return bz_beast_game_observe(g, r, obs, err);
}

static struct cJSON *action_schema(const struct bz_game *g, int phase)
{
    return bz_beast_game_schema(g, phase);
}

static int parse_action(struct bz_game *g, const struct bz_request *r, const struct cJSON *reply,
                        struct bz_err *err)
{
    return bz_beast_game_parse(g, r, reply, err);
}

const struct bz_game_ops bz_beast_ops = {
    .name = "beast",
    .params = params,
    .n_params = BZ_BEAST_N_PARAMS,
    .phases = phase_names,
    .n_phases = BZ_BEAST_N_PHASES,
    .policies = policies,
    .n_policies = sizeof policies / sizeof policies[0],
    .tables = tables,
    .n_tables = sizeof tables / sizeof tables[0],
    .check = check,
    .create = create,
    .destroy = destroy,
    .step = step,
    .apply = apply,
    .outcome = outcome,
    .check_action = check_action,
    .safe_action = safe_action,
    .random_action = bz_beast_game_random_action,
    .observe = observe,
    .action_schema = action_schema,
    .parse_action = parse_action,
};

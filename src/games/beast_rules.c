/* beast_rules: the beast game's rules as a state machine (requests -> actions
 * -> step), its admissibility checks, fallback and random actions, and its
 * records. Owns every change of a beast game's state; never does I/O, never
 * draws from an agent's stream on its own account, never allocates after
 * bz_beast_create. */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "games/beast_internal.h"

struct bz_beast {
    struct bz_beast_config cfg;
    uint64_t env_seed;
    int phase, round, n_elim, n_active;
    int talk_step;  /* TALK steps played in this round */
    int round_conv; /* first conversation id of this round */
    int64_t wealth[BZ_BEAST_MAX_AGENTS];
    int active[BZ_BEAST_MAX_AGENTS];
    int elim_round[BZ_BEAST_MAX_AGENTS];
    int64_t r_start[BZ_BEAST_MAX_AGENTS], r_in[BZ_BEAST_MAX_AGENTS], r_out[BZ_BEAST_MAX_AGENTS];
    int invalid[BZ_BEAST_MAX_AGENTS], made[BZ_BEAST_MAX_AGENTS], kept[BZ_BEAST_MAX_AGENTS];
    struct bz_beast_outcome outcome[BZ_BEAST_MAX_AGENTS];
    int done;

    /* capacities, fixed at create */
    int cap_rounds, cap_convs, cap_msgs;
    /* per round: declared[r * n + j] (-2: not yet declared), tally, eliminated */
    int *declared, *tally, *elim_in;
    /* per conversation: whose turn, open offer (transfer row or -1), messages */
    int *speaker, *open, *conv_msg;
    struct bz_beast_conv_row *convs;
    struct bz_beast_msg_row *msgs;
    struct bz_beast_transfer_row *transfers;
    struct bz_beast_vote_row *votes;
    struct bz_beast_wealth_row *wealth_rows;
    int n_convs, n_msgs, n_transfers, n_votes, n_wealth_rows;
};

static const char *const why_names[BZ_BEAST_N_WHY] = {
    "admissible",        "wrong kind",        "bad target",      "self target",
    "duplicate partner", "too many partners", "bad offer kind",  "bad amount",
    "nothing to accept", "accept and offer",  "offer and leave",
};

const char *bz_beast_why_name(int why)
{
    return why >= 0 && why < BZ_BEAST_N_WHY ? why_names[why] : "unknown";
}

void bz_beast_config_default(struct bz_beast_config *c)
{
    c->n_agents = 10;
    c->partners = 3;
    c->exchanges = 5;
    c->eliminations = 5;
    c->bonus_slots = 5;
    c->max_rounds = 5;
    c->communication = 1;
    c->max_slots = 3;
    c->wealth_max = 200000;
    c->bonus = 250000;
}

static int check_range(struct bz_err *err, const char *key, long long v, long long lo, long long hi)
{
    if (v >= lo && v <= hi)
        return BZ_OK;
    return bz_err_set(err, BZ_EINVAL, "beast: %s = %lld, expected an integer in [%lld, %lld]", key,
                      v, lo, hi);
}

int bz_beast_config_check(const struct bz_beast_config *c, struct bz_err *err)
{
    int rc = check_range(err, "n_agents", c->n_agents, 2, BZ_BEAST_MAX_AGENTS);
    if (!rc)
        rc = check_range(err, "partners", c->partners, 0, BZ_BEAST_MAX_PARTNERS);
    if (!rc)
        rc = check_range(err, "exchanges", c->exchanges, 1, 1000);
    if (!rc) /* each round eliminates one and a vote needs two active players */
        rc = check_range(err, "eliminations", c->eliminations, 1, c->n_agents - 1);
    if (!rc)
        rc = check_range(err, "bonus_slots", c->bonus_slots, 0,
                         100000); /* > eliminations: all paid */
    if (!rc)
        rc = check_range(err, "max_rounds", c->max_rounds, 1, 100000);
    if (!rc)
        rc = check_range(err, "communication", c->communication, 0, 1);
    if (!rc)
        rc = check_range(err, "max_slots", c->max_slots, 1, BZ_BEAST_MAX_AGENTS);
    if (!rc)
        rc = check_range(err, "wealth_max", c->wealth_max, 0, BZ_BEAST_MAX_AMOUNT);
    if (!rc)
        rc = check_range(err, "bonus", c->bonus, 0, BZ_BEAST_MAX_AMOUNT);
    return rc;
}

/* ---- the one place the phase changes ---- */

static void set_phase(struct bz_beast *g, int ph)
{
    /* legal moves: PARTNERS->TALK|DECLARE, TALK->DECLARE, DECLARE->VOTE,
     * VOTE->PARTNERS|DONE */
    assert(
        (g->phase == BZ_BEAST_PH_PARTNERS &&
         (ph == BZ_BEAST_PH_TALK || ph == BZ_BEAST_PH_DECLARE)) ||
        (g->phase == BZ_BEAST_PH_TALK && ph == BZ_BEAST_PH_DECLARE) ||
        (g->phase == BZ_BEAST_PH_DECLARE && ph == BZ_BEAST_PH_VOTE) ||
        (g->phase == BZ_BEAST_PH_VOTE && (ph == BZ_BEAST_PH_PARTNERS || ph == BZ_BEAST_PH_DONE)));
    g->phase = ph;
}

/* ---- lifetime ---- */

int bz_beast_create(const struct bz_beast_config *c, uint64_t env_seed, struct bz_beast **out,
                    struct bz_err *err)
{
    *out = NULL;
    int rc = bz_beast_config_check(c, err);
    if (rc)
        return rc;
    struct bz_beast *g = calloc(1, sizeof *g);
    if (!g)
        return bz_err_set(err, BZ_ENOMEM, "beast: out of memory");
    g->cfg = *c;
    int n = c->n_agents;
    g->cap_rounds = c->max_rounds < c->eliminations ? c->max_rounds : c->eliminations;
    int pairs = n * (n - 1) / 2;
    int per_round = n * c->partners < pairs ? n * c->partners : pairs;
    g->cap_convs = g->cap_rounds * per_round;
    g->cap_msgs = g->cap_convs * c->exchanges;
    size_t nr = (size_t)g->cap_rounds, nc = (size_t)g->cap_convs, nm = (size_t)g->cap_msgs;
    g->declared = calloc(nr * (size_t)n, sizeof *g->declared);
    g->tally = calloc(nr * (size_t)n, sizeof *g->tally);
    g->elim_in = calloc(nr, sizeof *g->elim_in);
    g->speaker = calloc(nc + 1, sizeof *g->speaker);
    g->open = calloc(nc + 1, sizeof *g->open);
    g->conv_msg = calloc(nm + 1, sizeof *g->conv_msg);
    g->convs = calloc(nc + 1, sizeof *g->convs);
    g->msgs = calloc(nm + 1, sizeof *g->msgs);
    g->transfers = calloc(nm + 1, sizeof *g->transfers);
    g->votes = calloc(nr * (size_t)n, sizeof *g->votes);
    g->wealth_rows = calloc(nr * (size_t)n, sizeof *g->wealth_rows);
    if (!g->declared || !g->tally || !g->elim_in || !g->speaker || !g->open || !g->conv_msg ||
        !g->convs || !g->msgs || !g->transfers || !g->votes || !g->wealth_rows) {
        bz_beast_destroy(g);
        return bz_err_set(err, BZ_ENOMEM, "beast: out of memory for %d agents", n);
    }
    bz_beast_reset(g, env_seed);
    *out = g;
    return BZ_OK;
}

void bz_beast_destroy(struct bz_beast *g)
{
    if (!g)
        return;
    free(g->wealth_rows);
    free(g->votes);
    free(g->transfers);
    free(g->msgs);
    free(g->convs);
    free(g->conv_msg);
    free(g->open);
    free(g->speaker);
    free(g->elim_in);
    free(g->tally);
    free(g->declared);
    free(g);
}

/* Environment draws are keyed by what they decide, not by their order, so a
 * tie-break in round r is the same draw whatever the lineup did before it
 * (paired comparisons across lineups stay paired). */
enum { ENV_WEALTH = 1, ENV_OPENER, ENV_VOTE_TIE };

static void env_stream(const struct bz_beast *g, uint64_t what, uint64_t a, uint64_t b,
                       struct bz_rng *r)
{
    uint64_t purpose =
        bz_hash_combine(bz_hash_combine(bz_hash_str("beast"), what), bz_hash_combine(a, b));
    bz_rng_init(r, g->env_seed, purpose);
}

static void begin_round(struct bz_beast *g)
{
    int n = g->cfg.n_agents;
    for (int i = 0; i < n; i++) {
        g->r_start[i] = g->wealth[i];
        g->r_in[i] = g->r_out[i] = 0;
        g->declared[g->round * n + i] = -2;
    }
    g->elim_in[g->round] = -1;
    g->talk_step = 0;
    g->round_conv = g->n_convs;
}

void bz_beast_reset(struct bz_beast *g, uint64_t env_seed)
{
    int n = g->cfg.n_agents;
    g->env_seed = env_seed;
    g->phase = BZ_BEAST_PH_PARTNERS;
    g->round = g->n_elim = 0;
    g->n_active = n;
    g->done = 0;
    g->n_convs = g->n_msgs = g->n_transfers = g->n_votes = g->n_wealth_rows = 0;
    struct bz_rng r;
    env_stream(g, ENV_WEALTH, 0, 0, &r);
    for (int i = 0; i < n; i++) {
        g->wealth[i] = (int64_t)bz_rng_below(&r, (uint64_t)g->cfg.wealth_max + 1);
        g->active[i] = 1;
        g->elim_round[i] = -1;
        g->invalid[i] = g->made[i] = g->kept[i] = 0;
    }
    memset(g->tally, 0, (size_t)g->cap_rounds * (size_t)n * sizeof *g->tally);
    begin_round(g);
}

/* ---- reading ---- */

const struct bz_beast_config *bz_beast_cfg(const struct bz_beast *g)
{
    return &g->cfg;
}
int bz_beast_phase(const struct bz_beast *g)
{
    return g->phase;
}
int bz_beast_round(const struct bz_beast *g)
{
    return g->round;
}
int bz_beast_eliminated(const struct bz_beast *g)
{
    return g->n_elim;
}
int bz_beast_n_active(const struct bz_beast *g)
{
    return g->n_active;
}

int bz_beast_active(const struct bz_beast *g, int agent)
{
    return agent >= 0 && agent < g->cfg.n_agents && g->active[agent];
}

int64_t bz_beast_wealth(const struct bz_beast *g, int agent)
{
    return g->wealth[agent];
}

int64_t bz_beast_prize(const struct bz_beast *g)
{
    return g->n_elim < g->cfg.bonus_slots ? g->cfg.bonus : 0;
}

int bz_beast_tally(const struct bz_beast *g, int round, int agent)
{
    if (round < 0 || round >= g->cap_rounds || agent < 0 || agent >= g->cfg.n_agents)
        return 0;
    return g->tally[round * g->cfg.n_agents + agent];
}

int bz_beast_eliminated_in(const struct bz_beast *g, int round)
{
    return round >= 0 && round < g->round ? g->elim_in[round] : -1;
}

int bz_beast_seen_declared(const struct bz_beast *g, int viewer, int round, int j)
{
    if (round < 0 || round > g->round || round >= g->cap_rounds || j < 0 || j >= g->cfg.n_agents)
        return -1;
    int d = g->declared[round * g->cfg.n_agents + j];
    if (d < -1)
        return -1;
    return g->cfg.communication || viewer == j ? d : -1;
}

int bz_beast_seen_promise(const struct bz_beast *g, const struct bz_beast_msg_row *m)
{
    return g->cfg.communication ? m->msg.vote_promise : -1;
}

int bz_beast_seen_request(const struct bz_beast *g, const struct bz_beast_msg_row *m)
{
    return g->cfg.communication ? m->msg.vote_request : -1;
}

const struct bz_beast_conv_row *bz_beast_conv(const struct bz_beast *g, int conv)
{
    return conv >= 0 && conv < g->n_convs ? &g->convs[conv] : NULL;
}

int bz_beast_conv_msgs(const struct bz_beast *g, int conv, const struct bz_beast_msg_row **out,
                       int cap)
{
    if (conv < 0 || conv >= g->n_convs)
        return 0;
    int k = g->convs[conv].n_msgs;
    for (int i = 0; i < k && i < cap; i++)
        out[i] = &g->msgs[g->conv_msg[conv * g->cfg.exchanges + i]];
    return k;
}

const struct bz_beast_transfer_row *bz_beast_open_offer(const struct bz_beast *g, int conv)
{
    if (conv < 0 || conv >= g->n_convs || g->convs[conv].end != BZ_BEAST_END_OPEN)
        return NULL;
    return g->open[conv] >= 0 ? &g->transfers[g->open[conv]] : NULL;
}

void bz_beast_records(const struct bz_beast *g, struct bz_beast_records *out)
{
    out->wealth = g->wealth_rows;
    out->n_wealth = g->n_wealth_rows;
    out->transfers = g->transfers;
    out->n_transfers = g->n_transfers;
    out->votes = g->votes;
    out->n_votes = g->n_votes;
    out->msgs = g->msgs;
    out->n_msgs = g->n_msgs;
    out->convs = g->convs;
    out->n_convs = g->n_convs;
    out->rounds = g->round;
    out->outcomes = g->phase == BZ_BEAST_PH_DONE ? g->outcome : NULL;
}

/* ---- requests ---- */

static int talk_requests(const struct bz_beast *g, struct bz_beast_request *out, int cap)
{
    int used[BZ_BEAST_MAX_AGENTS] = {0};
    int k = 0;
    for (int c = g->round_conv; c < g->n_convs; c++) {
        if (g->convs[c].end != BZ_BEAST_END_OPEN)
            continue;
        int s = g->speaker[c];
        if (used[s] >= g->cfg.max_slots || k >= cap)
            continue;
        out[k++] = (struct bz_beast_request){s, used[s]++, BZ_BEAST_MESSAGE, c};
    }
    return k;
}

int bz_beast_requests(const struct bz_beast *g, struct bz_beast_request *out, int cap)
{
    static const int kind_of[] = {BZ_BEAST_PARTNERS, BZ_BEAST_MESSAGE, BZ_BEAST_DECLARE,
                                  BZ_BEAST_VOTE};
    if (g->phase == BZ_BEAST_PH_DONE)
        return 0;
    if (g->phase == BZ_BEAST_PH_TALK)
        return talk_requests(g, out, cap);
    int k = 0;
    for (int i = 0; i < g->cfg.n_agents && k < cap; i++)
        if (g->active[i])
            out[k++] = (struct bz_beast_request){i, 0, kind_of[g->phase], -1};
    return k;
}

/* ---- admissibility ---- */

static int check_other(const struct bz_beast *g, int self, int j)
{
    if (!bz_beast_active(g, j))
        return BZ_BEAST_BAD_TARGET;
    return j == self ? BZ_BEAST_SELF_TARGET : BZ_BEAST_OK;
}

static int check_partners(const struct bz_beast *g, int self, const struct bz_beast_action *a)
{
    if (a->n_partners < 0 || a->n_partners > g->cfg.partners)
        return BZ_BEAST_TOO_MANY;
    for (int i = 0; i < a->n_partners; i++) {
        int why = check_other(g, self, a->partners[i]);
        if (why)
            return why;
        for (int j = 0; j < i; j++)
            if (a->partners[j] == a->partners[i])
                return BZ_BEAST_DUPLICATE;
    }
    return BZ_BEAST_OK;
}

static int check_msg(const struct bz_beast *g, const struct bz_beast_request *rq,
                     const struct bz_beast_msg *m)
{
    if (m->offer < BZ_BEAST_OFFER_NONE || m->offer > BZ_BEAST_OFFER_ASK)
        return BZ_BEAST_BAD_OFFER;
    if (m->offer != BZ_BEAST_OFFER_NONE && (m->amount <= 0 || m->amount > BZ_BEAST_MAX_AMOUNT))
        return BZ_BEAST_BAD_AMOUNT;
    if (m->accept && !bz_beast_open_offer(g, rq->conv))
        return BZ_BEAST_NOTHING_TO_ACCEPT;
    if (m->accept && m->offer != BZ_BEAST_OFFER_NONE)
        return BZ_BEAST_ACCEPT_AND_OFFER;
    if (m->leave && m->offer != BZ_BEAST_OFFER_NONE)
        return BZ_BEAST_OFFER_AND_LEAVE;
    if (m->vote_promise != -1) {
        int why = check_other(g, rq->agent, m->vote_promise);
        if (why)
            return why;
    }
    const struct bz_beast_conv_row *cv = &g->convs[rq->conv];
    int partner = cv->a == rq->agent ? cv->b : cv->a;
    if (m->vote_request != -1) /* the partner cannot vote for itself */
        return check_other(g, partner, m->vote_request);
    return BZ_BEAST_OK;
}

int bz_beast_check(const struct bz_beast *g, const struct bz_beast_request *rq,
                   const struct bz_beast_action *a)
{
    if (a->kind != rq->kind)
        return BZ_BEAST_WRONG_KIND;
    switch (a->kind) {
    case BZ_BEAST_PARTNERS: return check_partners(g, rq->agent, a);
    case BZ_BEAST_MESSAGE: return check_msg(g, rq, &a->msg);
    case BZ_BEAST_DECLARE:
        return a->target == -1 ? BZ_BEAST_OK : check_other(g, rq->agent, a->target);
    case BZ_BEAST_VOTE: return check_other(g, rq->agent, a->target);
    default: return BZ_BEAST_WRONG_KIND;
    }
}

/* ---- fallback and random actions ---- */

static void blank(struct bz_beast_action *a, int kind)
{
    memset(a, 0, sizeof *a);
    a->kind = kind;
    a->msg.vote_promise = a->msg.vote_request = -1;
    a->target = -1;
}

void bz_beast_fallback(const struct bz_beast *g, const struct bz_beast_request *rq,
                       struct bz_beast_action *a)
{
    blank(a, rq->kind);
    if (rq->kind != BZ_BEAST_VOTE)
        return;
    int n = g->cfg.n_agents;
    for (int d = 1; d < n; d++) {
        int j = (rq->agent + d) % n;
        if (g->active[j]) {
            a->target = j;
            return;
        }
    }
}

/* A uniformly drawn active agent other than `self` and `also` (-1: none). */
static int random_other(const struct bz_beast *g, int self, int also, struct bz_rng *rng)
{
    int cand[BZ_BEAST_MAX_AGENTS], k = 0;
    for (int j = 0; j < g->cfg.n_agents; j++)
        if (g->active[j] && j != self && j != also)
            cand[k++] = j;
    return k ? cand[bz_rng_below(rng, (uint64_t)k)] : -1;
}

static int64_t random_amount(int64_t wealth, struct bz_rng *rng)
{
    return 1 + (int64_t)bz_rng_below(rng, (uint64_t)(wealth > 1 ? wealth : 1));
}

static void random_partners(const struct bz_beast *g, int self, struct bz_rng *rng,
                            struct bz_beast_action *a)
{
    int cand[BZ_BEAST_MAX_AGENTS], k = 0;
    for (int j = 0; j < g->cfg.n_agents; j++)
        if (g->active[j] && j != self)
            cand[k++] = j;
    int most = k < g->cfg.partners ? k : g->cfg.partners;
    int m = (int)bz_rng_below(rng, (uint64_t)most + 1);
    for (int i = 0; i < m; i++) { /* partial Fisher-Yates */
        int r = i + (int)bz_rng_below(rng, (uint64_t)(k - i));
        int t = cand[i];
        cand[i] = cand[r];
        cand[r] = t;
        a->partners[i] = cand[i];
    }
    a->n_partners = m;
}

static void random_msg(const struct bz_beast *g, const struct bz_beast_request *rq,
                       struct bz_rng *rng, struct bz_beast_msg *m)
{
    const struct bz_beast_conv_row *cv = &g->convs[rq->conv];
    int self = rq->agent, partner = cv->a == self ? cv->b : cv->a;
    if (bz_beast_open_offer(g, rq->conv) && bz_rng_below(rng, 2)) {
        m->accept = 1;
        return;
    }
    m->offer = (int)bz_rng_below(rng, 3);
    if (m->offer == BZ_BEAST_OFFER_GIVE)
        m->amount = random_amount(g->wealth[self], rng);
    else if (m->offer == BZ_BEAST_OFFER_ASK)
        m->amount = random_amount(g->wealth[partner], rng);
    else
        m->leave = bz_rng_below(rng, 4) == 0;
    if (bz_rng_below(rng, 2))
        m->vote_promise = random_other(g, self, -1, rng);
    if (bz_rng_below(rng, 2))
        m->vote_request = random_other(g, partner, -1, rng);
}

void bz_beast_random_action(const struct bz_beast *g, const struct bz_beast_request *rq,
                            struct bz_rng *rng, struct bz_beast_action *a)
{
    blank(a, rq->kind);
    switch (rq->kind) {
    case BZ_BEAST_PARTNERS: random_partners(g, rq->agent, rng, a); break;
    case BZ_BEAST_MESSAGE: random_msg(g, rq, rng, &a->msg); break;
    case BZ_BEAST_DECLARE: /* "no statement" is one of the n_active choices */
        a->target = (int)bz_rng_below(rng, (uint64_t)g->n_active) == 0
                        ? -1
                        : random_other(g, rq->agent, -1, rng);
        break;
    case BZ_BEAST_VOTE: a->target = random_other(g, rq->agent, -1, rng); break;
    default: break;
    }
}

/* ---- applying a step ---- */

/* One step's answers, checked: fell[i] marks an inadmissible acts[i]. */
struct step {
    const struct bz_beast_request *rq;
    const struct bz_beast_action *acts;
    const unsigned char *fell;
    int n;
};

/* The action that counts for request i: the agent's, or the fallback in *tmp. */
static const struct bz_beast_action *action_of(const struct bz_beast *g, const struct step *st,
                                               int i, struct bz_beast_action *tmp)
{
    if (!st->fell[i])
        return &st->acts[i];
    bz_beast_fallback(g, &st->rq[i], tmp);
    return tmp;
}

static void apply_partners(struct bz_beast *g, const struct step *st)
{
    int na = g->cfg.n_agents;
    unsigned char picked[BZ_BEAST_MAX_AGENTS][BZ_BEAST_MAX_AGENTS];
    memset(picked, 0, sizeof picked);
    for (int i = 0; i < st->n; i++) {
        struct bz_beast_action tmp;
        const struct bz_beast_action *a = action_of(g, st, i, &tmp);
        for (int k = 0; k < a->n_partners; k++)
            picked[st->rq[i].agent][a->partners[k]] = 1;
    }
    for (int a = 0; a < na; a++)
        for (int b = a + 1; b < na; b++) {
            int by = picked[a][b] | picked[b][a] << 1;
            if (!by)
                continue;
            int c = g->n_convs++;
            int opener = by == 1 ? a : b;
            if (by == 3) { /* both picked: the environment decides */
                struct bz_rng r;
                env_stream(g, ENV_OPENER, (uint64_t)g->round, (uint64_t)(a * na + b), &r);
                opener = bz_rng_below(&r, 2) ? b : a;
            }
            g->convs[c] =
                (struct bz_beast_conv_row){g->round, c, a, b, opener, by, 0, BZ_BEAST_END_OPEN};
            g->speaker[c] = opener;
            g->open[c] = -1;
        }
    set_phase(g, g->n_convs > g->round_conv ? BZ_BEAST_PH_TALK : BZ_BEAST_PH_DECLARE);
}

/* Resolve the partner's open offer in conversation c given this message. */
static void resolve_offer(struct bz_beast *g, int c, const struct bz_beast_msg *m)
{
    int t = g->open[c];
    if (t < 0)
        return;
    g->open[c] = -1;
    struct bz_beast_transfer_row *tr = &g->transfers[t];
    if (!m->accept)
        return; /* stays NOT_ACCEPTED */
    tr->accepted = 1;
    g->made[tr->payer]++;
    if (g->wealth[tr->payer] < tr->amount) {
        tr->why_not = BZ_BEAST_CANNOT_AFFORD;
        return;
    }
    g->kept[tr->payer]++;
    tr->executed = 1;
    tr->why_not = BZ_BEAST_EXECUTED;
    g->wealth[tr->payer] -= tr->amount;
    g->wealth[tr->payee] += tr->amount;
    g->r_out[tr->payer] += tr->amount;
    g->r_in[tr->payee] += tr->amount;
    g->convs[c].end = BZ_BEAST_END_TRANSFER; /* the first executed transfer ends it */
}

static void apply_msg(struct bz_beast *g, const struct bz_beast_request *rq,
                      const struct bz_beast_msg *m, int fallback)
{
    int c = rq->conv, self = rq->agent;
    struct bz_beast_conv_row *cv = &g->convs[c];
    int partner = cv->a == self ? cv->b : cv->a;
    int mi = g->n_msgs++;
    g->msgs[mi] = (struct bz_beast_msg_row){g->round, c,  cv->n_msgs, g->talk_step, self,
                                            partner,  *m, -1,         fallback};
    g->conv_msg[c * g->cfg.exchanges + cv->n_msgs] = mi;
    cv->n_msgs++;
    resolve_offer(g, c, m);
    if (cv->end == BZ_BEAST_END_OPEN && m->offer != BZ_BEAST_OFFER_NONE) {
        int give = m->offer == BZ_BEAST_OFFER_GIVE;
        int t = g->n_transfers++;
        g->transfers[t] = (struct bz_beast_transfer_row){g->round,
                                                         c,
                                                         give ? self : partner,
                                                         give ? partner : self,
                                                         m->amount,
                                                         give,
                                                         0,
                                                         0,
                                                         BZ_BEAST_NOT_ACCEPTED,
                                                         mi};
        g->msgs[mi].transfer = t;
        g->open[c] = t;
    }
    if (cv->end == BZ_BEAST_END_OPEN && m->leave)
        cv->end = BZ_BEAST_END_LEFT;
    else if (cv->end == BZ_BEAST_END_OPEN && cv->n_msgs >= g->cfg.exchanges)
        cv->end = BZ_BEAST_END_EXCHANGES;
    if (cv->end != BZ_BEAST_END_OPEN)
        g->open[c] = -1; /* an offer left unanswered stays NOT_ACCEPTED */
    g->speaker[c] = partner;
}

static int talk_open(const struct bz_beast *g)
{
    for (int c = g->round_conv; c < g->n_convs; c++)
        if (g->convs[c].end == BZ_BEAST_END_OPEN)
            return 1;
    return 0;
}

static void finish_game(struct bz_beast *g)
{
    int n = g->cfg.n_agents;
    for (int i = 0; i < n; i++) {
        struct bz_beast_outcome *o = &g->outcome[i];
        o->final_wealth = g->wealth[i];
        o->rank = 1;
        for (int j = 0; j < n; j++)
            o->rank += g->wealth[j] > g->wealth[i];
        o->elim_round = g->elim_round[i];
        o->promises_made = g->made[i];
        o->promises_kept = g->kept[i];
        o->promises_kept_share = g->made[i] ? (double)g->kept[i] / g->made[i] : NAN;
        o->invalid_actions = g->invalid[i];
    }
    g->done = 1;
    set_phase(g, BZ_BEAST_PH_DONE);
}

/* Count the votes, eliminate the most voted (ties: the environment), pay the
 * bonus, write the round's rows and move on. */
static void apply_votes(struct bz_beast *g, const struct step *st)
{
    int n = g->cfg.n_agents, r = g->round, k = st->n;
    int *tally = &g->tally[r * n];
    int vote[BZ_BEAST_MAX_AGENTS];
    for (int i = 0; i < k; i++) {
        struct bz_beast_action tmp;
        vote[i] = action_of(g, st, i, &tmp)->target;
        tally[vote[i]]++;
    }
    int best = 0, cand[BZ_BEAST_MAX_AGENTS] = {-1}, nc = 0;
    for (int j = 0; j < n; j++) {
        if (tally[j] > best) {
            best = tally[j];
            nc = 0;
        }
        if (tally[j] == best && best > 0)
            cand[nc++] = j;
    }
    int e = cand[0];
    assert(e >= 0); /* a VOTE step has at least two voters */
    if (nc > 1) {
        struct bz_rng rr;
        env_stream(g, ENV_VOTE_TIE, (uint64_t)r, 0, &rr);
        e = cand[bz_rng_below(&rr, (uint64_t)nc)];
    }
    int64_t bonus = bz_beast_prize(g);
    g->active[e] = 0;
    g->n_active--;
    g->elim_round[e] = r;
    g->elim_in[r] = e;
    g->n_elim++;
    g->wealth[e] += bonus;
    for (int i = 0; i < k; i++) {
        int v = st->rq[i].agent, d = g->declared[r * n + v];
        g->votes[g->n_votes++] = (struct bz_beast_vote_row){r, v, d, vote[i], e};
        if (d >= 0) {
            g->made[v]++;
            g->kept[v] += d == vote[i];
        }
    }
    for (int i = 0; i < n; i++)
        g->wealth_rows[g->n_wealth_rows++] = (struct bz_beast_wealth_row){r,
                                                                          i,
                                                                          g->r_start[i],
                                                                          g->r_in[i],
                                                                          g->r_out[i],
                                                                          i == e ? bonus : 0,
                                                                          g->wealth[i],
                                                                          g->active[i]};
    g->round++;
    if (g->n_elim >= g->cfg.eliminations || g->round >= g->cfg.max_rounds || g->n_active < 2) {
        finish_game(g);
        return;
    }
    set_phase(g, BZ_BEAST_PH_PARTNERS);
    begin_round(g);
}

static int same_requests(const struct bz_beast *g, const struct bz_beast_request *rq, int n)
{
    struct bz_beast_request now[BZ_BEAST_MAX_REQUESTS];
    int k = bz_beast_requests(g, now, BZ_BEAST_MAX_REQUESTS);
    if (k != n)
        return 0;
    for (int i = 0; i < n; i++)
        if (now[i].agent != rq[i].agent || now[i].slot != rq[i].slot || now[i].kind != rq[i].kind ||
            now[i].conv != rq[i].conv)
            return 0;
    return 1;
}

int bz_beast_step(struct bz_beast *g, const struct bz_beast_request *rq,
                  const struct bz_beast_action *acts, int n, struct bz_err *err)
{
    if (g->phase == BZ_BEAST_PH_DONE)
        return bz_err_set(err, BZ_EINVAL, "beast: step after the game ended");
    if (!same_requests(g, rq, n))
        return bz_err_set(err, BZ_EINVAL,
                          "beast: %d actions do not answer the current requests (round %d, "
                          "phase %d)",
                          n, g->round, g->phase);
    /* Every check sees the state at the start of the step: decisions of one
     * step are simultaneous; they are applied in request order. */
    unsigned char fell[BZ_BEAST_MAX_REQUESTS];
    for (int i = 0; i < n; i++) {
        fell[i] = bz_beast_check(g, &rq[i], &acts[i]) != BZ_BEAST_OK;
        g->invalid[rq[i].agent] += fell[i];
    }
    struct step st = {rq, acts, fell, n};
    switch (g->phase) {
    case BZ_BEAST_PH_PARTNERS: apply_partners(g, &st); break;
    case BZ_BEAST_PH_TALK:
        for (int i = 0; i < n; i++) {
            struct bz_beast_action tmp;
            apply_msg(g, &rq[i], &action_of(g, &st, i, &tmp)->msg, fell[i]);
        }
        g->talk_step++;
        if (!talk_open(g))
            set_phase(g, BZ_BEAST_PH_DECLARE);
        break;
    case BZ_BEAST_PH_DECLARE:
        for (int i = 0; i < n; i++) {
            struct bz_beast_action tmp;
            g->declared[g->round * g->cfg.n_agents + rq[i].agent] =
                action_of(g, &st, i, &tmp)->target;
        }
        set_phase(g, BZ_BEAST_PH_VOTE);
        break;
    case BZ_BEAST_PH_VOTE: apply_votes(g, &st); break;
    default: return bz_err_set(err, BZ_EINTERNAL, "beast: bad phase %d", g->phase);
    }
    return BZ_OK;
}

/* beast_policies: the beast game's heuristic policies (loyal, mercenary, zi,
 * bully) as pure decision functions over the engine state and the agent's
 * private memory. Reads only what the acting agent may see (public wealth and
 * tallies, its own conversations and transfers, promises and declarations as
 * bz_beast_seen_* show them); never changes the game, never allocates.
 *
 * The game-theoretic reading every policy shares: a vote for X is a gift of
 * the bonus to X while bonus slots remain (bz_beast_prize > 0; elimination
 * never costs wealth), and a removal of X from further deals once they are
 * used up. Everybody wants votes; a vote given to someone already richer
 * than the giver (or who stays poorer even with the bonus) costs the giver no
 * rank. The "vote against the richest outsider" is that harmless gift.
 *
 * Where communication matters: vote promises and requests in messages and
 * the declared votes reach the partner only with communication on.
 *  - loyal agents propose (vote_request) the alliance's poorest member and
 *    adopt poorer members their allies propose, so with communication the
 *    alliance converges on one target per round; without it each votes on
 *    its own view and votes split. Loyal trusts those whose declarations
 *    matched its own, who declared for it without the tally belying them, or
 *    who paid it; declarations are unseen without communication, so only
 *    payments build trust then;
 *  - the mercenary buys a vote (accepts an ask) only when the ask comes with
 *    a visible promise of a vote for it from a seller it trusts: without
 *    communication it never buys;
 * so switching communication off changes transfers, votes and outcomes. */
#include <string.h>

#include "games/beast_internal.h"

static const char *const policy_names[BZ_BEAST_N_POLICIES] = {"loyal", "mercenary", "zi", "bully"};

int bz_beast_policy_parse(const char *name)
{
    for (int p = 0; p < BZ_BEAST_N_POLICIES; p++)
        if (name && strcmp(name, policy_names[p]) == 0)
            return p;
    return -1;
}

const char *bz_beast_policy_name(int policy)
{
    return policy >= 0 && policy < BZ_BEAST_N_POLICIES ? policy_names[policy] : "unknown";
}

void bz_beast_mem_init(struct bz_beast_mem *m, int self, int policy)
{
    memset(m, 0, sizeof *m);
    m->self = self;
    m->policy = policy;
}

/* ---- what an agent sees ---- */

static int partner_in(const struct bz_beast *g, int conv, int self)
{
    const struct bz_beast_conv_row *cv = bz_beast_conv(g, conv);
    return cv->a == self ? cv->b : cv->a;
}

/* Executed transfers of `round` from j to self, summed per payer into paid[]. */
static void paid_to(const struct bz_beast *g, int round, int self, int64_t *paid)
{
    struct bz_beast_records rec;
    bz_beast_records(g, &rec);
    memset(paid, 0, sizeof(int64_t) * (size_t)bz_beast_cfg(g)->n_agents);
    for (int t = rec.n_transfers - 1; t >= 0 && rec.transfers[t].round >= round; t--)
        if (rec.transfers[t].round == round && rec.transfers[t].executed &&
            rec.transfers[t].payee == self)
            paid[rec.transfers[t].payer] += rec.transfers[t].amount;
}

/* promised[j] = 1 if j visibly promised self a vote in a message of `round`. */
static void promised_to(const struct bz_beast *g, int round, int self, unsigned char *promised)
{
    struct bz_beast_records rec;
    bz_beast_records(g, &rec);
    memset(promised, 0, (size_t)bz_beast_cfg(g)->n_agents);
    for (int i = rec.n_msgs - 1; i >= 0 && rec.msgs[i].round >= round; i--)
        if (rec.msgs[i].round == round && rec.msgs[i].receiver == self &&
            bz_beast_seen_promise(g, &rec.msgs[i]) == self)
            promised[rec.msgs[i].sender] = 1;
}

/* refused[j] = 1 if j did not accept self's ask in `round`; paid counts too. */
static void refused_asks(const struct bz_beast *g, int round, int self, unsigned char *refused)
{
    struct bz_beast_records rec;
    bz_beast_records(g, &rec);
    memset(refused, 0, (size_t)bz_beast_cfg(g)->n_agents);
    for (int t = rec.n_transfers - 1; t >= 0 && rec.transfers[t].round >= round; t--) {
        const struct bz_beast_transfer_row *tr = &rec.transfers[t];
        if (tr->round == round && tr->payee == self && !tr->offered_by_payer && !tr->accepted)
            refused[tr->payer] = 1;
    }
}

/* The richest active agent other than self for which ok[j] (NULL: any), or -1. */
static int richest(const struct bz_beast *g, int self, const unsigned char *ok)
{
    int best = -1;
    for (int j = 0; j < bz_beast_cfg(g)->n_agents; j++)
        if (j != self && bz_beast_active(g, j) && (!ok || ok[j]) &&
            (best < 0 || bz_beast_wealth(g, j) > bz_beast_wealth(g, best)))
            best = j;
    return best;
}

/* Giving j the prize leaves self's rank against j unchanged. */
static int harmless_gift(const struct bz_beast *g, int self, int j)
{
    int64_t ws = bz_beast_wealth(g, self), wj = bz_beast_wealth(g, j);
    return wj >= ws || wj + bz_beast_prize(g) < ws;
}

/* ---- memory: learn from the last round's public results ---- */

static void observe_round(const struct bz_beast *g, struct bz_beast_mem *m, int r)
{
    int n = bz_beast_cfg(g)->n_agents, self = m->self;
    int64_t paid[BZ_BEAST_MAX_AGENTS];
    unsigned char promised[BZ_BEAST_MAX_AGENTS], refused[BZ_BEAST_MAX_AGENTS];
    paid_to(g, r, self, paid);
    promised_to(g, r, self, promised);
    refused_asks(g, r, self, refused);
    int n_prom = 0, mine = bz_beast_seen_declared(g, self, r, self);
    for (int j = 0; j < n; j++) {
        if (bz_beast_seen_declared(g, self, r, j) == self && j != self)
            promised[j] = 1;
        n_prom += promised[j];
    }
    /* the tally is public: if fewer votes came than were promised, someone
     * lied, and all promisers share the blame (votes are secret) */
    int held = bz_beast_tally(g, r, self) >= n_prom;
    for (int j = 0; j < n; j++) {
        if (j == self)
            continue;
        if (promised[j])
            m->trust[j] += held ? 2 : -2;
        if (paid[j] > 0) {
            m->trust[j] += 1;
            m->sold_to[j]++;
        }
        if (mine >= 0 && bz_beast_seen_declared(g, self, r, j) == mine)
            m->trust[j] += 1;
        if (refused[j])
            m->grudge[j]++;
        else if (paid[j] > 0 && m->grudge[j] > 0)
            m->grudge[j]--;
    }
}

static void mem_sync(const struct bz_beast *g, struct bz_beast_mem *m)
{
    while (m->round < bz_beast_round(g)) {
        observe_round(g, m, m->round);
        m->round++;
    }
}

/* ---- shared pieces ---- */

/* Fill a->partners with up to `partners` active others, best score first;
 * equal scores in a random order from rng. */
static void pick_by_score(const struct bz_beast *g, int self, const int64_t *score,
                          struct bz_rng *rng, struct bz_beast_action *a)
{
    int cand[BZ_BEAST_MAX_AGENTS], k = 0;
    for (int j = 0; j < bz_beast_cfg(g)->n_agents; j++)
        if (j != self && bz_beast_active(g, j))
            cand[k++] = j;
    for (int i = k - 1; i > 0; i--) { /* shuffle, then a stable insertion sort */
        int r = (int)bz_rng_below(rng, (uint64_t)i + 1), t = cand[i];
        cand[i] = cand[r];
        cand[r] = t;
    }
    for (int i = 1; i < k; i++)
        for (int j = i; j > 0 && score[cand[j]] > score[cand[j - 1]]; j--) {
            int t = cand[j];
            cand[j] = cand[j - 1];
            cand[j - 1] = t;
        }
    a->n_partners = k < bz_beast_cfg(g)->partners ? k : bz_beast_cfg(g)->partners;
    memcpy(a->partners, cand, sizeof(int) * (size_t)a->n_partners);
}

static int sent_in(const struct bz_beast *g, int conv, int self)
{
    const struct bz_beast_msg_row *ms[1024];
    int k = bz_beast_conv_msgs(g, conv, ms, 1024);
    for (int i = 0; i < k && i < 1024; i++)
        if (ms[i]->sender == self)
            return 1;
    return 0;
}

/* The partner's open offer's message, for reading its promise. */
static const struct bz_beast_msg_row *offer_msg(const struct bz_beast *g,
                                                const struct bz_beast_transfer_row *t)
{
    struct bz_beast_records rec;
    bz_beast_records(g, &rec);
    return &rec.msgs[t->msg];
}

/* Accept a gift always; accept an ask when it buys a visible promise of a vote
 * for self, from someone whose promises the tallies have not belied, at no
 * more than a tenth of the prize and a quarter of one's wealth (a vote is
 * worth a share of the prize: about one in n_active voters decides). */
static int worth_accepting(const struct bz_beast *g, const struct bz_beast_mem *mem,
                           const struct bz_beast_transfer_row *t)
{
    int self = mem->self;
    if (t->payee == self)
        return 1;
    const struct bz_beast_msg_row *m = offer_msg(g, t);
    return bz_beast_seen_promise(g, m) == self && mem->trust[t->payee] >= 1 &&
           t->amount <= bz_beast_prize(g) / 20 && t->amount <= bz_beast_wealth(g, self) / 4;
}

/* ---- loyal ----
 * The alliance gives the bonus to its members poorest first. Each loyal
 * proposes (vote_request) the poorest member it knows of, itself included,
 * and adopts any poorer member an ally proposes to it: over a round's
 * messages the proposals converge on the alliance's poorest member (a gossip
 * minimum). With communication off nobody hears proposals and each loyal
 * falls back on its own view of the alliance, so votes split. It declares
 * whom it will vote for and always votes so. */

/* ally[j]: j is active, not self, and trusted (or, before any trust exists,
 * anyone: round 0 has to start the alliance somewhere). */
static void loyal_allies(const struct bz_beast *g, const struct bz_beast_mem *m,
                         unsigned char *ally)
{
    int n = bz_beast_cfg(g)->n_agents, any = 0;
    for (int j = 0; j < n; j++)
        any |= m->trust[j] != 0;
    for (int j = 0; j < n; j++)
        ally[j] = (m->trust[j] >= 1 || !any) && j != m->self && bz_beast_active(g, j);
}

static int poorer(const struct bz_beast *g, int a, int b)
{
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    int64_t wa = bz_beast_wealth(g, a), wb = bz_beast_wealth(g, b);
    return wb < wa || (wb == wa && b < a) ? b : a;
}

/* The poorest alliance member self knows of: its own view (allies and self)
 * and what allies proposed to it this round; `second` gets the poorest other
 * than self among the same (-1 if none). */
static int loyal_best(const struct bz_beast *g, const struct bz_beast_mem *m, int *second)
{
    unsigned char ally[BZ_BEAST_MAX_AGENTS], member[BZ_BEAST_MAX_AGENTS];
    loyal_allies(g, m, ally);
    int n = bz_beast_cfg(g)->n_agents, r = bz_beast_round(g);
    memcpy(member, ally, (size_t)n);
    struct bz_beast_records rec;
    bz_beast_records(g, &rec);
    for (int i = rec.n_msgs - 1; i >= 0 && rec.msgs[i].round == r; i--) {
        const struct bz_beast_msg_row *ms = &rec.msgs[i];
        int x = bz_beast_seen_request(g, ms);
        if (ms->receiver == m->self && ally[ms->sender] && bz_beast_active(g, x))
            member[x] = 1;
    }
    int best = m->self, other = -1;
    for (int j = 0; j < n; j++)
        if (member[j] && j != m->self && bz_beast_active(g, j)) {
            best = poorer(g, best, j);
            other = poorer(g, other, j);
        }
    *second = other;
    return best;
}

/* Whom loyal will vote for: the alliance's poorest member, or the next if
 * that is itself; the richest outsider without allies or once the bonus is
 * gone (the harmless gift, then the removal of the strongest rival). */
static int loyal_intent(const struct bz_beast *g, const struct bz_beast_mem *m)
{
    unsigned char ally[BZ_BEAST_MAX_AGENTS], outsider[BZ_BEAST_MAX_AGENTS];
    loyal_allies(g, m, ally);
    for (int j = 0; j < bz_beast_cfg(g)->n_agents; j++)
        outsider[j] = !ally[j];
    int second, best = loyal_best(g, m, &second), t = -1;
    if (bz_beast_prize(g) > 0)
        t = best != m->self ? best : second;
    if (t < 0)
        t = richest(g, m->self, outsider);
    if (t < 0)
        t = richest(g, m->self, NULL);
    return t;
}

/* The proposal self last sent in conv, or -2 if it has not spoken there. */
static int last_proposal(const struct bz_beast *g, int conv, int self)
{
    const struct bz_beast_msg_row *ms[1024];
    int k = bz_beast_conv_msgs(g, conv, ms, 1024), last = -2;
    for (int i = 0; i < k && i < 1024; i++)
        if (ms[i]->sender == self)
            last = ms[i]->msg.vote_request;
    return last;
}

static void loyal_act(const struct bz_beast *g, const struct bz_beast_request *rq,
                      struct bz_beast_mem *m, struct bz_rng *rng, struct bz_beast_action *a)
{
    int self = rq->agent;
    switch (rq->kind) {
    case BZ_BEAST_PARTNERS: {
        int64_t score[BZ_BEAST_MAX_AGENTS];
        for (int j = 0; j < bz_beast_cfg(g)->n_agents; j++)
            score[j] = m->trust[j];
        pick_by_score(g, self, score, rng, a);
        break;
    }
    case BZ_BEAST_MESSAGE: {
        const struct bz_beast_transfer_row *t = bz_beast_open_offer(g, rq->conv);
        int p = partner_in(g, rq->conv, self), second;
        unsigned char ally[BZ_BEAST_MAX_AGENTS];
        loyal_allies(g, m, ally);
        int best = loyal_best(g, m, &second);
        if (t && (t->payee == self ||
                  (ally[p] && m->trust[p] >= 1 && t->amount <= bz_beast_wealth(g, self) / 20))) {
            a->msg.accept = 1; /* gifts, and small dues to proven allies; never buys votes */
        } else if (bz_beast_prize(g) > 0 && last_proposal(g, rq->conv, self) != best && best != p) {
            a->msg.vote_request = best; /* "let us all vote for best" */
        } else {
            a->msg.leave = 1;
        }
        break;
    }
    case BZ_BEAST_DECLARE: a->target = loyal_intent(g, m); break;
    case BZ_BEAST_VOTE: { /* keeps its word */
        int d = bz_beast_seen_declared(g, self, bz_beast_round(g), self);
        a->target = bz_beast_active(g, d) && d != self ? d : loyal_intent(g, m);
        break;
    }
    default: break;
    }
}

/* ---- mercenary ---- */

static int top_payer(const struct bz_beast *g, int self)
{
    int64_t paid[BZ_BEAST_MAX_AGENTS];
    paid_to(g, bz_beast_round(g), self, paid);
    int best = -1;
    for (int j = 0; j < bz_beast_cfg(g)->n_agents; j++)
        if (paid[j] > 0 && bz_beast_active(g, j) && (best < 0 || paid[j] > paid[best]))
            best = j;
    return best;
}

static void mercenary_act(const struct bz_beast *g, const struct bz_beast_request *rq,
                          struct bz_beast_mem *m, struct bz_rng *rng, struct bz_beast_action *a)
{
    int self = rq->agent;
    switch (rq->kind) {
    case BZ_BEAST_PARTNERS: { /* the rich can pay; past buyers come back */
        int64_t score[BZ_BEAST_MAX_AGENTS];
        for (int j = 0; j < bz_beast_cfg(g)->n_agents; j++)
            score[j] = bz_beast_wealth(g, j) + 100000 * (int64_t)m->sold_to[j];
        pick_by_score(g, self, score, rng, a);
        break;
    }
    case BZ_BEAST_MESSAGE: {
        const struct bz_beast_transfer_row *t = bz_beast_open_offer(g, rq->conv);
        int p = partner_in(g, rq->conv, self);
        if (t && worth_accepting(g, m, t)) {
            a->msg.accept = 1;
        } else if (!sent_in(g, rq->conv, self)) { /* "pay me and I vote for you" */
            int64_t price = bz_beast_wealth(g, p) / 10, cap = bz_beast_prize(g) / 10;
            price = price < cap ? price : cap;
            a->msg.offer = BZ_BEAST_OFFER_ASK;
            a->msg.amount = price > 0 ? price : 1;
            a->msg.vote_promise = p;
            a->msg.vote_request = self;
        } else {
            a->msg.leave = 1;
        }
        break;
    }
    case BZ_BEAST_DECLARE: {
        int b = top_payer(g, self);
        a->target = b >= 0 ? b : richest(g, self, NULL);
        break;
    }
    case BZ_BEAST_VOTE: { /* pays its top buyer unless the gift would cost it rank */
        int b = top_payer(g, self);
        if (b >= 0 && harmless_gift(g, self, b)) {
            a->target = b;
            break;
        }
        unsigned char ok[BZ_BEAST_MAX_AGENTS];
        for (int j = 0; j < bz_beast_cfg(g)->n_agents; j++)
            ok[j] = harmless_gift(g, self, j);
        a->target = richest(g, self, ok);
        if (a->target < 0)
            a->target = b >= 0 ? b : richest(g, self, NULL);
        break;
    }
    default: break;
    }
}

/* ---- bully ---- */

static void bully_act(const struct bz_beast *g, const struct bz_beast_request *rq,
                      struct bz_beast_mem *m, struct bz_rng *rng, struct bz_beast_action *a)
{
    int self = rq->agent, n = bz_beast_cfg(g)->n_agents;
    switch (rq->kind) {
    case BZ_BEAST_PARTNERS: {
        int64_t score[BZ_BEAST_MAX_AGENTS];
        for (int j = 0; j < n; j++)
            score[j] = bz_beast_wealth(g, j);
        pick_by_score(g, self, score, rng, a);
        break;
    }
    case BZ_BEAST_MESSAGE: {
        const struct bz_beast_transfer_row *t = bz_beast_open_offer(g, rq->conv);
        int p = partner_in(g, rq->conv, self);
        if (t && t->payee == self) {
            a->msg.accept = 1;                    /* never pays, always takes */
        } else if (!sent_in(g, rq->conv, self)) { /* protection money, more for old refusers */
            int64_t w = bz_beast_wealth(g, p), demand = w / 5 * (1 + m->grudge[p]);
            demand = demand < w ? demand : w;
            a->msg.offer = BZ_BEAST_OFFER_ASK;
            a->msg.amount = demand > 0 ? demand : 1;
            a->msg.vote_promise = bz_beast_prize(g) > 0 ? p : -1;
        } else {
            a->msg.leave = 1;
        }
        break;
    }
    case BZ_BEAST_DECLARE:
    case BZ_BEAST_VOTE: { /* declares what it does: a threat must be credible */
        unsigned char refused[BZ_BEAST_MAX_AGENTS], ok[BZ_BEAST_MAX_AGENTS];
        refused_asks(g, bz_beast_round(g), self, refused);
        int b = top_payer(g, self);
        if (bz_beast_prize(g) > 0) { /* protection: the bonus to payers, never to refusers */
            for (int j = 0; j < n; j++)
                ok[j] = !refused[j] && m->grudge[j] == 0;
            a->target = b >= 0 ? b : richest(g, self, ok);
        } else { /* no bonus left: removing refusers is the punishment */
            for (int j = 0; j < n; j++)
                ok[j] = refused[j] || m->grudge[j] > 0;
            a->target = richest(g, self, ok);
        }
        if (a->target < 0)
            a->target = richest(g, self, NULL);
        break;
    }
    default: break;
    }
}

/* ---- zi ----
 * Gode and Sunder's zero intelligence: skill 0 plays ZI-U (the game's random
 * admissible action), the reasoned action is ZI-C, random within a budget
 * that rules out a trade at a loss. Here a loss is wealth paid away or rank
 * given away: zi never offers to give, never accepts an ask (it never pays),
 * and gives its declared vote and its vote only as a harmless gift (to
 * someone already richer, or who stays poorer even with the prize). All else
 * is drawn as bz_beast_random_action draws it: partners, asks of 1..the
 * partner's wealth, taking a gift on a coin flip, promises and requests. */

static int zi_other(const struct bz_beast *g, int self, int harmless, struct bz_rng *rng)
{
    int cand[BZ_BEAST_MAX_AGENTS], k = 0;
    for (int j = 0; j < bz_beast_cfg(g)->n_agents; j++)
        if (j != self && bz_beast_active(g, j) && (!harmless || harmless_gift(g, self, j)))
            cand[k++] = j;
    if (k == 0 && harmless) /* nobody is a harmless gift: any other */
        return zi_other(g, self, 0, rng);
    return k ? cand[bz_rng_below(rng, (uint64_t)k)] : -1;
}

static void zi_act(const struct bz_beast *g, const struct bz_beast_request *rq, struct bz_rng *rng,
                   struct bz_beast_action *a)
{
    int self = rq->agent;
    switch (rq->kind) {
    case BZ_BEAST_MESSAGE: {
        const struct bz_beast_transfer_row *t = bz_beast_open_offer(g, rq->conv);
        int p = partner_in(g, rq->conv, self);
        if (t && t->payee == self && bz_rng_below(rng, 2)) {
            a->msg.accept = 1;
            break;
        }
        if (bz_rng_below(rng, 2)) {
            int64_t w = bz_beast_wealth(g, p);
            a->msg.offer = BZ_BEAST_OFFER_ASK;
            a->msg.amount = 1 + (int64_t)bz_rng_below(rng, (uint64_t)(w > 1 ? w : 1));
        } else {
            a->msg.leave = bz_rng_below(rng, 4) == 0;
        }
        if (bz_rng_below(rng, 2))
            a->msg.vote_promise = zi_other(g, self, 0, rng);
        if (bz_rng_below(rng, 2))
            a->msg.vote_request = zi_other(g, p, 0, rng);
        break;
    }
    case BZ_BEAST_DECLARE:
        a->target =
            bz_rng_below(rng, (uint64_t)bz_beast_n_active(g)) == 0 ? -1 : zi_other(g, self, 1, rng);
        break;
    case BZ_BEAST_VOTE: a->target = zi_other(g, self, 1, rng); break;
    default: bz_beast_random_action(g, rq, rng, a); break; /* partners: any are harmless */
    }
}

/* ---- entry points ---- */

void bz_beast_policy_act(const struct bz_beast *g, const struct bz_beast_request *rq,
                         struct bz_beast_mem *mem, struct bz_rng *rng, struct bz_beast_action *a)
{
    mem_sync(g, mem);
    memset(a, 0, sizeof *a);
    a->kind = rq->kind;
    a->msg.vote_promise = a->msg.vote_request = -1;
    a->target = -1;
    switch (mem->policy) {
    case BZ_BEAST_LOYAL: loyal_act(g, rq, mem, rng, a); break;
    case BZ_BEAST_MERCENARY: mercenary_act(g, rq, mem, rng, a); break;
    case BZ_BEAST_BULLY: bully_act(g, rq, mem, rng, a); break;
    case BZ_BEAST_ZI: zi_act(g, rq, rng, a); break;
    default: bz_beast_fallback(g, rq, a); break;
    }
}

void bz_beast_heuristic_act(const struct bz_beast *g, const struct bz_beast_request *rq,
                            struct bz_beast_mem *mem, double skill, struct bz_rng *rng,
                            struct bz_beast_action *a)
{
    if (skill >= 1 || bz_rng_uniform(rng) < skill)
        bz_beast_policy_act(g, rq, mem, rng, a);
    else {
        mem_sync(g, mem);
        bz_beast_random_action(g, rq, rng, a);
    }
}

/* beast_internal: the beast game's rules engine (src/games/beast_rules.c) and
 * heuristic policies (src/games/beast_policies.c), plain C11 with no I/O, no
 * JSON and no HDF5: the platform adapter maps requests, actions and record
 * rows onto its own types. Nothing but the adapter, the tests and the bench
 * should include it.
 *
 * The engine is a state machine. Each step it lists decision requests keyed by
 * (agent, slot); the caller fills one action per request and applies them all
 * at once with bz_beast_step. Phases of a round: PARTNERS (one request per
 * active agent) -> TALK (one or more steps; a request per open conversation
 * whose turn it is, at most max_slots per agent per step) -> DECLARE (one per
 * active agent) -> VOTE (one per active agent) -> next round or DONE.
 *
 * Randomness: the engine draws only from the environment seed it is given
 * (wealth, who opens a conversation picked by both, vote ties), each draw from
 * a stream keyed by what it decides (round, pair), so a tie in round r is
 * broken the same way whatever the lineup did before; agents' random actions
 * and heuristics draw from a stream the caller passes.
 *
 * Rules as decided here (the issue leaves them open):
 *  - rounds are 0-based; conversation ids are global within a game, in order
 *    of creation: per round, pairs (a < b) in lexicographic order;
 *  - the opener is the agent who picked; if both picked, the environment;
 *  - a TALK step asks each open conversation's next speaker once; an agent
 *    answers at most max_slots conversations per step (slots 0..max_slots-1
 *    in conversation order), the others wait for the next step; decisions of
 *    one step see the state at its start and apply in request order, so a
 *    transfer executed earlier in the step can make a later one unaffordable;
 *  - an offer (GIVE: the sender pays; ASK: the receiver pays) is open for the
 *    receiver's next message only; accepting it executes it at once if the
 *    payer's wealth covers it, else it is recorded "cannot afford" and the
 *    talk goes on; a message either accepts or offers, and may leave (end the
 *    conversation) unless it offers; every offer is a transfer row;
 *  - the declaration (DECLARE) comes after all talk and before the vote; it
 *    is asked also with communication off (recorded as the stated intent) but
 *    then nobody else sees it, nor the promises/requests in messages;
 *  - the eliminated player gets bz_beast_prize() (the bonus while fewer than
 *    bonus_slots were eliminated) and never acts again; a tally tie among the
 *    most voted is drawn uniformly from the environment;
 *  - rank = 1 + number of strictly richer agents (ties share a rank);
 *  - promises: each non-(-1) declaration (kept if the vote equals it) and each
 *    accepted transfer, counted for its payer (kept if executed).
 *
 * What the adapter must do: per step call bz_beast_requests, send one
 * decision per (agent, slot) (an LLM gets its observation from the bz_beast_*
 * readers below, which hide what the agent may not see), check replies with
 * bz_beast_check (its reason names what is wrong for the repair prompt), fill
 * heuristic seats with bz_beast_heuristic_act, then bz_beast_step with the
 * whole list; after DONE turn bz_beast_records into /beast/wealth,
 * /beast/transfers, /beast/votes, /messages (round, conv, index, sender,
 * receiver; text lives in the adapter) and /agents (outcomes). */
#ifndef BAZAAR_BEAST_INTERNAL_H
#define BAZAAR_BEAST_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "bazaar/err.h"
#include "bazaar/rng.h"

#define BZ_BEAST_MAX_AGENTS 64   /* pairwise talk is O(n^2): beast is a small game */
#define BZ_BEAST_MAX_PARTNERS 16 /* cap on the `partners` parameter */
/* requests in one step never exceed this (a TALK step has at most one per
 * open conversation, and a round at most n_agents * partners of those) */
#define BZ_BEAST_MAX_REQUESTS (BZ_BEAST_MAX_AGENTS * BZ_BEAST_MAX_PARTNERS)
#define BZ_BEAST_MAX_AMOUNT ((int64_t)1000000000000) /* admissible offer bound */

/* Parameters; bz_beast_config_default gives the original game's values. */
struct bz_beast_config {
    int n_agents;       /* 10 */
    int partners;       /* 3: picks per agent per round */
    int exchanges;      /* 5: messages per conversation at most */
    int eliminations;   /* 5: the game ends after this many */
    int bonus_slots;    /* 5: the first bonus_slots eliminated get the bonus */
    int max_rounds;     /* 5: also ends the game (one elimination per round) */
    int communication;  /* 1: 0 hides vote promises/requests and declared votes */
    int max_slots;      /* 3: requests per agent per TALK step (the platform's slots) */
    int64_t wealth_max; /* 200000: wealth drawn uniformly from [0, wealth_max] */
    int64_t bonus;      /* 250000 */
};

enum bz_beast_phase {
    BZ_BEAST_PH_PARTNERS,
    BZ_BEAST_PH_TALK,
    BZ_BEAST_PH_DECLARE,
    BZ_BEAST_PH_VOTE,
    BZ_BEAST_PH_DONE
};

/* Decision kinds: one per phase that asks for something. */
enum bz_beast_kind { BZ_BEAST_PARTNERS, BZ_BEAST_MESSAGE, BZ_BEAST_DECLARE, BZ_BEAST_VOTE };

enum bz_beast_offer {
    BZ_BEAST_OFFER_NONE,
    BZ_BEAST_OFFER_GIVE, /* sender pays amount to the receiver if accepted */
    BZ_BEAST_OFFER_ASK   /* sender asks the receiver to pay amount */
};

/* Why an action is inadmissible (0: admissible). */
enum bz_beast_why {
    BZ_BEAST_OK = 0,
    BZ_BEAST_WRONG_KIND,        /* action kind differs from the request's */
    BZ_BEAST_BAD_TARGET,        /* not an agent id, or not active */
    BZ_BEAST_SELF_TARGET,       /* names the acting agent where another is needed */
    BZ_BEAST_DUPLICATE,         /* the same partner twice */
    BZ_BEAST_TOO_MANY,          /* more partners than `partners` */
    BZ_BEAST_BAD_OFFER,         /* unknown offer kind */
    BZ_BEAST_BAD_AMOUNT,        /* offer amount not in (0, BZ_BEAST_MAX_AMOUNT] */
    BZ_BEAST_NOTHING_TO_ACCEPT, /* accept without an open offer from the partner */
    BZ_BEAST_ACCEPT_AND_OFFER,  /* a message either accepts or makes an offer */
    BZ_BEAST_OFFER_AND_LEAVE,   /* an offer nobody can answer */
    BZ_BEAST_N_WHY
};

/* Why a recorded transfer was not executed. */
enum bz_beast_why_not { BZ_BEAST_EXECUTED = 0, BZ_BEAST_NOT_ACCEPTED, BZ_BEAST_CANNOT_AFFORD };

/* How a conversation ended. */
enum bz_beast_end {
    BZ_BEAST_END_OPEN = 0,
    BZ_BEAST_END_EXCHANGES,
    BZ_BEAST_END_TRANSFER,
    BZ_BEAST_END_LEFT
};

struct bz_beast_request {
    int agent;
    int slot; /* 0 outside TALK; in TALK 0..max_slots-1, unique per agent per step */
    int kind; /* enum bz_beast_kind */
    int conv; /* global conversation id for MESSAGE, else -1 */
};

/* One message in a conversation. vote_promise ("I will vote for X") and
 * vote_request ("vote for X") are cheap talk: with communication off the
 * engine records them but the partner sees -1 (bz_beast_seen_promise). */
struct bz_beast_msg {
    int offer;      /* enum bz_beast_offer */
    int64_t amount; /* > 0 when offer != NONE */
    int accept;     /* 1: accept the partner's offer made in its last message */
    int leave;      /* 1: end the conversation after this message */
    int vote_promise;
    int vote_request;
};

struct bz_beast_action {
    int kind; /* enum bz_beast_kind; must match the request */
    int n_partners;
    int partners[BZ_BEAST_MAX_PARTNERS]; /* PARTNERS */
    struct bz_beast_msg msg;             /* MESSAGE */
    int target; /* DECLARE: -1 (no statement) or an active other; VOTE: an active other */
};

/* ---- record rows (the adapter turns these arrays into tables) ---- */

struct bz_beast_wealth_row { /* one per round per agent, eliminated included */
    int round, agent;
    int64_t wealth_start, transfers_in, transfers_out, bonus, wealth_end;
    int active; /* still in the game at the end of the round */
};

struct bz_beast_transfer_row { /* one per offer made (GIVE or ASK) */
    int round, conv, payer, payee;
    int64_t amount;
    int offered_by_payer; /* 1: GIVE by the payer; 0: ASK by the payee */
    int accepted;         /* the receiver accepted in its next message */
    int executed;
    int why_not; /* enum bz_beast_why_not */
    int msg;     /* index of the offering message in the message rows */
};

struct bz_beast_vote_row { /* one per active voter per round */
    int round, voter, declared_vote, vote, eliminated;
};

struct bz_beast_msg_row {
    int round, conv, index; /* index within the conversation, 0 = opener's first */
    int step;               /* TALK step of the round in which it was sent */
    int sender, receiver;
    struct bz_beast_msg msg; /* as sent (promises kept even with communication off) */
    int transfer;            /* transfer row made by this message's offer, or -1 */
    int fallback;            /* the sender's action was inadmissible; the fallback ran */
};

struct bz_beast_conv_row {
    int round, conv, a, b; /* a < b */
    int opener;
    int picked_by; /* 1: a picked b, 2: b picked a, 3: both */
    int n_msgs;
    int end; /* enum bz_beast_end */
};

struct bz_beast_outcome { /* per agent, filled when the game is DONE */
    int64_t final_wealth;
    int rank;       /* 1 + number of agents strictly richer */
    int elim_round; /* -1 if never eliminated */
    int promises_made, promises_kept;
    double promises_kept_share; /* kept / made; NaN when none were made */
    int invalid_actions;        /* actions replaced by the fallback */
};

struct bz_beast; /* opaque game state */

/* ---- configuration ---- */
void bz_beast_config_default(struct bz_beast_config *c);
/* BZ_OK or BZ_EINVAL with a message naming the parameter and its range. */
int bz_beast_config_check(const struct bz_beast_config *c, struct bz_err *err);

/* ---- lifetime ---- */
/* Allocate a game for `c` (checked) and start it from env_seed. On success
 * *out is owned by the caller: free with bz_beast_destroy. On failure *out is
 * NULL and err says why (BZ_EINVAL, BZ_ENOMEM). */
int bz_beast_create(const struct bz_beast_config *c, uint64_t env_seed, struct bz_beast **out,
                    struct bz_err *err);
void bz_beast_destroy(struct bz_beast *g); /* accepts NULL */
/* Restart the game from env_seed with the same config; allocates nothing. */
void bz_beast_reset(struct bz_beast *g, uint64_t env_seed);

/* ---- the state machine ---- */
/* The requests of the current step, written to out[0..n) (n <= cap; cap >=
 * BZ_BEAST_MAX_REQUESTS always suffices). Returns n (0 when DONE). Calling it
 * again without a step returns the same list. */
int bz_beast_requests(const struct bz_beast *g, struct bz_beast_request *out, int cap);
/* Admissibility of `a` for request `rq` in the current state: BZ_BEAST_OK or
 * the reason (enum bz_beast_why). Never changes the state. */
int bz_beast_check(const struct bz_beast *g, const struct bz_beast_request *rq,
                   const struct bz_beast_action *a);
const char *bz_beast_why_name(int why);
/* The safe action: no partners; an empty message; no declaration; a vote for
 * the next active agent after the voter (cyclic). Always admissible; draws
 * nothing. */
void bz_beast_fallback(const struct bz_beast *g, const struct bz_beast_request *rq,
                       struct bz_beast_action *a);
/* A uniformly random admissible action drawn from `rng` (the agent's stream). */
void bz_beast_random_action(const struct bz_beast *g, const struct bz_beast_request *rq,
                            struct bz_rng *rng, struct bz_beast_action *a);
/* Apply acts[i] for rq[i], i < n, where rq is exactly the list the last
 * bz_beast_requests returned. An inadmissible action is replaced by the
 * fallback and counted against its agent. BZ_EINVAL (state unchanged) when
 * the requests do not match the current step. */
int bz_beast_step(struct bz_beast *g, const struct bz_beast_request *rq,
                  const struct bz_beast_action *acts, int n, struct bz_err *err);

/* ---- reading the state (what any agent may see unless said) ---- */
const struct bz_beast_config *bz_beast_cfg(const struct bz_beast *g);
int bz_beast_phase(const struct bz_beast *g);
int bz_beast_round(const struct bz_beast *g);      /* 0-based */
int bz_beast_eliminated(const struct bz_beast *g); /* eliminations so far */
int bz_beast_n_active(const struct bz_beast *g);
int bz_beast_active(const struct bz_beast *g, int agent);
int64_t bz_beast_wealth(const struct bz_beast *g, int agent);
/* The bonus the next eliminated player receives (0 once the slots are used). */
int64_t bz_beast_prize(const struct bz_beast *g);
/* Votes `agent` received in `round` (the public tally); 0 for unplayed rounds. */
int bz_beast_tally(const struct bz_beast *g, int round, int agent);
/* Who was eliminated in `round`, or -1. */
int bz_beast_eliminated_in(const struct bz_beast *g, int round);
/* j's declared vote of the current round (or of round r for past rounds) as
 * `viewer` sees it: the declaration with communication on or viewer == j,
 * -1 otherwise (and -1 before the DECLARE phase is applied). */
int bz_beast_seen_declared(const struct bz_beast *g, int viewer, int round, int j);
/* A message's vote_promise / vote_request as its receiver sees them. */
int bz_beast_seen_promise(const struct bz_beast *g, const struct bz_beast_msg_row *m);
int bz_beast_seen_request(const struct bz_beast *g, const struct bz_beast_msg_row *m);
/* Conversation `conv` (global id): its row and its messages so far. */
const struct bz_beast_conv_row *bz_beast_conv(const struct bz_beast *g, int conv);
int bz_beast_conv_msgs(const struct bz_beast *g, int conv, const struct bz_beast_msg_row **out,
                       int cap);
/* The partner's open offer in `conv` (the transfer row it made), or NULL. */
const struct bz_beast_transfer_row *bz_beast_open_offer(const struct bz_beast *g, int conv);

/* ---- records (valid while g lives; rows of the current game only) ---- */
struct bz_beast_records {
    const struct bz_beast_wealth_row *wealth;
    int n_wealth;
    const struct bz_beast_transfer_row *transfers;
    int n_transfers;
    const struct bz_beast_vote_row *votes;
    int n_votes;
    const struct bz_beast_msg_row *msgs;
    int n_msgs;
    const struct bz_beast_conv_row *convs;
    int n_convs;
    int rounds;                              /* rounds played */
    const struct bz_beast_outcome *outcomes; /* n_agents, NULL until DONE */
};
void bz_beast_records(const struct bz_beast *g, struct bz_beast_records *out);

/* ---- heuristic policies (src/games/beast_policies.c) ---- */
enum bz_beast_policy {
    BZ_BEAST_LOYAL,
    BZ_BEAST_MERCENARY,
    BZ_BEAST_ZI,
    BZ_BEAST_BULLY,
    BZ_BEAST_N_POLICIES
};

/* An agent's private memory: what it learnt in earlier rounds. Caller-owned,
 * fixed size; bz_beast_mem_init before the game; the act functions update it
 * (lazily, on the first decision of each round, from the public results of
 * the previous round and what the agent itself saw). */
struct bz_beast_mem {
    int self;
    int policy;
    int round;                        /* rounds before this one are learnt */
    int trust[BZ_BEAST_MAX_AGENTS];   /* loyal, mercenary: kept/matched declarations, payments */
    int grudge[BZ_BEAST_MAX_AGENTS];  /* bully: refused demands so far */
    int sold_to[BZ_BEAST_MAX_AGENTS]; /* mercenary: rounds in which j paid it */
};

/* Parse "loyal", "mercenary", "zi", "bully": the enum, or -1. */
int bz_beast_policy_parse(const char *name);
const char *bz_beast_policy_name(int policy);
void bz_beast_mem_init(struct bz_beast_mem *m, int self, int policy);
/* The policy's reasoned action for rq (admissible: the tests check every one).
 * Draws from rng for zi (ZI-C: random but never paying, votes only as
 * harmless gifts) and to break ties among equally ranked partners. */
void bz_beast_policy_act(const struct bz_beast *g, const struct bz_beast_request *rq,
                         struct bz_beast_mem *mem, struct bz_rng *rng, struct bz_beast_action *a);
/* Skill mix: with probability skill the reasoned action, else
 * bz_beast_random_action (one uniform draw first unless skill >= 1). */
void bz_beast_heuristic_act(const struct bz_beast *g, const struct bz_beast_request *rq,
                            struct bz_beast_mem *mem, double skill, struct bz_rng *rng,
                            struct bz_beast_action *a);

#endif

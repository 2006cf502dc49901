/* beast_llm: what an LLM player sees of the beast game and how its replies
 * are read: the observation (public: players' wealth and status, past tallies,
 * the conversation so far, seen declarations; private: own wealth, own
 * declarations and votes, promises made to and by it, its transfers; meta:
 * round, phase, conversation id), the reply schema of each phase and parsing
 * a reply into the request's action slot. What an agent may not see (others'
 * votes, promises and text with communication off, conversations it is not
 * in) is never added: the engine's bz_beast_seen_* readers decide. The
 * admissibility check stays with the engine (beast.c). Never does I/O. */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "games/beast_game.h"

const char *bz_beast_offer_name(int offer)
{
    return offer == BZ_BEAST_OFFER_GIVE ? "give" : offer == BZ_BEAST_OFFER_ASK ? "ask" : "none";
}

/* One message as `viewer` (a party of the conversation) sees it. */
static void add_msg(const struct bz_game *g, cJSON *arr, const struct bz_beast_msg_row *m,
                    int viewer, const struct bz_beast_msg_row *base)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return;
    cJSON_AddItemToArray(arr, o);
    cJSON_AddNumberToObject(o, "index", m->index);
    cJSON_AddNumberToObject(o, "from", m->sender);
    cJSON_AddStringToObject(o, "offer", bz_beast_offer_name(m->msg.offer));
    cJSON_AddNumberToObject(o, "amount", m->msg.offer ? (double)m->msg.amount : 0);
    cJSON_AddBoolToObject(o, "accept", m->msg.accept);
    cJSON_AddBoolToObject(o, "leave", m->msg.leave);
    if (g->bc.communication) {
        int own = m->sender == viewer;
        cJSON_AddNumberToObject(o, "vote_promise",
                                own ? m->msg.vote_promise : bz_beast_seen_promise(g->eng, m));
        cJSON_AddNumberToObject(o, "vote_request",
                                own ? m->msg.vote_request : bz_beast_seen_request(g->eng, m));
        long i = (long)(m - base);
        const char *text = i >= 0 && i < g->cap_msg_text ? g->msg_text[i] : NULL;
        cJSON_AddStringToObject(o, "text", text ? text : "");
    }
}

/* Conversation conv as `self` sees it (self is one of its two parties). */
/* An array name in parent of the declarations self has seen in round q,
 * [{agent, declared_vote}], leaving out agent skip (-1: none). */
static void add_declared(const struct bz_game *g, cJSON *parent, const char *name, int self, int q,
                         int skip)
{
    cJSON *dec = cJSON_AddArrayToObject(parent, name);
    for (int j = 0; dec && j < g->n; j++) {
        int d = j == skip ? -1 : bz_beast_seen_declared(g->eng, self, q, j);
        if (d < 0)
            continue;
        cJSON *t = cJSON_CreateObject();
        if (!t)
            break;
        cJSON_AddItemToArray(dec, t);
        cJSON_AddNumberToObject(t, "agent", j);
        cJSON_AddNumberToObject(t, "declared_vote", d);
    }
}

static cJSON *conv_object(const struct bz_game *g, int conv, int self)
{
    const struct bz_beast_conv_row *c = bz_beast_conv(g->eng, conv);
    cJSON *o = cJSON_CreateObject();
    if (!c || !o)
        return o;
    struct bz_beast_records r;
    bz_beast_records(g->eng, &r);
    int partner = c->a == self ? c->b : c->a;
    cJSON_AddNumberToObject(o, "id", conv);
    cJSON_AddNumberToObject(o, "partner", partner);
    cJSON_AddBoolToObject(o, "you_opened", c->opener == self);
    cJSON_AddNumberToObject(o, "messages_left", g->bc.exchanges - c->n_msgs);
    const struct bz_beast_msg_row *ms[1000];
    int k = bz_beast_conv_msgs(g->eng, conv, ms, 1000);
    cJSON *arr = cJSON_AddArrayToObject(o, "messages");
    for (int i = 0; arr && i < k && i < 1000; i++)
        add_msg(g, arr, ms[i], self, r.msgs);
    const struct bz_beast_transfer_row *t = bz_beast_open_offer(g->eng, conv);
    int from_partner = 0;
    if (t && t->msg >= 0 && t->msg < r.n_msgs)
        from_partner = r.msgs[t->msg].sender == partner;
    if (t && from_partner) {
        cJSON *off = cJSON_AddObjectToObject(o, "open_offer");
        if (off) {
            cJSON_AddStringToObject(off, "you_would", t->payer == self ? "pay" : "receive");
            cJSON_AddNumberToObject(off, "amount", (double)t->amount);
        }
    } else {
        cJSON_AddNullToObject(o, "open_offer");
    }
    return o;
}

int bz_beast_game_observe(const struct bz_game *g, const struct bz_request *r, cJSON *obs,
                          struct bz_err *err)
{
    int self = r->agent;
    if (self < 0 || self >= g->n)
        return bz_err_set(err, BZ_EINVAL, "observe: agent %d out of range", self);
    int k = bz_beast_game_index(g, r);
    int kind = k >= 0 ? g->rq[k].kind : g->base.phase;
    int conv = k >= 0 && kind == BZ_BEAST_MESSAGE ? g->rq[k].conv : -1;
    int round = bz_beast_round(g->eng);
    cJSON *pub = cJSON_AddObjectToObject(obs, "public");
    cJSON *priv = cJSON_AddObjectToObject(obs, "private");
    cJSON *meta = cJSON_AddObjectToObject(obs, "meta");
    if (!pub || !priv || !meta)
        return bz_err_set(err, BZ_ENOMEM, "observe: out of memory");
    struct bz_beast_records rec;
    bz_beast_records(g->eng, &rec);

    cJSON_AddStringToObject(meta, "game", "beast");
    cJSON_AddStringToObject(meta, "phase",
                            kind >= 0 && kind < BZ_BEAST_N_PHASES ? bz_beast_ops.phases[kind] : "");
    cJSON_AddNumberToObject(meta, "agent", self);
    cJSON_AddNumberToObject(meta, "n_agents", g->n);
    cJSON_AddNumberToObject(meta, "turn", round);
    cJSON_AddNumberToObject(meta, "round", round);
    cJSON_AddNumberToObject(meta, "max_rounds", g->bc.max_rounds);
    cJSON_AddNumberToObject(meta, "eliminations", g->bc.eliminations);
    cJSON_AddNumberToObject(meta, "partners", g->bc.partners);
    cJSON_AddNumberToObject(meta, "exchanges", g->bc.exchanges);
    cJSON_AddNumberToObject(meta, "conversation", conv);
    cJSON_AddNumberToObject(meta, "slot", r->slot);
    cJSON_AddBoolToObject(meta, "communication", g->bc.communication);

    cJSON_AddNumberToObject(pub, "active_players", bz_beast_n_active(g->eng));
    cJSON_AddNumberToObject(pub, "eliminated_so_far", bz_beast_eliminated(g->eng));
    cJSON_AddNumberToObject(pub, "prize", (double)bz_beast_prize(g->eng));
    cJSON_AddNumberToObject(pub, "bonus", (double)g->bc.bonus);
    cJSON_AddNumberToObject(pub, "bonus_slots", g->bc.bonus_slots);
    cJSON *players = cJSON_AddArrayToObject(pub, "players");
    for (int j = 0; players && j < g->n; j++) {
        cJSON *o = cJSON_CreateObject();
        if (!o)
            break;
        cJSON_AddItemToArray(players, o);
        cJSON_AddNumberToObject(o, "agent", j);
        cJSON_AddBoolToObject(o, "you", j == self);
        cJSON_AddBoolToObject(o, "active", bz_beast_active(g->eng, j));
        cJSON_AddNumberToObject(o, "wealth", (double)bz_beast_wealth(g->eng, j));
        int er = -1;
        for (int q = 0; q < round; q++)
            if (bz_beast_eliminated_in(g->eng, q) == j)
                er = q;
        cJSON_AddNumberToObject(o, "eliminated_in_round", er);
    }
    cJSON *past = cJSON_AddArrayToObject(pub, "past_rounds");
    for (int q = 0; past && q < round; q++) {
        cJSON *o = cJSON_CreateObject();
        if (!o)
            break;
        cJSON_AddItemToArray(past, o);
        cJSON_AddNumberToObject(o, "round", q);
        cJSON_AddNumberToObject(o, "eliminated", bz_beast_eliminated_in(g->eng, q));
        cJSON *tally = cJSON_AddArrayToObject(o, "tally");
        for (int j = 0; tally && j < g->n; j++) {
            int v = bz_beast_tally(g->eng, q, j);
            if (!v)
                continue;
            cJSON *t = cJSON_CreateObject();
            if (!t)
                break;
            cJSON_AddItemToArray(tally, t);
            cJSON_AddNumberToObject(t, "agent", j);
            cJSON_AddNumberToObject(t, "votes", v);
        }
        if (g->bc.communication) {
            add_declared(g, o, "declared", self, q, -1);
        }
    }
    if (kind == BZ_BEAST_VOTE && g->bc.communication) {
        add_declared(g, pub, "declared_this_round", self, round, self);
    }
    if (conv >= 0) {
        cJSON *c = conv_object(g, conv, self);
        if (c)
            cJSON_AddItemToObject(pub, "conversation", c);
    } else {
        /* the round's conversations this player was in (after talk) */
        cJSON *convs = cJSON_AddArrayToObject(pub, "conversations");
        for (int i = 0; convs && i < rec.n_convs; i++) {
            const struct bz_beast_conv_row *c = &rec.convs[i];
            if (c->round != round || (c->a != self && c->b != self))
                continue;
            cJSON *o = conv_object(g, c->conv, self);
            if (o)
                cJSON_AddItemToArray(convs, o);
        }
    }

    cJSON_AddNumberToObject(priv, "wealth", (double)bz_beast_wealth(g->eng, self));
    if (kind == BZ_BEAST_VOTE) {
        int d = bz_beast_seen_declared(g->eng, self, round, self);
        cJSON_AddNumberToObject(priv, "your_declared_vote", d);
    }
    cJSON *votes = cJSON_AddArrayToObject(priv, "your_votes");
    for (int i = 0; votes && i < rec.n_votes; i++) {
        const struct bz_beast_vote_row *v = &rec.votes[i];
        if (v->voter != self)
            continue;
        cJSON *o = cJSON_CreateObject();
        if (!o)
            break;
        cJSON_AddItemToArray(votes, o);
        cJSON_AddNumberToObject(o, "round", v->round);
        cJSON_AddNumberToObject(o, "declared_vote", v->declared_vote);
        cJSON_AddNumberToObject(o, "vote", v->vote);
    }
    /* promises are cheap talk: empty with communication off */
    cJSON *to_you = cJSON_AddArrayToObject(priv, "promises_to_you");
    cJSON *by_you = cJSON_AddArrayToObject(priv, "your_promises");
    for (int i = 0; g->bc.communication && to_you && by_you && i < rec.n_msgs; i++) {
        const struct bz_beast_msg_row *m = &rec.msgs[i];
        int p = -1, q = -1;
        cJSON *arr = NULL;
        if (m->receiver == self) {
            p = bz_beast_seen_promise(g->eng, m);
            q = bz_beast_seen_request(g->eng, m);
            arr = to_you;
        } else if (m->sender == self) {
            p = m->msg.vote_promise;
            q = m->msg.vote_request;
            arr = by_you;
        }
        if (!arr || (p < 0 && q < 0))
            continue;
        cJSON *o = cJSON_CreateObject();
        if (!o)
            break;
        cJSON_AddItemToArray(arr, o);
        cJSON_AddNumberToObject(o, "round", m->round);
        cJSON_AddNumberToObject(o, m->receiver == self ? "from" : "to",
                                m->receiver == self ? m->sender : m->receiver);
        cJSON_AddNumberToObject(o, "vote_promise", p);
        cJSON_AddNumberToObject(o, "vote_request", q);
    }
    cJSON *tr = cJSON_AddArrayToObject(priv, "your_transfers");
    for (int i = 0; tr && i < rec.n_transfers; i++) {
        const struct bz_beast_transfer_row *t = &rec.transfers[i];
        if (!t->executed || (t->payer != self && t->payee != self))
            continue;
        cJSON *o = cJSON_CreateObject();
        if (!o)
            break;
        cJSON_AddItemToArray(tr, o);
        cJSON_AddNumberToObject(o, "round", t->round);
        cJSON_AddNumberToObject(o, "payer", t->payer);
        cJSON_AddNumberToObject(o, "payee", t->payee);
        cJSON_AddNumberToObject(o, "amount", (double)t->amount);
    }
    return BZ_OK;
}

/* ---- schemas ---------------------------------------------------------------- */

static cJSON *prop(cJSON *props, const char *name, const char *type)
{
    cJSON *p = cJSON_AddObjectToObject(props, name);
    if (p)
        cJSON_AddStringToObject(p, "type", type);
    return p;
}

static cJSON *int_prop(cJSON *props, const char *name, double min, double max)
{
    cJSON *p = prop(props, name, "integer");
    if (p) {
        cJSON_AddNumberToObject(p, "minimum", min);
        cJSON_AddNumberToObject(p, "maximum", max);
    }
    return p;
}

cJSON *bz_beast_game_schema(const struct bz_game *g, int phase)
{
    static const char *const offers[] = {"none", "give", "ask"};
    cJSON *s = cJSON_CreateObject();
    if (!s)
        return NULL;
    cJSON_AddStringToObject(s, "type", "object");
    cJSON_AddFalseToObject(s, "additionalProperties");
    cJSON *req = cJSON_AddArrayToObject(s, "required");
    cJSON *props = cJSON_AddObjectToObject(s, "properties");
    if (!req || !props)
        goto fail;
    int n = g->n, comm = g->bc.communication;
    switch (phase) {
    case BZ_BEAST_PHASE_PARTNERS: {
        cJSON *p = prop(props, "partners", "array");
        if (!p)
            goto fail;
        cJSON_AddNumberToObject(p, "maxItems", g->bc.partners);
        cJSON *items = cJSON_AddObjectToObject(p, "items");
        if (!items)
            goto fail;
        cJSON_AddStringToObject(items, "type", "integer");
        cJSON_AddNumberToObject(items, "minimum", 0);
        cJSON_AddNumberToObject(items, "maximum", n - 1);
        cJSON_AddItemToArray(req, cJSON_CreateString("partners"));
        break;
    }
    case BZ_BEAST_PHASE_MESSAGE: {
        cJSON *o = prop(props, "offer", "string");
        if (!o)
            goto fail;
        cJSON_AddItemToObject(o, "enum", cJSON_CreateStringArray(offers, 3));
        int_prop(props, "amount", 0, (double)BZ_BEAST_MAX_AMOUNT);
        prop(props, "accept", "boolean");
        prop(props, "leave", "boolean");
        const char *names[] = {"offer",        "amount",       "accept", "leave",
                               "vote_promise", "vote_request", "message"};
        int nr = 4;
        if (comm) {
            int_prop(props, "vote_promise", -1, n - 1);
            int_prop(props, "vote_request", -1, n - 1);
            cJSON *m = prop(props, "message", "string");
            if (m)
                cJSON_AddNumberToObject(m, "maxLength", BZ_BEAST_TEXT_MAX);
            nr = 7;
        }
        for (int i = 0; i < nr; i++)
            cJSON_AddItemToArray(req, cJSON_CreateString(names[i]));
        break;
    }
    case BZ_BEAST_PHASE_DECLARE:
        int_prop(props, "declared_vote", -1, n - 1);
        cJSON_AddItemToArray(req, cJSON_CreateString("declared_vote"));
        break;
    case BZ_BEAST_PHASE_VOTE:
        int_prop(props, "vote", 0, n - 1);
        cJSON_AddItemToArray(req, cJSON_CreateString("vote"));
        break;
    default: goto fail;
    }
    return s;
fail:
    cJSON_Delete(s);
    return NULL;
}

/* ---- parsing ---------------------------------------------------------------- */

static int get_int(const cJSON *reply, const char *name, int64_t dflt, int64_t *out,
                   struct bz_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(reply, name);
    if (!v) {
        *out = dflt;
        return BZ_OK;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
        fabs(v->valuedouble) > 1e15)
        return bz_err_set(err, BZ_EINVAL, "%s: expected an integer", name);
    *out = (int64_t)v->valuedouble;
    return BZ_OK;
}

int bz_beast_game_parse(struct bz_game *g, const struct bz_request *r, const cJSON *reply,
                        struct bz_err *err)
{
    int k = bz_beast_game_index(g, r);
    if (k < 0)
        return bz_err_set(err, BZ_EINVAL, "agent %d slot %d is not asked", r->agent, r->slot);
    struct bz_beast_action a;
    memset(&a, 0, sizeof a);
    a.kind = g->rq[k].kind;
    a.target = -1;
    a.msg.vote_promise = a.msg.vote_request = -1;
    const char *text = NULL;
    int64_t v = 0;
    int rc;
    switch (a.kind) {
    case BZ_BEAST_PARTNERS: {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(reply, "partners");
        if (!cJSON_IsArray(p))
            return bz_err_set(err, BZ_EINVAL, "partners: expected an array of player ids");
        const cJSON *it;
        cJSON_ArrayForEach(it, p)
        {
            if (a.n_partners >= BZ_BEAST_MAX_PARTNERS || a.n_partners >= g->bc.partners)
                return bz_err_set(err, BZ_EINVAL, "partners: at most %d", g->bc.partners);
            if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) ||
                it->valuedouble < 0 || it->valuedouble >= g->n)
                return bz_err_set(err, BZ_EINVAL, "partners: %g is not a player id (0..%d)",
                                  cJSON_IsNumber(it) ? it->valuedouble : -1.0, g->n - 1);
            a.partners[a.n_partners++] = (int)it->valuedouble;
        }
        break;
    }
    case BZ_BEAST_MESSAGE: {
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(reply, "offer");
        const char *os = cJSON_IsString(o) ? o->valuestring : "none";
        a.msg.offer = strcmp(os, "give") == 0   ? BZ_BEAST_OFFER_GIVE
                      : strcmp(os, "ask") == 0  ? BZ_BEAST_OFFER_ASK
                      : strcmp(os, "none") == 0 ? BZ_BEAST_OFFER_NONE
                                                : -1;
        if (a.msg.offer < 0)
            return bz_err_set(err, BZ_EINVAL, "offer: expected \"none\", \"give\" or \"ask\"");
        if ((rc = get_int(reply, "amount", 0, &v, err)))
            return rc;
        a.msg.amount = a.msg.offer ? v : 0;
        a.msg.accept = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "accept"));
        a.msg.leave = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "leave"));
        if (g->bc.communication) {
            if ((rc = get_int(reply, "vote_promise", -1, &v, err)))
                return rc;
            if (v < -1 || v >= g->n)
                return bz_err_set(err, BZ_EINVAL, "vote_promise: expected -1 or a player id");
            a.msg.vote_promise = (int)v;
            if ((rc = get_int(reply, "vote_request", -1, &v, err)))
                return rc;
            if (v < -1 || v >= g->n)
                return bz_err_set(err, BZ_EINVAL, "vote_request: expected -1 or a player id");
            a.msg.vote_request = (int)v;
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(reply, "message");
            if (cJSON_IsString(m) && m->valuestring[0])
                text = m->valuestring;
        }
        break;
    }
    case BZ_BEAST_DECLARE:
        if ((rc = get_int(reply, "declared_vote", -1, &v, err)))
            return rc;
        if (v < -1 || v >= g->n)
            return bz_err_set(err, BZ_EINVAL, "declared_vote: expected -1 or a player id");
        a.target = (int)v;
        break;
    case BZ_BEAST_VOTE: {
        if (!cJSON_GetObjectItemCaseSensitive(reply, "vote"))
            return bz_err_set(err, BZ_EINVAL, "vote: missing");
        if ((rc = get_int(reply, "vote", -1, &v, err)))
            return rc;
        if (v < 0 || v >= g->n)
            return bz_err_set(err, BZ_EINVAL, "vote: expected a player id (0..%d)", g->n - 1);
        a.target = (int)v;
        break;
    }
    default: return bz_err_set(err, BZ_EINTERNAL, "beast: unknown request kind %d", a.kind);
    }
    if (text) {
        size_t len = strlen(text);
        text = bz_records_strndup(g->base.rec, text,
                                  len > BZ_BEAST_TEXT_MAX ? BZ_BEAST_TEXT_MAX : len);
        if (!text)
            return bz_err_set(err, BZ_ENOMEM, "beast: out of memory");
    }
    g->act[k] = a;
    g->filled[k] = 1;
    g->text[k] = text;
    return BZ_OK;
}

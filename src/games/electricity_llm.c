/* electricity_llm: what LLM agents see of the electricity game and how their
 * replies are read: the observation (public, private, meta; no free text of
 * others with communication off), the per-phase reply schemas (built once per
 * game by the base) and parsing a reply into the agent's action slot. The
 * admissibility check stays with the rules (electricity.c). Never does I/O. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "games/electricity_internal.h"

/* ---- LLM-facing: observation, schemas, parsing --------------------------- */

static cJSON *add_num(cJSON *o, const char *k, double v)
{
    return isfinite(v) ? cJSON_AddNumberToObject(o, k, v) : cJSON_AddNullToObject(o, k);
}

static void add_tri(cJSON *o, const char *k, int v)
{
    if (v < 0)
        cJSON_AddNullToObject(o, k);
    else
        cJSON_AddBoolToObject(o, k, v);
}

static const char *status_name(int s)
{
    static const char *const names[] = {"none",
                                        "open",
                                        "accepted",
                                        "rejected",
                                        "countered",
                                        "counter_accepted",
                                        "counter_rejected"};
    return s >= 0 && s <= BZ_ELEC_P_COUNTER_REJECTED ? names[s] : "?";
}

int bz_elec_observe(const struct bz_game *g, const struct bz_request *r, cJSON *obs,
                    struct bz_err *err)
{
    int i = r->agent;
    if (i < 0 || i >= g->n)
        return bz_err_set(err, BZ_EINVAL, "observe: agent %d out of range", i);
    const struct bz_elec_agent *a = &g->ag[i];
    int phase = g->base.phase >= 0 ? g->base.phase : BZ_ELEC_SETTLE;
    cJSON *pub = cJSON_AddObjectToObject(obs, "public");
    cJSON *priv = cJSON_AddObjectToObject(obs, "private");
    cJSON *meta = cJSON_AddObjectToObject(obs, "meta");
    if (!pub || !priv || !meta)
        return bz_err_set(err, BZ_ENOMEM, "observe: out of memory");

    cJSON_AddStringToObject(meta, "game", "electricity");
    cJSON_AddStringToObject(meta, "phase", bz_electricity_ops.phases[phase]);
    cJSON_AddNumberToObject(meta, "agent", i);
    cJSON_AddNumberToObject(meta, "n_agents", g->n);
    cJSON_AddNumberToObject(meta, "turn", g->turn);
    cJSON_AddNumberToObject(meta, "max_turns", g->max_turns);
    cJSON_AddBoolToObject(meta, "communication", g->communication);

    cJSON_AddNumberToObject(pub, "hour", g->turn % 24);
    add_num(pub, "reference_price_per_mwh", g->ref_price);
    add_num(pub, "last_clearing_price_per_mwh", g->last_clearing);
    add_num(pub, "retail_price_per_mwh", g->retail);
    add_num(pub, "voll_per_mwh", g->voll);
    add_num(pub, "default_penalty_per_mwh", g->penalty);
    cJSON *cps = cJSON_AddArrayToObject(pub, "counterparties");
    for (int j = 0; cps && j < g->k; j++) {
        int o = g->nbr[i * g->k + j];
        cJSON *c = cJSON_CreateObject();
        if (!c)
            break;
        cJSON_AddItemToArray(cps, c);
        cJSON_AddNumberToObject(c, "agent", o);
        if (g->communication && phase > BZ_ELEC_PUBLISH)
            add_num(c, "claimed_surplus_mwh", g->ag[o].claimed_surplus_mwh);
        /* only what i could observe itself: no one is told whether a claim
         * was true */
        add_tri(c, "delivered_to_you_last_time", g->delivered_last[i * g->k + j]);
        if (g->communication)
            add_tri(c, "last_offer_to_you_matched_its_claim", g->consistent[i * g->k + j]);
    }
    if (g->communication && phase > BZ_ELEC_PUBLISH && phase != BZ_ELEC_SETTLE) {
        /* what my counterparties published this turn (bounded by k) */
        cJSON *msgs = cJSON_AddArrayToObject(pub, "messages");
        for (int j = 0; msgs && j < g->k; j++) {
            int o = g->nbr[i * g->k + j];
            const char *text = g->ag[o].publish_message;
            if (!text || !text[0])
                continue;
            cJSON *c = cJSON_CreateObject();
            if (!c)
                break;
            cJSON_AddItemToArray(msgs, c);
            cJSON_AddNumberToObject(c, "from", o);
            cJSON_AddStringToObject(c, "text", text);
        }
    }
    cJSON *inbox = cJSON_AddArrayToObject(pub, "proposals_to_you");
    for (int j = 0; inbox && j < g->n_inbox[i]; j++) {
        int pi = g->inbox[i * g->k + j];
        const struct bz_elec_proposal *p = &g->prop[pi];
        cJSON *c = cJSON_CreateObject();
        if (!c)
            break;
        cJSON_AddItemToArray(inbox, c);
        cJSON_AddNumberToObject(c, "proposal_id", pi);
        cJSON_AddNumberToObject(c, "from", pi);
        /* the side as seen by the receiver */
        cJSON_AddStringToObject(c, "you_would", p->side == BZ_ELEC_SELL ? "buy" : "sell");
        add_num(c, "amount_mwh", p->amount_mwh);
        add_num(c, "price_total", p->price_total);
        add_num(c, "price_per_mwh", p->price_total / p->amount_mwh);
        cJSON_AddStringToObject(c, "status", status_name(p->status));
        if (g->communication && p->message)
            cJSON_AddStringToObject(c, "message", p->message);
    }
    const struct bz_elec_proposal *mp = &g->prop[i];
    if (mp->status != BZ_ELEC_P_NONE) {
        cJSON *c = cJSON_AddObjectToObject(pub, "your_proposal");
        if (c) {
            cJSON_AddNumberToObject(c, "to", mp->to);
            cJSON_AddStringToObject(c, "side", bz_elec_side_name(mp->side));
            add_num(c, "amount_mwh", mp->amount_mwh);
            add_num(c, "price_total", mp->price_total);
            cJSON_AddStringToObject(c, "status", status_name(mp->status));
            if (mp->status >= BZ_ELEC_P_COUNTERED) {
                add_num(c, "counter_amount_mwh", mp->counter_amount_mwh);
                add_num(c, "counter_price_total", mp->counter_price_total);
            }
        }
    }

    add_num(priv, "generation_forecast_mwh", a->gen_fc_mwh);
    add_num(priv, "demand_forecast_mwh", a->demand_fc_mwh);
    add_num(priv, "next_hour_demand_forecast_mwh", a->next_demand_fc_mwh);
    add_num(priv, "max_generation_mwh", a->max_gen_mwh);
    add_num(priv, "capacity_mw", a->capacity_mw);
    add_num(priv, "generation_cost_per_mwh", a->cost_now);
    add_num(priv, "storage_level_mwh", a->storage_mwh);
    add_num(priv, "storage_capacity_mwh", a->storage_cap_mwh);
    add_num(priv, "storage_efficiency", g->eff);
    add_num(priv, "stored_energy_value_per_mwh", g->store_value);
    add_num(priv, "cash", a->cash);
    add_num(priv, "cumulative_profit", a->cum_profit);
    add_num(priv, "contract_bought_mwh", a->c_bought);
    add_num(priv, "contract_sold_mwh", a->c_sold);
    add_num(priv, "contract_paid", a->c_paid);
    add_num(priv, "contract_received", a->c_recv);
    add_num(priv, "can_sell_mwh", bz_elec_sell_room(g, i));
    add_num(priv, "can_buy_mwh", bz_elec_buy_room(g, i));
    return BZ_OK;
}

/* Schema builders: an object that takes exactly the properties it lists. */
static cJSON *object_schema(cJSON *parent, const char *key, const char *const *required,
                            cJSON **props)
{
    cJSON *o = parent ? cJSON_AddObjectToObject(parent, key) : cJSON_CreateObject();
    cJSON *req = NULL;
    if (o && cJSON_AddStringToObject(o, "type", "object") &&
        cJSON_AddFalseToObject(o, "additionalProperties") &&
        (req = cJSON_AddArrayToObject(o, "required")))
        for (; *required; required++)
            cJSON_AddItemToArray(req, cJSON_CreateString(*required));
    *props = o ? cJSON_AddObjectToObject(o, "properties") : NULL;
    return o;
}

/* A property of type; minimum when min_ok. */
static cJSON *prop(cJSON *props, const char *name, const char *type, int min_ok, double min)
{
    cJSON *p = cJSON_AddObjectToObject(props, name);
    if (p) {
        cJSON_AddStringToObject(p, "type", type);
        if (min_ok)
            cJSON_AddNumberToObject(p, "minimum", min);
    }
    return p;
}

static void prop_enum(cJSON *props, const char *name, const char *const *values, int n)
{
    cJSON *p = prop(props, name, "string", 0, 0);
    if (p)
        cJSON_AddItemToObject(p, "enum", cJSON_CreateStringArray(values, n));
}

static void prop_message(cJSON *props)
{
    cJSON *p = prop(props, "message", "string", 0, 0);
    if (p)
        cJSON_AddNumberToObject(p, "maxLength", BZ_ELEC_MSG_MAX);
}

/* The reply schema of phase (owned by the caller; the base builds it once per
 * game); with communication on, publish and propose carry a message. NULL for
 * settle (no decision). Printed compact it is byte for byte the text the
 * game used to keep as static strings, so prompts and cache keys are
 * unchanged. */
cJSON *bz_elec_action_schema(const struct bz_game *g, int phase)
{
    static const char *const sides[] = {"buy", "sell", "none"};
    static const char *const decisions[] = {"accept", "reject", "counter"};
    int msg = g && g->communication;
    cJSON *s = NULL, *props = NULL, *items = NULL;
    switch (phase) {
    case BZ_ELEC_PUBLISH: {
        const char *const req[] = {"claimed_surplus_mwh", msg ? "message" : NULL, NULL};
        s = object_schema(NULL, NULL, req, &props);
        prop(props, "claimed_surplus_mwh", "number", 0, 0);
        break;
    }
    case BZ_ELEC_PROPOSE: {
        const char *const req[] = {"counterparty",         "side", "amount_mwh", "price_total",
                                   msg ? "message" : NULL, NULL};
        s = object_schema(NULL, NULL, req, &props);
        prop(props, "counterparty", "integer", 1, -1);
        prop_enum(props, "side", sides, 2);
        prop(props, "amount_mwh", "number", 1, 0);
        prop(props, "price_total", "number", 1, 0);
        break;
    }
    case BZ_ELEC_RESPOND: {
        const char *const req[] = {"answers", NULL};
        const char *const areq[] = {"proposal_id", "decision", "counter_amount_mwh",
                                    "counter_price_total", NULL};
        s = object_schema(NULL, NULL, req, &props);
        cJSON *answers = prop(props, "answers", "array", 0, 0);
        cJSON *ap = NULL;
        items = answers ? object_schema(answers, "items", areq, &ap) : NULL;
        if (!items || !ap)
            break;
        prop(ap, "proposal_id", "integer", 0, 0);
        prop_enum(ap, "decision", decisions, 3);
        prop(ap, "counter_amount_mwh", "number", 1, 0);
        prop(ap, "counter_price_total", "number", 1, 0);
        msg = 0;
        break;
    }
    case BZ_ELEC_CONFIRM: {
        const char *const req[] = {"accept", NULL};
        s = object_schema(NULL, NULL, req, &props);
        prop(props, "accept", "boolean", 0, 0);
        msg = 0;
        break;
    }
    case BZ_ELEC_AUCTION: {
        const char *const req[] = {"side", "amount_mwh", "limit_price_per_mwh", NULL};
        s = object_schema(NULL, NULL, req, &props);
        prop_enum(props, "side", sides, 3);
        prop(props, "amount_mwh", "number", 1, 0);
        prop(props, "limit_price_per_mwh", "number", 1, 0);
        msg = 0;
        break;
    }
    default: return NULL;
    }
    if (props && msg)
        prop_message(props);
    return s;
}

static int get_number(const cJSON *reply, const char *key, double *v, struct bz_err *err)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(reply, key);
    if (!cJSON_IsNumber(it))
        return bz_err_set(err, BZ_EINVAL, "%s: expected a number%s", key, it ? "" : " (missing)");
    *v = it->valuedouble;
    if (!isfinite(*v))
        return bz_err_set(err, BZ_EINVAL, "%s: expected a finite number", key);
    return BZ_OK;
}

static int get_side(const cJSON *reply, const char *key, int allow_none, int *side,
                    struct bz_err *err)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(reply, key);
    const char *s = cJSON_IsString(it) ? it->valuestring : NULL;
    if (s && strcmp(s, "buy") == 0)
        *side = BZ_ELEC_BUY;
    else if (s && strcmp(s, "sell") == 0)
        *side = BZ_ELEC_SELL;
    else if (s && allow_none && strcmp(s, "none") == 0)
        *side = BZ_ELEC_NONE;
    else
        return bz_err_set(err, BZ_EINVAL, "%s: expected one of \"buy\", \"sell\"%s", key,
                          allow_none ? ", \"none\"" : "");
    return BZ_OK;
}

/* Check that reply has only the schema's keys. */
static int only_keys(const cJSON *reply, const char *const *keys, struct bz_err *err,
                     const char *where)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, reply)
    {
        int ok = 0;
        for (const char *const *k = keys; *k && !ok; k++)
            ok = it->string && strcmp(it->string, *k) == 0;
        if (!ok)
            return bz_err_set(err, BZ_EINVAL, "%s%s: unexpected field", where,
                              it->string ? it->string : "?");
    }
    return BZ_OK;
}

static int get_message(struct bz_game *g, const cJSON *reply, const char **msg, struct bz_err *err)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(reply, "message");
    *msg = NULL;
    if (!it)
        return BZ_OK;
    if (!cJSON_IsString(it))
        return bz_err_set(err, BZ_EINVAL, "message: expected a string");
    if (!g->communication || !it->valuestring[0])
        return BZ_OK; /* no free text travels with communication off */
    size_t len = strlen(it->valuestring);
    *msg =
        bz_records_strndup(g->rec, it->valuestring, len > BZ_ELEC_MSG_MAX ? BZ_ELEC_MSG_MAX : len);
    return BZ_OK;
}

static int parse_reply(struct bz_game *g, int i, int phase, const cJSON *reply,
                       struct bz_elec_action *x, struct bz_err *err)
{
    int rc;
    if (!cJSON_IsObject(reply))
        return bz_err_set(err, BZ_EINVAL, "reply: expected a JSON object");
    switch (phase) {
    case BZ_ELEC_PUBLISH: {
        static const char *const keys[] = {"claimed_surplus_mwh", "message", NULL};
        if ((rc = only_keys(reply, keys, err, "")) ||
            (rc = get_number(reply, "claimed_surplus_mwh", &x->claimed_surplus_mwh, err)))
            return rc;
        return get_message(g, reply, &x->message, err);
    }
    case BZ_ELEC_PROPOSE: {
        static const char *const keys[] = {"counterparty", "side",    "amount_mwh",
                                           "price_total",  "message", NULL};
        if ((rc = only_keys(reply, keys, err, "")))
            return rc;
        const cJSON *cp = cJSON_GetObjectItemCaseSensitive(reply, "counterparty");
        if (!cJSON_IsNumber(cp) || cp->valuedouble != floor(cp->valuedouble))
            return bz_err_set(err, BZ_EINVAL,
                              "counterparty: expected an integer (an agent id from "
                              "counterparties, or -1 for no proposal)");
        if (cp->valuedouble < -1 || cp->valuedouble >= g->n)
            return bz_err_set(err, BZ_EINVAL,
                              "counterparty: %.0f is not one of your counterparties (or -1)",
                              cp->valuedouble);
        x->to = (int32_t)cp->valuedouble;
        if (x->to == -1)
            return BZ_OK;
        if ((rc = get_side(reply, "side", 0, &x->side, err)) ||
            (rc = get_number(reply, "amount_mwh", &x->amount_mwh, err)) ||
            (rc = get_number(reply, "price_total", &x->price_total, err)))
            return rc;
        return get_message(g, reply, &x->message, err);
    }
    case BZ_ELEC_RESPOND: {
        static const char *const keys[] = {"answers", NULL};
        static const char *const akeys[] = {"proposal_id", "decision", "counter_amount_mwh",
                                            "counter_price_total", NULL};
        if ((rc = only_keys(reply, keys, err, "")))
            return rc;
        const cJSON *ans = cJSON_GetObjectItemCaseSensitive(reply, "answers");
        if (!cJSON_IsArray(ans))
            return bz_err_set(err, BZ_EINVAL, "answers: expected an array of answers");
        uint8_t seen[BZ_ELEC_K] = {0};
        const cJSON *a;
        int idx = 0;
        cJSON_ArrayForEach(a, ans)
        {
            char where[32];
            snprintf(where, sizeof where, "answers[%d].", idx);
            if (!cJSON_IsObject(a))
                return bz_err_set(err, BZ_EINVAL, "answers[%d]: expected an object", idx);
            if ((rc = only_keys(a, akeys, err, where)))
                return rc;
            const cJSON *pid = cJSON_GetObjectItemCaseSensitive(a, "proposal_id");
            int slot = -1;
            if (cJSON_IsNumber(pid))
                for (int j = 0; j < g->n_inbox[i]; j++)
                    if ((double)g->inbox[i * g->k + j] == pid->valuedouble)
                        slot = j;
            if (slot < 0)
                return bz_err_set(err, BZ_EINVAL,
                                  "answers[%d].proposal_id: expected the id of a proposal you "
                                  "received",
                                  idx);
            if (seen[slot]++)
                return bz_err_set(err, BZ_EINVAL,
                                  "answers[%d].proposal_id: proposal %d answered twice", idx,
                                  g->inbox[i * g->k + slot]);
            const cJSON *d = cJSON_GetObjectItemCaseSensitive(a, "decision");
            const char *ds = cJSON_IsString(d) ? d->valuestring : "";
            if (strcmp(ds, "accept") == 0) {
                x->answer[slot] = BZ_ELEC_ACCEPT;
            } else if (strcmp(ds, "reject") == 0) {
                x->answer[slot] = BZ_ELEC_REJECT;
            } else if (strcmp(ds, "counter") == 0) {
                x->answer[slot] = BZ_ELEC_COUNTER;
                const cJSON *ca = cJSON_GetObjectItemCaseSensitive(a, "counter_amount_mwh");
                const cJSON *cpt = cJSON_GetObjectItemCaseSensitive(a, "counter_price_total");
                if (!cJSON_IsNumber(ca) || !(ca->valuedouble > 0) || !isfinite(ca->valuedouble))
                    return bz_err_set(err, BZ_EINVAL,
                                      "answers[%d].counter_amount_mwh: expected a number > 0", idx);
                if (!cJSON_IsNumber(cpt) || !(cpt->valuedouble >= 0) || !isfinite(cpt->valuedouble))
                    return bz_err_set(err, BZ_EINVAL,
                                      "answers[%d].counter_price_total: expected a number >= 0",
                                      idx);
                x->counter_amount_mwh[slot] = ca->valuedouble;
                x->counter_price_total[slot] = cpt->valuedouble;
            } else {
                return bz_err_set(err, BZ_EINVAL,
                                  "answers[%d].decision: expected \"accept\", \"reject\" or "
                                  "\"counter\"",
                                  idx);
            }
            idx++;
        }
        return BZ_OK; /* proposals left unanswered are rejected */
    }
    case BZ_ELEC_CONFIRM: {
        static const char *const keys[] = {"accept", NULL};
        if ((rc = only_keys(reply, keys, err, "")))
            return rc;
        const cJSON *acc = cJSON_GetObjectItemCaseSensitive(reply, "accept");
        if (!cJSON_IsBool(acc))
            return bz_err_set(err, BZ_EINVAL, "accept: expected true or false");
        x->accept_counter = cJSON_IsTrue(acc) != 0;
        return BZ_OK;
    }
    case BZ_ELEC_AUCTION: {
        static const char *const keys[] = {"side", "amount_mwh", "limit_price_per_mwh", NULL};
        if ((rc = only_keys(reply, keys, err, "")) ||
            (rc = get_side(reply, "side", 1, &x->order_side, err)))
            return rc;
        if (x->order_side == BZ_ELEC_NONE)
            return BZ_OK;
        if ((rc = get_number(reply, "amount_mwh", &x->order_amount_mwh, err)) ||
            (rc = get_number(reply, "limit_price_per_mwh", &x->order_limit_per_mwh, err)))
            return rc;
        return BZ_OK;
    }
    default:
        return bz_err_set(err, BZ_EINVAL, "phase %s takes no action",
                          bz_electricity_ops.phases[phase]);
    }
}

int bz_elec_parse_action(struct bz_game *g, const struct bz_request *r, const cJSON *reply,
                         struct bz_err *err)
{
    struct bz_elec_action x;
    memset(&x, 0, sizeof x);
    x.to = -1;
    int rc = parse_reply(g, r->agent, r->phase, reply, &x, err);
    if (rc)
        return rc;
    x.set = 1;
    g->act[r->agent] = x;
    return BZ_OK;
}

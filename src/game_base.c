/* game_base: the part of every game that is not its rules (struct
 * bz_game_base): requests keyed by (agent, slot), checked step/apply, the
 * admissibility check -> invalid count -> fallback, the heuristic skill mix,
 * replies checked against the phase's schema, /messages rows, and the JSON
 * schema check. A game only writes its rules, policies, observe/parse and
 * tables. Never does I/O; knows nothing of LLMs, HDF5 or MPI. */
#include <assert.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bazaar/game.h"
#include "bazaar/match.h"

int bz_game_base_init(struct bz_game_base *b, const struct bz_game_config *cfg,
                      struct bz_records *rec, struct bz_err *err)
{
    memset(b, 0, sizeof *b);
    b->ops = cfg->ops;
    b->cfg = cfg;
    b->rec = rec;
    b->tx = cfg->transcript;
    b->communication = cfg->communication != 0;
    b->phase = -1;
    b->cap_req = cfg->n_agents > 0 ? cfg->n_agents : 1;
    b->req = calloc((size_t)b->cap_req, sizeof *b->req);
    if (!b->req)
        return bz_err_set(err, BZ_ENOMEM, "%s: out of memory for %d agents",
                          cfg->ops ? cfg->ops->name : "game", cfg->n_agents);
    return BZ_OK;
}

void bz_game_base_cleanup(struct bz_game_base *b)
{
    if (!b)
        return;
    if (b->schema) {
        for (size_t p = 0; p < b->ops->n_phases; p++)
            cJSON_Delete(b->schema[p]);
        free(b->schema);
    }
    if (b->schema_text) {
        for (size_t p = 0; p < b->ops->n_phases; p++)
            cJSON_free(b->schema_text[p]);
        free(b->schema_text);
    }
    free(b->schema_built);
    free(b->req);
    b->req = NULL;
    b->schema_built = NULL;
    b->schema = NULL;
    b->schema_text = NULL;
    b->n_req = b->cap_req = 0;
}

/* ---- requests ------------------------------------------------------------ */

void bz_game_ask_phase(struct bz_game *g, int phase)
{
    struct bz_game_base *b = bz_game_base(g);
    b->phase = phase;
    b->n_req = 0;
}

int bz_game_ask(struct bz_game *g, int agent, int slot)
{
    struct bz_game_base *b = bz_game_base(g);
    assert(b->phase >= 0 && agent >= 0 && agent < b->cfg->n_agents && slot >= 0);
    if (b->n_req == b->cap_req) {
        int cap = 2 * b->cap_req;
        struct bz_request *r = realloc(b->req, (size_t)cap * sizeof *r);
        if (!r)
            return BZ_ENOMEM;
        b->req = r;
        b->cap_req = cap;
    }
    struct bz_request *r = &b->req[b->n_req++];
    memset(r, 0, sizeof *r);
    r->agent = agent;
    r->slot = slot;
    r->phase = b->phase;
    return BZ_OK;
}

int bz_game_n_requests(const struct bz_game *g)
{
    const struct bz_game_base *b = bz_game_cbase(g);
    return b->phase >= 0 ? b->n_req : 0;
}

const struct bz_request *bz_game_request(const struct bz_game *g, int i)
{
    const struct bz_game_base *b = bz_game_cbase(g);
    return i >= 0 && i < b->n_req ? &b->req[i] : NULL;
}

struct bz_request *bz_game_find_request(struct bz_game *g, int agent, int slot)
{
    struct bz_game_base *b = bz_game_base(g);
    if (b->phase < 0)
        return NULL;
    for (int i = 0; i < b->n_req; i++)
        if (b->req[i].agent == agent && b->req[i].slot == slot)
            return &b->req[i];
    return NULL;
}

void bz_game_message_in(struct bz_game *g, int phase, int sender, int receiver, int round,
                        int conversation, const char *visibility, const char *text)
{
    struct bz_game_base *b = bz_game_base(g);
    if (!b->communication || !text || !text[0])
        return;
    struct bz_messages_row *m = bz_records_add(b->rec, &bz_messages_table);
    if (!m)
        return;
    m->game_id = b->cfg->game_id;
    m->turn = b->round;
    m->round = round;
    m->phase = (size_t)phase < b->ops->n_phases ? b->ops->phases[phase] : "";
    m->sender = sender;
    m->receiver = receiver;
    m->visibility = visibility;
    m->conversation = conversation;
    m->text = text;
}

void bz_game_message(struct bz_game *g, int phase, int sender, int receiver, const char *text)
{
    /* to all is public; to one counterparty is private to the pair */
    bz_game_message_in(g, phase, sender, receiver, -1, -1, receiver < 0 ? "public" : "private",
                       text);
}

/* ---- create, step, apply --------------------------------------------------- */

/* The phase's schema, built on first use and kept for the game's life (a
 * game of heuristic agents never builds any). 0 or BZ_ENOMEM. */
static int schema_of(struct bz_game *g, int phase, const cJSON **out)
{
    struct bz_game_base *b = bz_game_base(g);
    *out = NULL;
    if (phase < 0 || (size_t)phase >= b->ops->n_phases || !b->ops->action_schema)
        return BZ_OK;
    if (!b->schema) {
        size_t n = b->ops->n_phases;
        b->schema = calloc(n, sizeof *b->schema);
        b->schema_text = calloc(n, sizeof *b->schema_text);
        b->schema_built = calloc(n, sizeof *b->schema_built);
        if (!b->schema || !b->schema_text || !b->schema_built)
            return BZ_ENOMEM;
    }
    if (!b->schema_built[phase]) {
        cJSON *s = b->ops->action_schema(g, phase);
        char *text = s ? cJSON_PrintUnformatted(s) : NULL;
        if (s && !text) {
            cJSON_Delete(s);
            return BZ_ENOMEM;
        }
        b->schema[phase] = s;
        b->schema_text[phase] = text;
        b->schema_built[phase] = 1;
    }
    *out = b->schema[phase];
    return BZ_OK;
}

int bz_game_create(const struct bz_game_config *cfg, struct bz_records *rec, struct bz_game **out,
                   struct bz_err *err)
{
    *out = NULL;
    struct bz_game *g = NULL;
    int rc = cfg->ops->create(cfg, rec, &g, err);
    if (rc)
        return rc;
    /* the base must be the first member and initialised by create */
    assert(bz_game_base(g)->ops == cfg->ops && bz_game_base(g)->req);
    if (bz_game_base(g)->ops != cfg->ops || !bz_game_base(g)->req) {
        cfg->ops->destroy(g);
        return bz_err_set(err, BZ_EINTERNAL, "%s: create() did not initialise the game base",
                          cfg->ops->name);
    }
    *out = g;
    return BZ_OK;
}

void bz_game_destroy(struct bz_game *g)
{
    if (g)
        bz_game_base(g)->ops->destroy(g);
}

int bz_game_step(struct bz_game *g, int *state, struct bz_err *err)
{
    struct bz_game_base *b = bz_game_base(g);
    if (b->phase >= 0) { /* apply() not called yet: the same requests again */
        *state = BZ_STEP_DECIDE;
        return BZ_OK;
    }
    int st = 0;
    int rc = b->ops->step(g, &st, err);
    if (rc) {
        if (err && !err->code)
            bz_err_set(err, rc, "%s: step failed (%s)", b->ops->name, bz_rc_name(rc));
        b->phase = -1;
        return rc;
    }
    if (st == BZ_STEP_DONE && b->phase < 0) {
        *state = st;
        return BZ_OK;
    }
    if (st == BZ_STEP_DECIDE && b->phase >= 0 && (size_t)b->phase < b->ops->n_phases &&
        b->n_req > 0) {
        *state = st;
        return BZ_OK;
    }
    assert(!"step() broke its contract");
    rc = bz_err_set(err, BZ_EINTERNAL,
                    "%s: step() broke its contract (state %d, phase %d, %d requests)", b->ops->name,
                    st, b->phase, b->n_req);
    b->phase = -1;
    return rc;
}

static void mark_fallback(struct bz_game *g, struct bz_request *r)
{
    struct bz_game_base *b = bz_game_base(g);
    b->ops->safe_action(g, r);
    r->answered = 1;
    r->fallback = 1;
    b->n_fallback++;
}

int bz_game_apply(struct bz_game *g, struct bz_err *err)
{
    struct bz_game_base *b = bz_game_base(g);
    if (b->phase < 0) {
        assert(!"apply() without open requests");
        return bz_err_set(err, BZ_EINTERNAL, "%s: apply() without a pending request", b->ops->name);
    }
    /* every action passes the same check; an inadmissible one (a policy bug
     * or an unanswered slot) is recorded and replaced by the safe action */
    for (int i = 0; i < b->n_req; i++) {
        struct bz_request *r = &b->req[i];
        if (!r->answered || b->ops->check_action(g, r, NULL)) {
            if (r->answered) {
                r->invalid = 1;
                b->n_invalid++;
            }
            mark_fallback(g, r);
        }
    }
    int rc = b->ops->apply(g, err);
    b->phase = -1;
    if (rc && err && !err->code)
        bz_err_set(err, rc, "%s: apply failed (%s)", b->ops->name, bz_rc_name(rc));
    return rc;
}

/* ---- answers ------------------------------------------------------------- */

void bz_game_decide(struct bz_game *g, int i, const struct bz_policy_ops *p, double skill,
                    struct bz_rng *rng)
{
    struct bz_game_base *b = bz_game_base(g);
    struct bz_request *r = &b->req[i];
    if (p->decide && (skill >= 1 || bz_rng_uniform(rng) < skill))
        p->decide(g, r, rng);
    else
        b->ops->random_action(g, r, rng);
    r->answered = 1;
}

int bz_game_answer(struct bz_game *g, int agent, int slot, const cJSON *reply,
                   enum bz_answer_fault *fault, struct bz_err *err)
{
    struct bz_game_base *b = bz_game_base(g);
    enum bz_answer_fault f = BZ_ANSWER_SCHEMA;
    int rc = BZ_OK;
    struct bz_request *r = NULL;
    if (b->phase < 0) {
        rc = bz_err_set(err, BZ_EINVAL, "no decision is pending");
        goto out;
    }
    if (!(r = bz_game_find_request(g, agent, slot))) {
        rc = bz_err_set(err, BZ_EINVAL, "agent %d is not asked to decide in phase %s", agent,
                        b->ops->phases[b->phase]);
        goto out;
    }
    r->answered = 0;
    const cJSON *schema = NULL;
    if (schema_of(g, b->phase, &schema)) {
        rc = bz_err_set(err, BZ_ENOMEM, "out of memory building the %s schema",
                        b->ops->phases[b->phase]);
        goto out;
    }
    if (schema && (rc = bz_json_schema_check(schema, reply, err)))
        goto out;
    f = BZ_ANSWER_INADMISSIBLE;
    if ((rc = b->ops->parse_action(g, r, reply, err)) || (rc = b->ops->check_action(g, r, err))) {
        r->invalid = 1;
        b->n_invalid++;
        goto out;
    }
    f = BZ_ANSWER_OK;
    r->answered = 1;
out:
    if (fault)
        *fault = f;
    return rc;
}

void bz_game_fallback(struct bz_game *g, int agent, int slot)
{
    struct bz_request *r = bz_game_find_request(g, agent, slot);
    if (r)
        mark_fallback(g, r);
}

const cJSON *bz_game_schema(struct bz_game *g, int phase)
{
    const cJSON *s = NULL;
    return schema_of(g, phase, &s) ? NULL : s;
}

const char *bz_game_schema_text(struct bz_game *g, int phase)
{
    const cJSON *s = NULL;
    if (schema_of(g, phase, &s) || !s)
        return NULL;
    return bz_game_base(g)->schema_text[phase];
}

/* ---- JSON schema check: the subset action schemas use ---- */

static int type_is(const cJSON *v, const char *t)
{
    if (strcmp(t, "object") == 0)
        return cJSON_IsObject(v);
    if (strcmp(t, "array") == 0)
        return cJSON_IsArray(v);
    if (strcmp(t, "string") == 0)
        return cJSON_IsString(v);
    if (strcmp(t, "number") == 0)
        return cJSON_IsNumber(v);
    if (strcmp(t, "integer") == 0)
        return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble);
    if (strcmp(t, "boolean") == 0)
        return cJSON_IsBool(v);
    if (strcmp(t, "null") == 0)
        return cJSON_IsNull(v);
    return 1;
}

static int check_at(const cJSON *s, const cJSON *v, char *path, size_t plen, size_t cap,
                    struct bz_err *err, int depth)
{
    if (!cJSON_IsObject(s) || depth > 32)
        return BZ_OK;
    const char *where = plen ? path : "(the reply)";
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(s, "type");
    if (cJSON_IsString(t) && !type_is(v, t->valuestring))
        return bz_err_set(err, BZ_EINVAL, "%s: expected %s %s", where,
                          strchr("aeiou", t->valuestring[0]) ? "an" : "a", t->valuestring);
    if (cJSON_IsArray(t)) {
        int ok = 0;
        for (const cJSON *e = t->child; e; e = e->next)
            ok |= cJSON_IsString(e) && type_is(v, e->valuestring);
        if (!ok)
            return bz_err_set(err, BZ_EINVAL, "%s: has the wrong type", where);
    }
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(s, "enum");
    if (cJSON_IsArray(en)) {
        int ok = 0;
        for (const cJSON *e = en->child; e && !ok; e = e->next)
            ok = cJSON_Compare(e, v, 1);
        if (!ok) {
            char *list = cJSON_PrintUnformatted(en);
            int rc = bz_err_set(err, BZ_EINVAL, "%s: expected one of %s", where,
                                list ? list : "the enum");
            cJSON_free(list);
            return rc;
        }
    }
    const cJSON *any = cJSON_GetObjectItemCaseSensitive(s, "anyOf");
    if (!any)
        any = cJSON_GetObjectItemCaseSensitive(s, "oneOf");
    if (cJSON_IsArray(any) && any->child) {
        struct bz_err first = {0};
        int ok = 0;
        for (const cJSON *e = any->child; e && !ok; e = e->next) {
            struct bz_err tmp = {0};
            ok = check_at(e, v, path, plen, cap, &tmp, depth + 1) == BZ_OK;
            if (!ok && !first.code)
                first = tmp;
        }
        if (!ok)
            return bz_err_set(err, BZ_EINVAL, "%s", first.msg);
    }
    if (cJSON_IsNumber(v)) {
        const cJSON *lo = cJSON_GetObjectItemCaseSensitive(s, "minimum");
        const cJSON *hi = cJSON_GetObjectItemCaseSensitive(s, "maximum");
        if (cJSON_IsNumber(lo) && v->valuedouble < lo->valuedouble)
            return bz_err_set(err, BZ_EINVAL, "%s: expected a number >= %g, got %g", where,
                              lo->valuedouble, v->valuedouble);
        if (cJSON_IsNumber(hi) && v->valuedouble > hi->valuedouble)
            return bz_err_set(err, BZ_EINVAL, "%s: expected a number <= %g, got %g", where,
                              hi->valuedouble, v->valuedouble);
    }
    if (cJSON_IsString(v)) {
        const cJSON *ml = cJSON_GetObjectItemCaseSensitive(s, "maxLength");
        if (cJSON_IsNumber(ml) && strlen(v->valuestring) > (size_t)ml->valuedouble)
            return bz_err_set(err, BZ_EINVAL, "%s: longer than %g characters", where,
                              ml->valuedouble);
    }
    if (cJSON_IsObject(v)) {
        const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
        const cJSON *req = cJSON_GetObjectItemCaseSensitive(s, "required");
        for (const cJSON *r = cJSON_IsArray(req) ? req->child : NULL; r; r = r->next)
            if (cJSON_IsString(r) && !cJSON_GetObjectItemCaseSensitive(v, r->valuestring))
                return bz_err_set(err, BZ_EINVAL, "%s%smissing required field \"%s\"",
                                  plen ? path : "", plen ? ": " : "", r->valuestring);
        const cJSON *ap = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");
        for (const cJSON *f = v->child; f; f = f->next) {
            const cJSON *fs = cJSON_GetObjectItemCaseSensitive(props, f->string);
            if (!fs) {
                if (cJSON_IsFalse(ap))
                    return bz_err_set(err, BZ_EINVAL, "%s%sunexpected field \"%s\"",
                                      plen ? path : "", plen ? ": " : "", f->string);
                continue;
            }
            int w = snprintf(path + plen, cap - plen, "%s%s", plen ? "." : "", f->string);
            size_t np = w > 0 && (size_t)w < cap - plen ? plen + (size_t)w : plen;
            int rc = check_at(fs, f, path, np, cap, err, depth + 1);
            path[plen] = '\0';
            if (rc)
                return rc;
        }
    }
    if (cJSON_IsArray(v)) {
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(s, "items");
        const cJSON *mn = cJSON_GetObjectItemCaseSensitive(s, "minItems");
        const cJSON *mx = cJSON_GetObjectItemCaseSensitive(s, "maxItems");
        int n = cJSON_GetArraySize(v);
        if (cJSON_IsNumber(mn) && n < mn->valuedouble)
            return bz_err_set(err, BZ_EINVAL, "%s: expected at least %g items", where,
                              mn->valuedouble);
        if (cJSON_IsNumber(mx) && n > mx->valuedouble)
            return bz_err_set(err, BZ_EINVAL, "%s: expected at most %g items", where,
                              mx->valuedouble);
        int i = 0;
        for (const cJSON *e = v->child; e && items; e = e->next, i++) {
            int w = snprintf(path + plen, cap - plen, "[%d]", i);
            size_t np = w > 0 && (size_t)w < cap - plen ? plen + (size_t)w : plen;
            int rc = check_at(items, e, path, np, cap, err, depth + 1);
            path[plen] = '\0';
            if (rc)
                return rc;
        }
    }
    return BZ_OK;
}

int bz_json_schema_check(const cJSON *schema, const cJSON *value, struct bz_err *err)
{
    char path[256] = "";
    return check_at(schema, value, path, 0, sizeof path, err, 0);
}

/* call: one LLM agent decision's model calls (include/bazaar/llm_call.h): the
 * provider request, the cache, --replay, the transport and its retries, the
 * rank's totals, redacted error texts. Reports every reply to the agent
 * through the call's done(); never parses an action and never touches a
 * game or a match. Never writes or logs an API key. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "bazaar/llm_call.h"
#include "bazaar/rng.h"
#include "llm/llm_internal.h"

struct bz_llm_call {
    struct bz_xfer x; /* first member: the transport's done() gets it back */
    struct bz_llm *llm;
    struct bz_llm_call_opts o;
    char key[BZ_CACHE_KEY_HEX];
    char label[160];                 /* copy of o.label */
    struct bz_llm_call *prev, *next; /* llm->live */
    /* Single flight: one request per cache key in flight per rank. A call
     * whose key is already flying waits on that call (its leader) and gets
     * the leader's reply (or failure) instead of sending its own. */
    int flying;                          /* submitted to the transport, others may wait on it */
    struct bz_llm_call *leader;          /* waiting on leader (not in the transport) */
    struct bz_llm_call *waiters, *wnext; /* leader: its waiters in arrival order */
    /* llm->by_key: the calls of one bucket, so finding the flying call of a
     * key looks at a few calls, not at every live one */
    struct bz_llm_call *kprev, *knext;
    int kbucket; /* -1: not in llm->by_key (no key yet) */
};

static void release_waiters_ok(struct bz_llm_call *c, const char *body, size_t len);
static void release_waiters_fail(struct bz_llm_call *c, const char *outcome, const char *error);

int bz_llm_model_index(const struct bz_llm *llm, const char *id)
{
    return bz_registry_find(llm->reg, id);
}

const char *bz_llm_model_id(const struct bz_llm *llm, int model)
{
    return model >= 0 && (size_t)model < llm->reg->n ? llm->reg->models[model].id : "";
}

const struct bz_llm_settings *bz_llm_settings(const struct bz_llm *llm)
{
    return &llm->set;
}

int bz_llm_provenance(const struct bz_llm *llm, size_t i, const char **name, const char **text)
{
    if (i >= llm->n_prov)
        return 0;
    *name = llm->prov_name[i];
    *text = llm->prov_text[i];
    return 1;
}

void bz_llm_text_hash(const char *text, char hex[BZ_LLM_TEXT_HASH_HEX])
{
    /* two independent FNV-style lanes, finalised: 128 bits */
    uint64_t a = 0xcbf29ce484222325ULL, b = 0x84222325cbf29ce4ULL;
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++, n++) {
        a = (a ^ *p) * 0x100000001b3ULL;
        b = (b ^ *p) * 0x00000100000001b3ULL + 0x9e3779b97f4a7c15ULL;
        b ^= b >> 29;
    }
    a ^= n;
    b ^= n * 0x9e3779b97f4a7c15ULL;
    a = (a ^ (a >> 33)) * 0xff51afd7ed558ccdULL;
    a ^= a >> 33;
    b = (b ^ (b >> 31)) * 0xc4ceb9fe1a85ec53ULL;
    b ^= b >> 29;
    bz_llm_hex128(a, b, hex);
}

void bz_llm_hex128(uint64_t a, uint64_t b, char hex[33])
{
    static const char digit[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        hex[15 - i] = digit[(a >> (4 * i)) & 15];
        hex[31 - i] = digit[(b >> (4 * i)) & 15];
    }
    hex[32] = '\0';
}

struct cJSON *bz_llm_extract_json(const char *text)
{
    return bz_provider_extract_json(text);
}

struct bz_llm_call *bz_llm_call_new(struct bz_llm *llm, const struct bz_llm_call_opts *o)
{
    struct bz_llm_call *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->llm = llm;
    c->o = *o;
    snprintf(c->label, sizeof c->label, "%s", o->label ? o->label : "a decision");
    c->o.label = c->label;
    c->x.model = o->model;
    c->x.done = NULL; /* set by send */
    c->kbucket = -1;
    c->next = llm->live;
    if (llm->live)
        llm->live->prev = c;
    llm->live = c;
    llm->n_live++;
    return c;
}

static void key_unlink(struct bz_llm_call *c)
{
    if (c->kbucket < 0)
        return;
    if (c->kprev)
        c->kprev->knext = c->knext;
    else
        c->llm->by_key[c->kbucket] = c->knext;
    if (c->knext)
        c->knext->kprev = c->kprev;
    c->kprev = c->knext = NULL;
    c->kbucket = -1;
}

/* File c under its (new) key in llm->by_key. */
static void key_link(struct bz_llm_call *c)
{
    key_unlink(c);
    uint32_t h = 2166136261u; /* FNV-1a over the hex digits */
    for (const char *k = c->key; *k; k++)
        h = (h ^ (unsigned char)*k) * 16777619u;
    int b = (int)(h % BZ_LLM_KEY_BUCKETS);
    struct bz_llm_call **head = &c->llm->by_key[b];
    c->kprev = NULL;
    c->knext = *head;
    if (*head)
        (*head)->kprev = c;
    *head = c;
    c->kbucket = b;
}

/* c stops waiting on its leader. */
static void unwait(struct bz_llm_call *c)
{
    struct bz_llm_call **pp = &c->leader->waiters;
    while (*pp && *pp != c)
        pp = &(*pp)->wnext;
    if (*pp)
        *pp = c->wnext;
    c->leader = NULL;
    c->wnext = NULL;
}

/* Leader c goes away without a reply (dropped): its first waiter sends the
 * request instead and the others wait on it. Never calls a done(). */
static void promote_waiters(struct bz_llm_call *c)
{
    struct bz_llm_call *w = c->waiters;
    c->waiters = NULL;
    if (!w)
        return;
    w->leader = NULL;
    w->waiters = w->wnext;
    w->wnext = NULL;
    for (struct bz_llm_call *o = w->waiters; o; o = o->wnext)
        o->leader = w;
    if (c->llm->tr) {
        w->flying = 1;
        bz_transport_submit(c->llm->tr, &w->x);
    }
}

void bz_llm_call_free(struct bz_llm_call *c)
{
    if (!c)
        return;
    struct bz_llm *llm = c->llm;
    if (c->leader)
        unwait(c);
    if (c->waiters)
        promote_waiters(c);
    key_unlink(c);
    if (c->prev)
        c->prev->next = c->next;
    else if (llm->live == c)
        llm->live = c->next;
    if (c->next)
        c->next->prev = c->prev;
    llm->n_live--;
    free(c->x.body);
    free(c->x.reply);
    free(c);
}

/* Copy src into dst (cap bytes) replacing any occurrence of the model's key:
 * error bodies may echo it, and /llm_calls must never hold one. */
static void redact(const struct bz_llm *llm, int model, const char *src, char *dst, size_t cap)
{
    snprintf(dst, cap, "%s", src);
    const char *key = llm->keys ? llm->keys[model] : NULL;
    if (!key || strlen(key) < 4)
        return;
    size_t kl = strlen(key);
    char *p;
    while ((p = strstr(dst, key)))
        memset(p, '*', kl);
    for (char *ch = dst; *ch; ch++)
        if ((unsigned char)*ch < 0x20)
            *ch = ' ';
}

/* Report a reply without content (a failure) to the agent. */
static void fail(struct bz_llm_call *c, const char *outcome, const char *error, int counted,
                 int cache_hit)
{
    struct bz_llm_reply r = {0};
    r.outcome = outcome;
    r.error = error;
    r.counted = counted;
    r.cache_hit = cache_hit;
    r.latency_ms = c->x.latency_ms;
    r.retries = c->x.retries;
    r.http_status = (int)c->x.http_status;
    r.attempts = c->x.attempts;
    c->o.done(c->o.ctx, c, &r);
}

/* A 2xx reply body (from the network or the cache). */
static void finish_reply(struct bz_llm_call *c, const char *body, size_t len, int cache_hit)
{
    struct bz_llm *llm = c->llm;
    const struct bz_model *mod = &llm->reg->models[c->o.model];
    struct bz_provider_reply rp;
    struct bz_err perr = {0};
    if (bz_provider_parse(mod, body, len, &rp, &perr)) {
        /* Not the provider's envelope (a proxy page, a cut body): a transport
         * fault, retried like one; never cached. */
        char why[300];
        snprintf(why, sizeof why, "malformed reply: %.250s", perr.msg);
        if (!cache_hit && bz_transport_retry(llm->tr, &c->x, why)) {
            c->flying = 1; /* its waiters keep waiting */
            return;
        }
        if (!cache_hit)
            release_waiters_fail(c, "bad_response", why);
        fail(c, "bad_response", why, 1, cache_hit);
        return;
    }
    char *stored = NULL;
    if (!cache_hit && llm->cache_dir[0]) {
        struct bz_err cerr = {0};
        int won = 1;
        if (bz_cache_put_first(llm->cache_dir, c->key, body, len, &won, &cerr) &&
            !llm->cache_warned) {
            fprintf(stderr, "bazaar: warning: %s (the sweep goes on uncached)\n", cerr.msg);
            llm->cache_warned = 1;
        }
        /* Another rank stored this key first: its reply is the one of
         * record (a rerun reads it), so this decision uses it too; the
         * tokens paid for are still this reply's. */
        size_t slen = 0;
        struct bz_provider_reply srp;
        struct bz_err serr = {0};
        if (!won && bz_cache_get(llm->cache_dir, c->key, &stored, &slen) &&
            !bz_provider_parse(mod, stored, slen, &srp, &serr)) {
            free(rp.content);
            rp.content = srp.content;
            rp.refusal = srp.refusal;
            rp.truncated = srp.truncated;
            body = stored;
            len = slen;
        }
    }
    if (!cache_hit)
        release_waiters_ok(c, body, len);
    int64_t cached =
        rp.cached_input_tokens < rp.input_tokens ? rp.cached_input_tokens : rp.input_tokens;
    double cost = ((double)(rp.input_tokens - cached) * mod->price_in_per_mtok +
                   (double)cached * mod->price_cached_in_per_mtok +
                   (double)rp.output_tokens * mod->price_out_per_mtok) /
                  1e6;
    if (cache_hit) {
        llm->totals.cache_hits++;
    } else {
        llm->totals.calls++;
        llm->totals.input_tokens += rp.input_tokens;
        llm->totals.output_tokens += rp.output_tokens;
        llm->totals.cost_usd += cost;
        bz_transport_charge(llm->tr, c->o.model, c->x.est_tokens,
                            rp.input_tokens + rp.output_tokens);
    }
    struct bz_llm_reply r = {0};
    r.ok = 1;
    r.content = rp.content;
    r.refusal = rp.refusal;
    r.truncated = rp.truncated;
    r.cache_hit = cache_hit;
    r.counted = 1;
    r.input_tokens = rp.input_tokens;
    r.output_tokens = rp.output_tokens;
    r.cached_input_tokens = cached;
    r.model_version = rp.model_version;
    r.cost_usd = cost;
    r.latency_ms = c->x.latency_ms;
    r.retries = c->x.retries;
    r.http_status = (int)c->x.http_status;
    r.attempts = c->x.attempts;
    c->o.done(c->o.ctx, c, &r); /* may free c */
    free(rp.content);
    free(stored);
}

/* The leader's reply answers its waiters, as a cache hit would (they made
 * no request). Detached first: a done() may start new calls. */
static void release_waiters_ok(struct bz_llm_call *c, const char *body, size_t len)
{
    struct bz_llm_call *w = c->waiters;
    c->waiters = NULL;
    c->flying = 0;
    while (w) {
        struct bz_llm_call *next = w->wnext;
        w->leader = NULL;
        w->wnext = NULL;
        finish_reply(w, body, len, 1); /* may free w */
        w = next;
    }
}

/* The leader failed after its retries: its waiters share the failure (one
 * request per key; they made none, so they are not counted as calls). */
static void release_waiters_fail(struct bz_llm_call *c, const char *outcome, const char *error)
{
    struct bz_llm_call *w = c->waiters;
    c->waiters = NULL;
    c->flying = 0;
    while (w) {
        struct bz_llm_call *next = w->wnext;
        w->leader = NULL;
        w->wnext = NULL;
        fail(w, outcome, error, 0, 0); /* may free w */
        w = next;
    }
}

/* Transport finished (after its retries). */
static void on_done(struct bz_xfer *x)
{
    struct bz_llm_call *c = (struct bz_llm_call *)x;
    struct bz_llm *llm = c->llm;
    c->flying = 0;
    if (x->result == BZ_XFER_OK) {
        finish_reply(c, x->reply ? x->reply : "", x->reply_len, 0);
        return;
    }
    char why[400];
    const char *outcome = x->result == BZ_XFER_HTTP     ? "http_error"
                          : x->result == BZ_XFER_TOOBIG ? "too_big"
                                                        : "network";
    if (x->result == BZ_XFER_HTTP) {
        char body[200] = "";
        long st = x->http_status;
        if (st == 401 || st == 403)
            snprintf(body, sizeof body, "the key in $%s was refused",
                     llm->reg->models[c->o.model].api_key_env);
        else if (x->reply)
            redact(llm, c->o.model, x->reply, body, sizeof body);
        snprintf(why, sizeof why, "HTTP %ld after %d retries: %s", st, x->retries, body);
        /* Non-retryable client errors: said once per model and status. */
        int retryable = st == 408 || st == 409 || st == 425 || st == 429 || st >= 500;
        if (!retryable) {
            int seen = 0, code = (int)(st * 1000 + c->o.model);
            for (int i = 0; i < llm->n_reported && i < 8; i++)
                seen |= llm->reported_status[i] == code;
            if (!seen) {
                fprintf(stderr,
                        "bazaar: model %s (%s): %s; decisions fall back to the game's "
                        "safe action; further such errors are recorded in /llm_calls only\n",
                        llm->reg->models[c->o.model].id, llm->urls[c->o.model], why);
                if (llm->n_reported < 8)
                    llm->reported_status[llm->n_reported++] = code;
            }
        }
    } else {
        snprintf(why, sizeof why, "%s after %d retries", x->error, x->retries);
    }
    release_waiters_fail(c, outcome, why);
    fail(c, outcome, why, 1, 0);
}

/* The schema text as requests carry it, parsed and printed once per
 * distinct text (llm->schema_memo); *canon NULL for no schema. */
static int schema_canon(struct bz_llm *llm, const char *text, const char *name, const char **canon,
                        struct bz_err *err)
{
    *canon = NULL;
    if (!text)
        return BZ_OK;
    for (int i = 0; i < BZ_LLM_SCHEMA_MEMO; i++)
        if (llm->schema_memo[i].text && strcmp(llm->schema_memo[i].text, text) == 0) {
            *canon = llm->schema_memo[i].canon;
            return BZ_OK;
        }
    char *c = NULL, *copy = NULL;
    int rc = bz_provider_schema_canon(text, name, &c, err);
    if (rc)
        return rc;
    size_t n = strlen(text) + 1;
    if (!(copy = malloc(n))) {
        cJSON_free(c);
        return bz_err_set(err, BZ_ENOMEM, "out of memory building a request");
    }
    memcpy(copy, text, n);
    int slot = llm->schema_memo_next;
    llm->schema_memo_next = (slot + 1) % BZ_LLM_SCHEMA_MEMO;
    free(llm->schema_memo[slot].text);
    cJSON_free(llm->schema_memo[slot].canon);
    llm->schema_memo[slot].text = copy;
    llm->schema_memo[slot].canon = c;
    *canon = c;
    return BZ_OK;
}

static int build_body(struct bz_llm_call *c, const char *prev_reply, const char *repair,
                      struct bz_err *err)
{
    struct bz_llm *llm = c->llm;
    const struct bz_model *mod = &llm->reg->models[c->o.model];
    int nh = c->o.history && c->o.n_history > 0 ? c->o.n_history & ~1 : 0;
    struct bz_chat_msg stack[16], *msgs = stack;
    if (nh + 4 > 16 && !(msgs = malloc((size_t)(nh + 4) * sizeof *msgs)))
        return bz_err_set(err, BZ_ENOMEM, "out of memory building a request");
    int n = 0;
    /* prompt-cache breakpoints (Anthropic): the system prompt, and the end of
     * the history, which the agent's next decisions repeat */
    msgs[n++] = (struct bz_chat_msg){"system", c->o.system, 1};
    for (int i = 0; i < nh; i++)
        msgs[n++] =
            (struct bz_chat_msg){i % 2 ? "assistant" : "user", c->o.history[i], i == nh - 1};
    msgs[n++] = (struct bz_chat_msg){"user", c->o.user, 0};
    if (repair) {
        msgs[n++] = (struct bz_chat_msg){"assistant", prev_reply ? prev_reply : "", 0};
        msgs[n++] = (struct bz_chat_msg){"user", repair, 0};
    }
    free(c->x.body);
    c->x.body = NULL;
    const char *schema = NULL;
    int rc = schema_canon(llm, c->o.schema_text, c->o.schema_name, &schema, err);
    if (!rc)
        rc = bz_provider_build_canon(mod, msgs, n, schema, c->o.schema_name, llm->set.temperature,
                                     llm->set.max_output_tokens,
                                     (int64_t)(bz_hash64(c->o.sample) & 0x7fffffff), &c->x.body,
                                     err);
    if (msgs != stack)
        free(msgs);
    if (rc)
        return rc;
    int max_out = mod->max_output_tokens > 0 ? mod->max_output_tokens : llm->set.max_output_tokens;
    c->x.est_tokens = (int64_t)strlen(c->x.body) / 4 + max_out;
    bz_cache_key(mod, c->x.body, c->o.sample, c->key);
    key_link(c);
    return BZ_OK;
}

/* Ask the cache, else queue (or refuse in replay mode). May finish c. */
void bz_llm_call_send(struct bz_llm_call *c, const char *prev_reply, const char *repair)
{
    struct bz_llm *llm = c->llm;
    struct bz_err err = {0};
    c->x.done = on_done;
    c->flying = 0;
    if (build_body(c, prev_reply, repair, &err)) {
        fail(c, "internal", err.msg, 0, 0);
        return;
    }
    if (llm->cache_dir[0]) {
        char *body = NULL;
        size_t len = 0;
        if (bz_cache_get(llm->cache_dir, c->key, &body, &len)) {
            finish_reply(c, body, len, 1);
            free(body);
            return;
        }
    }
    if (llm->opt.replay) {
        snprintf(llm->replay_msg, sizeof llm->replay_msg,
                 "replay: no cached reply for %s (model %s); the decision fell back", c->label,
                 llm->reg->models[c->o.model].id);
        llm->replay_misses++;
        if (llm->totals.replay_misses++ == 0) /* said at once: submit may never wait */
            fprintf(stderr,
                    "bazaar: %s; further misses are recorded in /llm_calls "
                    "(parse_outcome replay_miss)\n",
                    llm->replay_msg);
        fail(c, "replay_miss", "not in the cache (--replay)", 0, 0);
        return;
    }
    for (struct bz_llm_call *o = llm->by_key[c->kbucket]; o; o = o->knext) {
        if (o == c || !o->flying || memcmp(o->key, c->key, BZ_CACHE_KEY_HEX) != 0)
            continue;
        struct bz_llm_call **pp = &o->waiters; /* wait on it, in arrival order */
        while (*pp)
            pp = &(*pp)->wnext;
        *pp = c;
        c->leader = o;
        return;
    }
    c->flying = 1;
    bz_transport_submit(llm->tr, &c->x);
}

void bz_llm_cancel(struct bz_llm *llm, struct bz_match *m)
{
    struct bz_llm_call *c = llm->live;
    while (c) {
        struct bz_llm_call *next = c->next;
        if (c->o.owner == m) {
            bz_transport_remove(llm->tr, &c->x);
            c->o.drop(c->o.ctx, c);
        }
        c = next;
    }
}

void bz_llm_drop_all(struct bz_llm *llm)
{
    while (llm->live) {
        struct bz_llm_call *c = llm->live;
        if (llm->tr)
            bz_transport_remove(llm->tr, &c->x);
        c->o.drop(c->o.ctx, c);
        if (llm->live == c) /* drop must free it; never loop on a bad owner */
            bz_llm_call_free(c);
    }
}

/* llm_internal: the pieces of the llm module (registry, provider adapters,
 * cache, curl multi transport) and the rank's struct bz_llm, for the files of
 * src/llm/ and their tests (agents use bazaar/llm_call.h). Only src/llm/ files include
 * curl; nothing here exposes a curl type. */
#ifndef BAZAAR_LLM_INTERNAL_H
#define BAZAAR_LLM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "bazaar/err.h"
#include "bazaar/game.h"
#include "bazaar/llm.h"
#include "bazaar/llm_call.h"
#include "bazaar/prompt.h"

struct cJSON;

/* ---- registry (registry.c) ---- */

enum bz_provider { BZ_PROVIDER_OPENAI, BZ_PROVIDER_ANTHROPIC };

struct bz_model {
    char id[BZ_NAME_MAX];
    enum bz_provider provider;
    char base_url[512];
    char model[256];       /* the provider's model name */
    char api_key_env[128]; /* "" = no key (a local server) */
    double capability;
    double price_in_per_mtok, price_out_per_mtok;
    double price_cached_in_per_mtok; /* cached input tokens; default price_in_per_mtok */
    double rpm, tpm;                 /* 0 = no limit */
    int max_concurrency;             /* 0 = only the rank's concurrency */
    int strict;                      /* OpenAI json_schema strict flag (default 0) */
    int send_seed;                   /* OpenAI-compatible: send "seed" (registry "seed": true) */
    int max_output_tokens;           /* 0 = the spec's */
    double temperature;              /* NaN = the spec's */
    struct cJSON *sampling;          /* other sampling members copied into each request */
};

struct bz_registry {
    char path[512];
    struct bz_model *models;
    size_t n;
};

/* Load/parse and validate; errors name the file and key path
 * (`sweeps/models.json: models[2].provider: expected "openai" or
 * "anthropic", got "azure"`). Free with bz_registry_destroy. */
int bz_registry_load(const char *path, struct bz_registry **out, struct bz_err *err);
int bz_registry_parse(const char *text, const char *origin, struct bz_registry **out,
                      struct bz_err *err);
void bz_registry_destroy(struct bz_registry *r);
/* Index of model id, or -1. */
int bz_registry_find(const struct bz_registry *r, const char *id);
/* "" -> sweeps/models.json; a relative path missing from the working folder
 * is tried under the source tree. Writes at most n bytes. */
void bz_llm_resolve_path(const char *given, const char *fallback, char *buf, size_t n);

/* ---- provider adapters (provider.c) ---- */

struct bz_chat_msg {
    const char *role; /* "system", "user", "assistant" */
    const char *content;
    int cache; /* Anthropic: a prompt-cache breakpoint (cache_control) after this message */
};

/* Request body (malloc'd JSON text) for model m: messages (a leading system
 * message goes where the provider wants it; Anthropic: a message marked
 * cache gets cache_control, a prompt-cache breakpoint), the action schema as
 * structured output (OpenAI response_format json_schema; Anthropic a forced
 * tool), the sampling settings, and for an OpenAI model with send_seed the
 * seed (>= 0). */
int bz_provider_build(const struct bz_model *m, const struct bz_chat_msg *msgs, int n_msgs,
                      const char *schema_json, const char *schema_name, double temperature,
                      int max_output_tokens, int64_t seed, char **body, struct bz_err *err);

/* The same in two steps, for a caller that sends one schema many times:
 * the schema as the request carries it (cJSON's unformatted print of the
 * parsed text; *canon NULL for a NULL schema, else free with cJSON_free),
 * then the body with that text copied in as it is. */
int bz_provider_schema_canon(const char *schema_json, const char *schema_name, char **canon,
                             struct bz_err *err);
int bz_provider_build_canon(const struct bz_model *m, const struct bz_chat_msg *msgs, int n_msgs,
                            const char *schema_canon, const char *schema_name, double temperature,
                            int max_output_tokens, int64_t seed, char **body, struct bz_err *err);

struct bz_provider_reply {
    char *content; /* malloc'd: the action JSON text, or the model's text */
    int64_t input_tokens, output_tokens;
    int refusal;                 /* the model refused (content holds its words) */
    int truncated;               /* stopped at max tokens */
    int64_t cached_input_tokens; /* input tokens the provider served from its prompt cache
                                    (OpenAI prompt_tokens_details.cached_tokens, Anthropic
                                    cache_read_input_tokens); part of input_tokens */
    char model_version[128];     /* the model the provider says answered ("" if none) */
};

/* Parse a 2xx body. BZ_EINVAL when it is not the provider's envelope (the
 * message says what is missing) or when a usage count is not an integer in
 * [0, BZ_PROVIDER_USAGE_MAX] (a bad reply, never an overflow). Free
 * reply->content. */
int bz_provider_parse(const struct bz_model *m, const char *body, size_t len,
                      struct bz_provider_reply *reply, struct bz_err *err);

/* Largest token count one reply may claim (2^30: far above any context). */
#define BZ_PROVIDER_USAGE_MAX (INT64_C(1) << 30)

/* Overwrite every occurrence of key in text[0..len) with '*' (also its
 * JSON-escaped form, "/" as "\/"), in place, length unchanged; keys shorter
 * than 4 bytes are left alone. Returns the number of occurrences. */
size_t bz_provider_redact(char *text, size_t len, const char *key);

/* Lenient JSON extraction from a model's text: the whole text, else inside a
 * ``` fence, else from the first '{' to the last '}'. NULL when none parses. */
struct cJSON *bz_provider_extract_json(const char *text);

/* Two 64-bit words as 32 lowercase hex digits and a NUL ("%016llx%016llx"
 * without printf: a request makes several). */
void bz_llm_hex128(uint64_t a, uint64_t b, char hex[33]);

/* ---- cache (cache.c) ---- */

#define BZ_CACHE_KEY_HEX 33

/* Key of a request: hash of (provider, model, request body with messages,
 * sampling and schema, sample index), 32 hex digits. */
void bz_cache_key(const struct bz_model *m, const char *body, uint64_t sample,
                  char hex[BZ_CACHE_KEY_HEX]);
/* Create dir (and parents) if missing; BZ_EIO names it. */
int bz_cache_open(const char *dir, struct bz_err *err);
/* 1 and a malloc'd copy of the stored reply body on a hit, 0 on a miss. */
int bz_cache_get(const char *dir, const char *hex, char **body, size_t *len);
/* Store atomically and exclusively (tmp file + link: the first writer of a
 * key wins, an existing entry is kept); BZ_EIO names the file. */
int bz_cache_put(const char *dir, const char *hex, const char *body, size_t len,
                 struct bz_err *err);
/* The same; *won (may be NULL) is 1 when this call stored the entry, 0 when
 * an entry was there already (read it back: it is the reply of record). */
int bz_cache_put_first(const char *dir, const char *hex, const char *body, size_t len, int *won,
                       struct bz_err *err);

/* ---- transport (transport.c) ---- */

#define BZ_LLM_REPLY_MAX (8u * 1024u * 1024u) /* cap on one reply body */

enum bz_xfer_result {
    BZ_XFER_OK = 0, /* 2xx with a body */
    BZ_XFER_HTTP,   /* non-2xx after retries (or not retryable) */
    BZ_XFER_NET,    /* network failure or timeout after retries */
    BZ_XFER_TOOBIG, /* reply over BZ_LLM_REPLY_MAX */
    BZ_XFER_CANCELLED
};

struct bz_transport;

/* One HTTP request, retried by the transport until done() is called. Owned
 * by the caller (the decision embeds it); the transport only links it. */
struct bz_xfer {
    int model;          /* index in the registry */
    char *body;         /* request body, owned by the caller */
    int64_t est_tokens; /* for the tokens/min bucket */
    void (*done)(struct bz_xfer *x);

    /* set by the transport */
    int result;
    long http_status;
    int retries;
    double latency_ms; /* first send to finish, backoff included */
    char *reply;       /* body of the last attempt, NUL-terminated (owned) */
    size_t reply_len;
    char error[256];
    char attempts[256]; /* every attempt's outcome: "HTTP 429; timeout; ok" */

    /* private to transport.c */
    void *easy;
    double first_start, not_before, retry_after_s;
    int toobig, queued, active;
    int sends; /* this attempt's request sends: curl resends on a dead reused connection */
    int lane;  /* the curl multi handle carrying it */
    struct bz_xfer *prev, *next;
};

struct bz_model_limits {
    double rpm, tpm;
    int max_concurrency;
    const char *url;            /* full endpoint URL */
    const char *const *headers; /* NULL-terminated header lines (may hold a key) */
    const char *name;           /* registry id, for messages */
};

struct bz_transport_opts {
    int concurrency;
    double timeout_s;
    int max_retries;
    double backoff_base_s; /* first backoff; doubles each retry */
    double backoff_cap_s;
    uint64_t seed; /* jitter stream */
};

int bz_transport_create(const struct bz_transport_opts *o, const struct bz_model_limits *models,
                        size_t n_models, struct bz_transport **out, struct bz_err *err);
void bz_transport_destroy(struct bz_transport *t);
/* Queue x (x->model, body, done set); started by a later poll, or handed
 * to curl at once when an idle connection can carry it and sent by the
 * next bz_transport_flush (or poll). */
void bz_transport_submit(struct bz_transport *t, struct bz_xfer *x);
/* Send what submits handed to curl since the last poll or flush. */
void bz_transport_flush(struct bz_transport *t);
/* Queue x again as a retry (the caller found the reply unusable, e.g. a
 * malformed envelope): 1 when queued, 0 when retries are exhausted. */
int bz_transport_retry(struct bz_transport *t, struct bz_xfer *x, const char *why);
/* Remove x wherever it is; done() is not called. */
void bz_transport_remove(struct bz_transport *t, struct bz_xfer *x);
/* Start what may start, wait up to timeout_ms, finish transfers (done() is
 * called for each). Returns the number finished, or a negative bz_rc. */
int bz_transport_poll(struct bz_transport *t, int timeout_ms, struct bz_err *err);
int bz_transport_pending(const struct bz_transport *t); /* queued + active */
int bz_transport_active(const struct bz_transport *t);
int bz_transport_connections(const struct bz_transport *t); /* sockets open now */
/* The number of curl multi handles (lanes); *most_conns: the most sockets one holds. */
int bz_transport_lanes(const struct bz_transport *t, int *most_conns);
int64_t bz_transport_retries(const struct bz_transport *t);
/* Count actual tokens after a reply (corrects the tokens/min estimate). */
void bz_transport_charge(struct bz_transport *t, int model, int64_t est, int64_t actual);
double bz_llm_now_s(void); /* monotonic seconds */

/* ---- the rank's LLM state (llm.c) and its model calls (call.c) ---- */

struct bz_llm_call;

struct bz_llm {
    struct bz_llm_settings set;
    struct bz_llm_options opt;
    const struct bz_game_ops *ops;
    struct bz_registry *reg;
    char **keys;               /* per model, NULL when none (never printed) */
    char **key_headers;        /* per model: the auth header line */
    const char **header_lines; /* per model: NULL-terminated lists */
    char **urls;
    struct bz_model_limits *limits;
    struct bz_template *system;      /* prompts/<game>/system.txt */
    struct bz_template **phase_tmpl; /* per ops phase, NULL if not deciding */
    char prompts_dir[512];
    char cache_dir[512]; /* "" = no cache */
    struct bz_transport *tr;
    struct bz_llm_call *live; /* every call not yet freed (call.c) */
#define BZ_LLM_KEY_BUCKETS 4096
    struct bz_llm_call *by_key[BZ_LLM_KEY_BUCKETS]; /* the same calls by cache key (call.c) */
    int n_live;
    struct bz_llm_totals totals;
    int reported_status[8]; /* HTTP statuses already printed */
    int n_reported;
    int cache_warned;
    int replay_misses; /* since the last poll */
    /* provenance stored with every game's transcripts: the registry file
     * and the prompt templates, as read */
#define BZ_LLM_PROV_MAX 24
    char *prov_name[BZ_LLM_PROV_MAX];
    char *prov_text[BZ_LLM_PROV_MAX];
    size_t n_prov;
    char replay_msg[320];
    /* action schemas as requests carry them, by the game's text (call.c):
     * each game has its own copy of the same few texts */
#define BZ_LLM_SCHEMA_MEMO 8
    struct {
        char *text, *canon;
    } schema_memo[BZ_LLM_SCHEMA_MEMO];
    int schema_memo_next;
};

/* The distinct model ids the grid's lineups name (malloc'd strings in a
 * malloc'd array, the caller frees both, also on error) and game 0's config. */
int bz_llm_grid_models(const struct bz_grid *grid, char ***ids, size_t *n_ids,
                       struct bz_game_config *sample, struct bz_err *err);
/* Build a bz_llm from parts (tests: no spec, a fake game). prompts_dir holds
 * system.txt and <phase>.txt; sample_cfg (may be NULL) is played with
 * fallback actions to check the templates. */
int bz_llm_create_from(const struct bz_llm_settings *set, const struct bz_llm_options *opt,
                       const struct bz_game_ops *ops, const struct bz_game_config *sample_cfg,
                       const char *const *model_ids, size_t n_model_ids, int need_keys,
                       double backoff_base_s, struct bz_llm **out, struct bz_err *err);

/* Load and check prompts of ops from dir against sample_cfg's observations. */
int bz_llm_load_prompts(struct bz_llm *llm, const char *dir,
                        const struct bz_game_config *sample_cfg, struct bz_err *err);

/* The observation of request r in game g as the prompts see it: the game's
 * public/private/meta plus phase, agent, game and schema. Free with cJSON_Delete. */
struct cJSON *bz_llm_observation(const struct bz_game_ops *ops, struct bz_game *g,
                                 const struct bz_request *r, struct bz_err *err);

/* call.c: drop every call in flight (their drop callbacks run). */
void bz_llm_drop_all(struct bz_llm *llm);

#endif

/* llm_call: the request API llm/ gives LLM agents (src/agents/llm_agent.c).
 * One struct bz_llm_call is one decision's conversation with a model: the
 * first prompt and at most a repair, each sent with bz_llm_call_send. llm/
 * builds the provider request (the schema as OpenAI json_schema or an
 * Anthropic tool), asks the cache or the transport (retries, rate limits,
 * --replay), keeps the rank's totals and reports each reply through done().
 * An agent never sees a key, a curl handle or struct bz_llm's fields; llm/
 * never calls the agent but through the callbacks given here. */
#ifndef BAZAAR_LLM_CALL_H
#define BAZAAR_LLM_CALL_H

#include <stdint.h>

#include "bazaar/err.h"
#include "bazaar/game.h"

struct cJSON;

struct bz_llm;
struct bz_llm_call;

/* What came back for one send. */
struct bz_llm_reply {
    int ok;              /* 1: the model answered; content is its text */
    const char *content; /* valid during done() only */
    int refusal;         /* the model refused (content holds its words) */
    int truncated;       /* stopped at the token limit */
    int cache_hit;
    int counted; /* counts as a model call (answered, or failed on the wire) */
    int64_t input_tokens, output_tokens;
    int64_t cached_input_tokens; /* part of input_tokens served from the provider's cache */
    const char *model_version;   /* the model the provider reported ("" if none) */
    double cost_usd;
    double latency_ms; /* of the transfer (0 on a cache hit) */
    int retries;
    int http_status;     /* last HTTP status; 200 on a cache hit; 0: none */
    const char *outcome; /* !ok: http_error, too_big, network, bad_response, replay_miss,
                            internal */
    const char *error;   /* !ok: what went wrong, keys redacted; valid during done() */
    /* every attempt's outcome ("HTTP 429; reset; HTTP 200"), "" on a cache
     * hit; valid during done() */
    const char *attempts;
};

struct bz_llm_call_opts {
    int model;                 /* bz_llm_model_index */
    const char *system, *user; /* rendered prompts; must outlive the call */
    /* Chat history sent between the system prompt and user (memory):
     * n_history texts alternating user, assistant, oldest first (n_history
     * even); must outlive the call. */
    const char *const *history;
    int n_history;
    const char *schema_text; /* the phase's reply schema (bz_game_schema_text) */
    const char *schema_name; /* e.g. "publish_action" */
    uint64_t sample;         /* cache sample index */
    const void *owner;       /* bz_llm_cancel(llm, owner) drops the owner's calls */
    const char *label;       /* "game 3, agent 1, phase publish", for messages (copied) */
    /* Called once per send with its reply; may be called before send returns
     * (cache hit, --replay miss). The call may be freed inside done. */
    void (*done)(void *ctx, struct bz_llm_call *c, const struct bz_llm_reply *reply);
    /* The call was dropped (bz_llm_cancel or bz_llm_destroy) before done: free
     * ctx and the call (bz_llm_call_free). */
    void (*drop)(void *ctx, struct bz_llm_call *c);
    void *ctx;
};

/* Index of model id in the registry, or -1; and back. */
int bz_llm_model_index(const struct bz_llm *llm, const char *id);
const char *bz_llm_model_id(const struct bz_llm *llm, int model);

/* Render the system and phase prompts of request r (malloc'd, caller frees);
 * *turn is meta.turn of the observation, else -1. */
int bz_llm_render(const struct bz_llm *llm, struct bz_game *g, const struct bz_request *r,
                  char **system, char **user, int *turn, struct bz_err *err);
/* Cache sample index of a decision: the repetition and the agent. */
uint64_t bz_llm_sample_index(const struct bz_game_config *cfg, int agent);

/* The settings the agents follow (memory_turns, memory_max_tokens, reasoning). */
const struct bz_llm_settings *bz_llm_settings(const struct bz_llm *llm);
/* Provenance texts of the run, i = 0.. until it returns 0: the models
 * registry ("registry") and every prompt template ("template:<file>"). */
int bz_llm_provenance(const struct bz_llm *llm, size_t i, const char **name, const char **text);
/* Content address of a text: 128-bit hash of its bytes as 32 hex digits. */
#define BZ_LLM_TEXT_HASH_HEX 33
void bz_llm_text_hash(const char *text, char hex[BZ_LLM_TEXT_HASH_HEX]);

/* Lenient JSON extraction from a model's text: the whole text, else inside a
 * ``` fence, else from the first '{' to the last '}'. NULL when none parses;
 * free with cJSON_Delete. */
struct cJSON *bz_llm_extract_json(const char *text);

/* A new call (nothing sent yet); NULL when out of memory. */
struct bz_llm_call *bz_llm_call_new(struct bz_llm *llm, const struct bz_llm_call_opts *o);
/* Send the prompt; with prev_reply and repair (else NULL) as the repair turn
 * after the model's rejected reply. done() follows, once. */
void bz_llm_call_send(struct bz_llm_call *c, const char *prev_reply, const char *repair);
/* Free a call that is not in flight (inside or after done, or in drop). */
void bz_llm_call_free(struct bz_llm_call *c);

#endif

/* prompt: {{name}} templates rendered over an observation (cJSON). Names are
 * dotted paths (`private.storage_level`, `meta.turn`); sections
 * `{{#name}}...{{/name}}` render when the value is truthy and repeat over an
 * array (inside, names resolve against the element first, `{{.}}` is the
 * element itself); inverted sections `{{^name}}...{{/name}}` render when it is
 * missing, false, null, 0 or empty. Objects and arrays render as compact JSON.
 * An unknown name is an error, raised when a template is checked against a
 * sample observation at start-up. Never does network I/O. */
#ifndef BAZAAR_PROMPT_H
#define BAZAAR_PROMPT_H

#include <stddef.h>

#include "bazaar/err.h"

struct cJSON;
struct bz_template; /* parsed template */

#define BZ_PROMPT_MAX (256 * 1024) /* cap on a rendered prompt, bytes */

/* Parse text (origin names it in errors, e.g. the file path). Syntax errors
 * (unclosed tag, mismatched section) name origin and line. Free with
 * bz_template_destroy. */
int bz_template_parse(const char *text, const char *origin, struct bz_template **out,
                      struct bz_err *err);
/* Read and parse a file. */
int bz_template_load(const char *path, struct bz_template **out, struct bz_err *err);
void bz_template_destroy(struct bz_template *t);
const char *bz_template_origin(const struct bz_template *t);

/* Check that every name resolves in obs (inside sections over non-empty
 * arrays: against the first element or obs; inside sections over empty
 * arrays or missing values: not checked). BZ_EINVAL names origin, line and
 * the name. */
int bz_template_check(const struct bz_template *t, const struct cJSON *obs, struct bz_err *err);

/* Render into a new malloc'd string *out (caller frees). An unknown name is
 * BZ_EINVAL; a result over BZ_PROMPT_MAX is BZ_ENOMEM. */
int bz_template_render(const struct bz_template *t, const struct cJSON *obs, char **out,
                       struct bz_err *err);

#endif

/* tables_schema: `bazaar info --schema [GAME]`, every table and column with
 * its type, unit and meaning, printed from the same descriptors that lay out
 * the rows and the HDF5 types. Reads no file. */
#include <stdio.h>
#include <string.h>

#include "bazaar/tables.h"

static const char *const usage_schema =
    "usage: bazaar info --schema [GAME]\n"
    "\n"
    "Prints every table of a results file and its columns: type, unit and\n"
    "meaning. The common tables, then each game's /<game>/config (one column\n"
    "per parameter) and its own tables; only GAME's when given. Unit \"-\":\n"
    "none (ids, labels, flags, counts); \"1\": a dimensionless ratio. The file\n"
    "carries the same as each table's `units` and `doc` attributes (arrays in\n"
    "column order).\n";

static const char *unit_of(const struct bz_column *c)
{
    if (!c->unit)
        return "?";
    return c->unit[0] ? c->unit : "-";
}

static void print_table(FILE *f, const struct bz_table_desc *d, const char *what)
{
    size_t wn = 6, wu = 4;
    for (size_t i = 0; i < d->n_cols; i++) {
        size_t n = strlen(d->cols[i].name), u = strlen(unit_of(&d->cols[i]));
        wn = n > wn ? n : wn;
        wu = u > wu ? u : wu;
    }
    fprintf(f, "%s  (%s)\n", d->path, what);
    for (size_t i = 0; i < d->n_cols; i++) {
        const struct bz_column *c = &d->cols[i];
        char type[32]; /* "str": variable-length; "s32": at most 32 bytes, fixed width */
        if (c->type == BZ_COL_STR && c->width)
            snprintf(type, sizeof type, "s%zu", c->width);
        else
            snprintf(type, sizeof type, "%s", bz_col_type_name(c->type));
        fprintf(f, "  %-*s  %-4s  %-*s  %s\n", (int)wn, c->name, type, (int)wu, unit_of(c),
                c->doc ? c->doc : "(not documented)");
    }
    fputc('\n', f);
}

static int print_game(FILE *f, const struct bz_game_ops *ops, struct bz_err *err)
{
    const struct bz_table_desc *cfg = bz_tables_config(ops);
    if (!cfg)
        return bz_err_set(err, BZ_ENOMEM, "out of memory");
    char what[128];
    snprintf(what, sizeof what, "%s: one row per game, a column per parameter", ops->name);
    print_table(f, cfg, what);
    snprintf(what, sizeof what, "%s", ops->name);
    for (size_t i = 0; i < ops->n_tables; i++)
        print_table(f, ops->tables[i], what);
    return BZ_OK;
}

int bz_tables_print_schema(FILE *f, const char *game, struct bz_err *err)
{
    int rc;
    if (game) {
        const struct bz_game_ops *ops = bz_game_find(game);
        if (!ops) {
            char names[256] = "";
            size_t len = 0;
            for (size_t i = 0; i < bz_game_count() && len < sizeof names; i++) {
                int w = snprintf(names + len, sizeof names - len, "%s%s", i ? ", " : "",
                                 bz_game_at(i)->name);
                len += w > 0 ? (size_t)w : 0;
            }
            return bz_err_set(err, BZ_EINVAL, "no game '%s' (games: %s)", game, names);
        }
        return print_game(f, ops, err);
    }
    for (size_t i = 0; i < bz_tables_common_count(); i++)
        print_table(f, bz_tables_common_at(i), "every game");
    /* not a table: the bytes /llm_texts indexes (out_texts.c writes both) */
    fprintf(f, "/llm_text_bytes  (every game: u8 array, chunked, deflate-compressed)\n"
               "  the texts of /llm_texts back to back (UTF-8, no separators): a text is\n"
               "  bytes [offset, offset + length); each distinct text of the sweep once\n\n");
    for (size_t i = 0; i < bz_game_count(); i++)
        if ((rc = print_game(f, bz_game_at(i), err)))
            return rc;
    return BZ_OK;
}

int bz_tables_schema_cmd(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_schema, stdout);
            return 0;
        }
    if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
        fputs(usage_schema, stderr);
        return 2;
    }
    struct bz_err err = {0};
    int rc = bz_tables_print_schema(stdout, argc == 2 ? argv[1] : NULL, &err);
    if (rc) {
        fprintf(stderr, "bazaar: %s\n", err.msg);
        return rc == BZ_EINVAL ? 2 : 1;
    }
    return 0;
}

/*
 * score_json.c - `drainguard score --json`: the same figures as the text
 * report, as one JSON document (written with dg_buf, read back by
 * --combine with cJSON). Unknown figures (USD without --events) are null.
 *
 * --combine reads several such documents (one per seed) and prints one
 * table: every run's figure side by side, and whether each target held on
 * every run, with the worst value.
 */
#include "score.h"
#include "event.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static void jkey(dg_buf *b, const char *k)
{
    dg_buf_json_str(b, k, strlen(k));
    dg_buf_putc(b, ':');
}

static void jstr(dg_buf *b, const char *k, const char *v)
{
    jkey(b, k);
    if (v)
        dg_buf_json_str(b, v, strlen(v));
    else
        dg_buf_puts(b, "null");
    dg_buf_putc(b, ',');
}

static void jnum(dg_buf *b, const char *k, double v, int known)
{
    jkey(b, k);
    if (known && isfinite(v))
        dg_buf_printf(b, "%.6f", v);
    else
        dg_buf_puts(b, "null");
    dg_buf_putc(b, ',');
}

static void jint(dg_buf *b, const char *k, uint64_t v)
{
    jkey(b, k);
    dg_buf_printf(b, "%llu,", (unsigned long long)v);
}

static void jbool(dg_buf *b, const char *k, int v)
{
    jkey(b, k);
    dg_buf_puts(b, v ? "true," : "false,");
}

/* close an object or array, dropping a trailing comma */
static void jclose(dg_buf *b, char c)
{
    if (b->len && b->data[b->len - 1] == ',')
        b->len--;
    dg_buf_putc(b, c);
    dg_buf_putc(b, ',');
}

static void jcounts(dg_buf *b, const char *k, const struct dg_score_counts *c)
{
    struct dg_score_count **v = dg_score_counts_sorted(c);
    jkey(b, k);
    dg_buf_putc(b, '{');
    for (size_t i = 0; i < c->n; i++)
        jint(b, v[i]->id, v[i]->n);
    jclose(b, '}');
    free(v);
}

static void scenario_json(dg_buf *b, const struct dg_score *s, size_t i, int k)
{
    const struct dg_score_scenario *c = &s->scn[i];
    const struct dg_score_result *r = &c->res[k];
    double pct = dg_score_stopped_pct(s, i, k);
    char dur[32];

    dg_buf_putc(b, '{');
    jstr(b, "name", c->name);
    jint(b, "attack_events", c->attack_events);
    jstr(b, "value_type", dg_event_type_name(c->value_type));
    jint(b, "value_events", c->value_events);
    jnum(b, "usd_total", c->usd_total, s->have_events);
    jbool(b, "detected", r->detected);
    jnum(b, "usd_stopped", r->usd_stopped, s->have_events);
    jnum(b, "usd_stopped_pct", pct, pct >= 0);
    jnum(b, "usd_allowed_before_first_stop", r->usd_before_stop, s->have_events);
    jnum(b, "first_stop_after_ms", (double)r->stop_after_ms, r->has_stop);
    dg_score_fmt_dur(r->stop_after_ms, dur);
    jstr(b, "first_stop_after", r->has_stop ? dur : NULL);
    jnum(b, "events_to_first_stop", (double)r->events_to_stop, r->has_stop);
    jcounts(b, "rules", &r->rules);
    jcounts(b, "shadow_rules", &r->shadow);
    jkey(b, "met");
    dg_buf_putc(b, '{');
    jbool(b, "detected", r->detected);
    jbool(b, "usd_stopped", pct >= DG_SCORE_TARGET_STOPPED_PCT);
    jclose(b, '}');
    jclose(b, '}');
}

static void legit_json(dg_buf *b, const struct dg_score *s, int k)
{
    const struct dg_score_legit *lg = &s->legit[k];
    /* the rates the targets judge: holds behind an attack's freeze left out */
    double hf = dg_score_pct(dg_score_fp_holdfreeze(s, k), lg->requests),
           rv = dg_score_pct(dg_score_fp_review(s, k), lg->requests);

    jkey(b, "legitimate");
    dg_buf_putc(b, '{');
    jint(b, "requests", lg->requests);
    jint(b, "hold_freeze", lg->holdfreeze);
    jnum(b, "hold_freeze_pct", hf, 1);
    jint(b, "hold_freeze_behind_attack_freeze", lg->holdfreeze_collateral);
    jint(b, "review", lg->review);
    jnum(b, "review_pct", rv, 1);
    jint(b, "review_behind_attack_freeze", lg->review_collateral);
    jkey(b, "wallets_wrongly_frozen");
    dg_buf_putc(b, '[');
    for (size_t i = 0; i < lg->nfrozen; i++) {
        dg_buf_json_str(b, lg->frozen_wallets[i], strlen(lg->frozen_wallets[i]));
        dg_buf_putc(b, ',');
    }
    jclose(b, ']');
    jint(b, "outflows", lg->outflows);
    jint(b, "outflow_alarms", lg->outflow_alarms);
    jint(b, "outflow_alarms_excused", lg->outflow_excused);
    jint(b, "outflow_alarms_behind_attack_freeze", lg->outflow_collateral);
    jkey(b, "outflow_alarms_not_excused");
    if (s->have_events)
        dg_buf_printf(b, "%llu,", (unsigned long long)dg_score_fp_outflows(s, k));
    else
        dg_buf_puts(b, "null,");
    jcounts(b, "false_positive_rules", &lg->fp_rules);
    jkey(b, "met");
    dg_buf_putc(b, '{');
    jbool(b, "hold_freeze", hf <= DG_SCORE_TARGET_HOLDFREEZE_PCT);
    jbool(b, "review", rv <= DG_SCORE_TARGET_REVIEW_PCT);
    jbool(b, "outflow_alarms", s->have_events && dg_score_fp_outflows(s, k) == 0);
    jclose(b, '}');
    jclose(b, '}');
}

void dg_score_json(const struct dg_score *s, const char *name, dg_buf *b)
{
    dg_buf_putc(b, '{');
    jstr(b, "name", name);
    jkey(b, "inputs");
    dg_buf_putc(b, '{');
    jstr(b, "labels", s->path_labels);
    jstr(b, "events", s->path_events);
    jint(b, "events_lines", s->n_events);
    jint(b, "attack_events_labelled", s->nev);
    jclose(b, '}');
    jkey(b, "targets");
    dg_buf_putc(b, '{');
    jnum(b, "usd_stopped_min_pct", DG_SCORE_TARGET_STOPPED_PCT, 1);
    jnum(b, "hold_freeze_max_pct", DG_SCORE_TARGET_HOLDFREEZE_PCT, 1);
    jnum(b, "review_max_pct", DG_SCORE_TARGET_REVIEW_PCT, 1);
    jint(b, "outflow_alarms_not_excused_max", 0);
    jclose(b, '}');
    jkey(b, "packs");
    dg_buf_putc(b, '[');
    for (int k = 0; k < s->nsides; k++) {
        dg_buf_putc(b, '{');
        jstr(b, "name", s->side_name[k]);
        jstr(b, "decisions", s->path_decisions[k]);
        jint(b, "decisions_count", s->n_decisions[k]);
        jint(b, "attack_events_without_decision", s->missing_decisions[k]);
        jkey(b, "scenarios");
        dg_buf_putc(b, '[');
        for (size_t i = 0; i < s->nscn; i++)
            scenario_json(b, s, i, k);
        jclose(b, ']');
        legit_json(b, s, k);
        jcounts(b, "rule_hits_attack", &s->attack_hits[k]);
        jcounts(b, "rule_hits_legitimate", &s->legit[k].hits);
        jbool(b, "all_targets_met", dg_score_all_met(s, k));
        jclose(b, '}');
    }
    jclose(b, ']');
    jclose(b, '}');
    b->len--; /* the last jclose's comma */
    dg_buf_puts(b, "\n");
}

/* ---- --combine ---- */

static cJSON *read_json(const char *path, char *errstr, size_t n)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(errstr, n, "cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    dg_buf b = {0};
    char chunk[65536];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.len + got > 64u * 1024 * 1024) {
            snprintf(errstr, n, "'%s' is larger than 64 MiB", path);
            goto out_fail;
        }
        dg_buf_append(&b, chunk, got);
    }
    cJSON *j = b.len ? cJSON_ParseWithLength(b.data, b.len) : NULL;
    if (!j || !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "packs"))) {
        cJSON_Delete(j);
        snprintf(errstr, n, "'%s' is not a `drainguard score --json` document", path);
        goto out_fail;
    }
    fclose(f);
    dg_buf_free(&b);
    return j;
out_fail:
    fclose(f);
    dg_buf_free(&b);
    return NULL;
}

static const cJSON *find_named(const cJSON *arr, const char *name)
{
    const cJSON *x;
    cJSON_ArrayForEach(x, arr) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(x, "name");
        if (cJSON_IsString(nm) && !strcmp(nm->valuestring, name))
            return x;
    }
    return NULL;
}

static const cJSON *get_path(const cJSON *o, const char *a, const char *b)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, a);
    return b ? cJSON_GetObjectItemCaseSensitive(x, b) : x;
}

enum fig_kind { FIG_BOOL, FIG_PCT_DOWN, FIG_PCT_UP, FIG_USD, FIG_DUR, FIG_INT, FIG_LIST_LEN };

struct figure {
    const char *label, *key, *met, *target;
    enum fig_kind kind;
};

static void fmt_fig(const cJSON *v, enum fig_kind kind, char out[32])
{
    if (kind == FIG_BOOL) {
        snprintf(out, 32, "%s", cJSON_IsTrue(v) ? "yes" : cJSON_IsFalse(v) ? "no" : "?");
        return;
    }
    if (kind == FIG_LIST_LEN) {
        snprintf(out, 32, "%d", cJSON_IsArray(v) ? cJSON_GetArraySize(v) : 0);
        return;
    }
    if (!cJSON_IsNumber(v)) {
        snprintf(out, 32, "%s", kind == FIG_DUR ? "never" : "n/a");
        return;
    }
    switch (kind) {
    case FIG_PCT_DOWN: dg_score_fmt_pct(v->valuedouble, 1, 0, out); break;
    case FIG_PCT_UP: dg_score_fmt_pct(v->valuedouble, 2, 1, out); break;
    case FIG_USD: dg_score_fmt_usd(v->valuedouble, out); break;
    case FIG_DUR: dg_score_fmt_dur((int64_t)v->valuedouble, out); break;
    default: dg_score_fmt_int((uint64_t)v->valuedouble, out); break;
    }
}

/* one table row: the figure on every run, default / baseline, then whether
 * its target held on every run for each pack */
static void combine_row(FILE *out, cJSON **docs, size_t n, const char *shown, const char *scn,
                        const struct figure *f, const char *const *packs, size_t npacks)
{
    int met_all[2] = {1, 1};
    fprintf(out, "%-18s%-28s", shown, f->label);
    for (size_t d = 0; d < n; d++) {
        char cell[80] = "";
        for (size_t p = 0; p < npacks; p++) {
            const cJSON *pk = find_named(cJSON_GetObjectItemCaseSensitive(docs[d], "packs"), packs[p]);
            const cJSON *obj = scn ? find_named(cJSON_GetObjectItemCaseSensitive(pk, "scenarios"), scn)
                                   : cJSON_GetObjectItemCaseSensitive(pk, "legitimate");
            char v[32];
            fmt_fig(cJSON_GetObjectItemCaseSensitive(obj, f->key), f->kind, v);
            if (!obj)
                snprintf(v, sizeof v, "-");
            size_t l = strlen(cell);
            snprintf(cell + l, sizeof cell - l, "%s%s", p ? " / " : "", v);
            if (f->met && !cJSON_IsTrue(get_path(obj, "met", f->met)))
                met_all[p] = 0;
        }
        fprintf(out, "%-20s", cell);
    }
    if (f->met) {
        fprintf(out, "%-10s", f->target);
        for (size_t p = 0; p < npacks; p++)
            fprintf(out, "%-*s", p + 1 < npacks ? 10 : 0, met_all[p] ? "met" : "NOT met");
    }
    fputc('\n', out);
}

int dg_score_combine(const char *const *paths, size_t n, FILE *out, char *errstr, size_t errstr_size)
{
    static const struct figure scn_figs[] = {
        {"detected", "detected", "detected", "detected", FIG_BOOL},
        {"USD stopped", "usd_stopped_pct", "usd_stopped", ">= 90%", FIG_PCT_DOWN},
        {"USD allowed before stop", "usd_allowed_before_first_stop", NULL, NULL, FIG_USD},
        {"first stop after", "first_stop_after_ms", NULL, NULL, FIG_DUR},
    };
    static const struct figure legit_figs[] = {
        {"withdrawal requests", "requests", NULL, NULL, FIG_INT},
        {"hold+freeze", "hold_freeze_pct", "hold_freeze", "<= 0.5%", FIG_PCT_UP},
        {"review", "review_pct", "review", "<= 2%", FIG_PCT_UP},
        {"wallets wrongly frozen", "wallets_wrongly_frozen", NULL, NULL, FIG_LIST_LEN},
        {"outflows held or frozen", "outflow_alarms", NULL, NULL, FIG_INT},
        {"outflow alarms, not excused", "outflow_alarms_not_excused", "outflow_alarms", "0", FIG_INT},
    };
    const char *packs[2] = {"default", "baseline"};
    size_t npacks = 2;
    cJSON **docs = dg_xcalloc(n ? n : 1, sizeof *docs);
    int rc = -1;

    for (size_t d = 0; d < n; d++)
        if (!(docs[d] = read_json(paths[d], errstr, errstr_size)))
            goto out_free;
    for (size_t d = 0; d < n; d++)
        if (!find_named(cJSON_GetObjectItemCaseSensitive(docs[d], "packs"), "baseline"))
            npacks = 1;

    fprintf(out, "combined over %zu runs; each cell is %s%s; a target is met when it held on every run\n\n",
            n, packs[0], npacks > 1 ? " / baseline" : "");
    fprintf(out, "%-18s%-28s", "", "");
    for (size_t d = 0; d < n; d++) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(docs[d], "name");
        char label[24];
        snprintf(label, sizeof label, "%s", cJSON_IsString(nm) ? nm->valuestring : paths[d]);
        fprintf(out, "%-20s", label);
    }
    fprintf(out, "%-10s", "target");
    for (size_t p = 0; p < npacks; p++)
        fprintf(out, "%-10s", packs[p]);
    fputc('\n', out);

    /* the scenarios of the first run, in its order */
    const cJSON *pk0 = find_named(cJSON_GetObjectItemCaseSensitive(docs[0], "packs"), packs[0]);
    const cJSON *sc;
    cJSON_ArrayForEach(sc, cJSON_GetObjectItemCaseSensitive(pk0, "scenarios")) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(sc, "name");
        if (!cJSON_IsString(nm))
            continue;
        for (size_t f = 0; f < DG_ARRAY_LEN(scn_figs); f++)
            combine_row(out, docs, n, f ? "" : nm->valuestring, nm->valuestring, &scn_figs[f], packs, npacks);
    }
    for (size_t f = 0; f < DG_ARRAY_LEN(legit_figs); f++)
        combine_row(out, docs, n, f ? "" : "legitimate", NULL, &legit_figs[f], packs, npacks);
    fputc('\n', out);
    for (size_t p = 0; p < npacks; p++) {
        int all = 1;
        for (size_t d = 0; d < n; d++) {
            const cJSON *pk = find_named(cJSON_GetObjectItemCaseSensitive(docs[d], "packs"), packs[p]);
            if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pk, "all_targets_met")))
                all = 0;
        }
        fprintf(out, "%s: %s\n", packs[p], all ? "every target met on every run" : "targets NOT met (see the rows above)");
    }
    rc = 0;
out_free:
    for (size_t d = 0; d < n; d++)
        cJSON_Delete(docs[d]);
    free(docs);
    return rc;
}

/*
 * score_text.c - `drainguard score`, the plain-text report: per scenario and
 * for legitimate traffic, the pack's figures beside the baseline's, each
 * next to its target with met / NOT met. Also the number formats every
 * score output shares ("$1.2M", "2m13s", percentages rounded against the
 * target so a figure never reads better than it is).
 */
#include "score.h"
#include "event.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void dg_score_fmt_usd(double usd, char out[32])
{
    double a = fabs(usd);
    const char *sign = usd < 0 ? "-" : "";
    if (a >= 999.95e6)
        snprintf(out, 32, "%s$%.2fB", sign, a / 1e9);
    else if (a >= 999.95e3)
        snprintf(out, 32, "%s$%.1fM", sign, a / 1e6);
    else if (a >= 99950)
        snprintf(out, 32, "%s$%.0fk", sign, a / 1e3);
    else if (a >= 999.5)
        snprintf(out, 32, "%s$%.1fk", sign, a / 1e3);
    else
        snprintf(out, 32, "%s$%.0f", sign, a);
    /* "$5.0M" reads as "$5M" */
    char *dot = strstr(out, ".0");
    if (dot && (dot[2] == 'k' || dot[2] == 'M' || dot[2] == 'B'))
        memmove(dot, dot + 2, strlen(dot + 2) + 1);
    else if ((dot = strstr(out, ".00B")))
        memmove(dot, dot + 3, strlen(dot + 3) + 1);
}

void dg_score_fmt_dur(int64_t ms, char out[32])
{
    const char *sign = ms < 0 ? "-" : "";
    int64_t a = ms < 0 ? -ms : ms;
    if (a == 0)
        snprintf(out, 32, "0s");
    else if (a < 1000)
        snprintf(out, 32, "%s%lldms", sign, (long long)a);
    else if (a < 60000)
        snprintf(out, 32, "%s%.1fs", sign, (double)a / 1000.0);
    else if (a < 3600000)
        snprintf(out, 32, "%s%lldm%02llds", sign, (long long)(a / 60000), (long long)(a / 1000 % 60));
    else if (a < 86400000)
        snprintf(out, 32, "%s%lldh%02lldm", sign, (long long)(a / 3600000), (long long)(a / 60000 % 60));
    else
        snprintf(out, 32, "%s%lldd%02lldh", sign, (long long)(a / 86400000), (long long)(a / 3600000 % 24));
}

void dg_score_fmt_pct(double pct, int decimals, int up, char out[32])
{
    double scale = pow(10.0, decimals);
    double v = up ? ceil(pct * scale - 1e-9) / scale : floor(pct * scale + 1e-9) / scale;
    if (v <= 0)
        v = 0; /* no "-0.00%" */
    snprintf(out, 32, "%.*f%%", decimals, v);
}

void dg_score_fmt_int(uint64_t v, char out[32])
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v), o = 0;
    for (int i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = tmp[i];
    }
    out[o] = '\0';
}

/* ---- the report ---- */

#define LABEL_W 38
#define CELL_W 30

static void row(FILE *out, const struct dg_score *s, const char *label, char cells[][96])
{
    fprintf(out, "  %-*s", LABEL_W, label);
    for (int k = 0; k < s->nsides; k++)
        fprintf(out, "%-*s", k + 1 < s->nsides ? CELL_W : 0, cells[k]);
    fputc('\n', out);
}

static void verdict_cell(char cell[96], const char *value, int met)
{
    snprintf(cell, 96, "%-17s%s", value, met ? "met" : "NOT met");
}

static void print_counts(FILE *out, const char *title, const struct dg_score_counts *c, size_t limit)
{
    struct dg_score_count **v = dg_score_counts_sorted(c);
    fprintf(out, "    %-12s", title);
    if (!c->n)
        fputs("(none)", out);
    size_t col = 16;
    for (size_t i = 0; i < c->n && i < limit; i++) {
        char item[DG_SCORE_MAX_NAME + 32];
        int l = snprintf(item, sizeof item, "%s%s x%llu", i ? ", " : "", v[i]->id,
                         (unsigned long long)v[i]->n);
        if (col + (size_t)l > 100 && i) {
            fprintf(out, ",\n    %-12s", "");
            l = snprintf(item, sizeof item, "%s x%llu", v[i]->id, (unsigned long long)v[i]->n);
            col = 16;
        }
        fputs(item, out);
        col += (size_t)l;
    }
    if (c->n > limit)
        fprintf(out, ", ... (%zu more)", c->n - limit);
    fputc('\n', out);
    free(v);
}

static void scenario_block(FILE *out, const struct dg_score *s, size_t i)
{
    const struct dg_score_scenario *c = &s->scn[i];
    char cells[DG_SCORE_SIDES][96], usd[32], v[32];
    const char *what = c->value_type == DG_EV_OUTFLOW ? "outflows" : "requests";

    if (s->have_events) {
        dg_score_fmt_usd(c->usd_total, usd);
        fprintf(out, "%s: %llu attack events, %llu %s worth %s\n", c->name,
                (unsigned long long)c->attack_events, (unsigned long long)c->value_events, what, usd);
    } else {
        fprintf(out, "%s: %llu attack events, %llu %s (no --events: no USD figures)\n", c->name,
                (unsigned long long)c->attack_events, (unsigned long long)c->value_events, what);
    }
    if (!c->nev) {
        fprintf(out, "  (no labelled events: this scenario was not in the input)\n\n");
        return;
    }
    for (int k = 0; k < s->nsides; k++)
        verdict_cell(cells[k], c->res[k].detected ? "yes" : "no", c->res[k].detected);
    row(out, s, "detected", cells);
    for (int k = 0; k < s->nsides; k++) {
        double p = dg_score_stopped_pct(s, i, k);
        if (p < 0)
            snprintf(v, sizeof v, "n/a");
        else
            dg_score_fmt_pct(p, 1, 0, v);
        verdict_cell(cells[k], v, p >= DG_SCORE_TARGET_STOPPED_PCT);
    }
    row(out, s, "USD stopped (target >= 90%)", cells);
    for (int k = 0; k < s->nsides && k < DG_SCORE_SIDES; k++)
        if (s->have_events)
            dg_score_fmt_usd(c->res[k].usd_before_stop, cells[k]);
        else
            snprintf(cells[k], 96, "n/a");
    row(out, s, "USD allowed before the first stop", cells);
    for (int k = 0; k < s->nsides; k++) {
        if (!c->res[k].has_stop) {
            snprintf(cells[k], 96, "never");
            continue;
        }
        dg_score_fmt_dur(c->res[k].stop_after_ms, v);
        snprintf(cells[k], 96, "%s", v);
    }
    row(out, s, "first stop after (from attack start)", cells);
    for (int k = 0; k < s->nsides; k++)
        if (c->res[k].has_stop)
            snprintf(cells[k], 96, "%llu of %llu", (unsigned long long)c->res[k].events_to_stop,
                     (unsigned long long)c->attack_events);
        else
            snprintf(cells[k], 96, "-");
    row(out, s, "attack events up to the first stop", cells);
    fprintf(out, "  rules that fired on its events:\n");
    for (int k = 0; k < s->nsides; k++) {
        char t[32];
        snprintf(t, sizeof t, "%s:", s->side_name[k]);
        print_counts(out, t, &c->res[k].rules, 12);
        if (c->res[k].shadow.n)
            print_counts(out, "  shadow:", &c->res[k].shadow, 12);
    }
    fputc('\n', out);
}

static void legit_block(FILE *out, const struct dg_score *s)
{
    char cells[DG_SCORE_SIDES][96], v[32], n[32];

    fprintf(out, "legitimate traffic\n");
    for (int k = 0; k < s->nsides; k++)
        dg_score_fmt_int(s->legit[k].requests, cells[k]);
    row(out, s, "withdrawal requests", cells);
    for (int k = 0; k < s->nsides; k++) {
        const struct dg_score_legit *lg = &s->legit[k];
        double p = dg_score_pct(dg_score_fp_holdfreeze(s, k), lg->requests);
        dg_score_fmt_pct(p, 2, 1, v);
        dg_score_fmt_int(dg_score_fp_holdfreeze(s, k), n);
        char both[72];
        snprintf(both, sizeof both, "%s (%s)", v, n);
        verdict_cell(cells[k], both, p <= DG_SCORE_TARGET_HOLDFREEZE_PCT);
    }
    row(out, s, "hold+freeze (target <= 0.5%)", cells);
    for (int k = 0; k < s->nsides; k++)
        dg_score_fmt_int(s->legit[k].holdfreeze_collateral, cells[k]);
    row(out, s, "  not counted: behind attack freeze", cells);
    for (int k = 0; k < s->nsides; k++) {
        const struct dg_score_legit *lg = &s->legit[k];
        double p = dg_score_pct(dg_score_fp_review(s, k), lg->requests);
        dg_score_fmt_pct(p, 2, 1, v);
        dg_score_fmt_int(dg_score_fp_review(s, k), n);
        char both[72];
        snprintf(both, sizeof both, "%s (%s)", v, n);
        verdict_cell(cells[k], both, p <= DG_SCORE_TARGET_REVIEW_PCT);
    }
    row(out, s, "review (target <= 2%)", cells);
    for (int k = 0; k < s->nsides; k++)
        snprintf(cells[k], 96, "%zu", s->legit[k].nfrozen);
    row(out, s, "wallets wrongly frozen", cells);
    for (int k = 0; k < s->nsides; k++)
        dg_score_fmt_int(s->legit[k].outflows, cells[k]);
    row(out, s, "outflows", cells);
    for (int k = 0; k < s->nsides; k++)
        dg_score_fmt_int(s->legit[k].outflow_alarms, cells[k]);
    row(out, s, "outflows held or frozen", cells);
    for (int k = 0; k < s->nsides; k++)
        dg_score_fmt_int(s->legit[k].outflow_excused, cells[k]);
    row(out, s, "  paying a request that was stopped", cells);
    for (int k = 0; k < s->nsides; k++)
        dg_score_fmt_int(s->legit[k].outflow_collateral, cells[k]);
    row(out, s, "  not counted: behind attack freeze", cells);
    for (int k = 0; k < s->nsides; k++) {
        if (!s->have_events) {
            verdict_cell(cells[k], "n/a", 0);
            continue;
        }
        dg_score_fmt_int(dg_score_fp_outflows(s, k), n);
        verdict_cell(cells[k], n, dg_score_fp_outflows(s, k) == 0);
    }
    row(out, s, "outflow alarms not excused (target 0)", cells);
    for (int k = 0; k < s->nsides; k++) {
        const struct dg_score_legit *lg = &s->legit[k];
        if (lg->nfrozen) {
            fprintf(out, "    %s: wrongly frozen:", s->side_name[k]);
            for (size_t i = 0; i < lg->nfrozen && i < 20; i++)
                fprintf(out, " %s", lg->frozen_wallets[i]);
            fprintf(out, "%s\n", lg->nfrozen > 20 ? " ..." : "");
        }
    }
    fprintf(out, "  rules behind the false positives:\n");
    for (int k = 0; k < s->nsides; k++) {
        char t[32];
        snprintf(t, sizeof t, "%s:", s->side_name[k]);
        print_counts(out, t, &s->legit[k].fp_rules, 12);
    }
    fputc('\n', out);
}

void dg_score_text(const struct dg_score *s, FILE *out)
{
    char a[32], b[32];
    size_t nlabelled = 0;
    for (size_t i = 0; i < s->nscn; i++)
        nlabelled += s->scn[i].nev ? 1 : 0;

    fprintf(out, "drainguard score\n");
    dg_score_fmt_int(s->nev, a);
    fprintf(out, "  labels     %s: %s attack events in %zu scenarios\n", s->path_labels, a, nlabelled);
    if (s->have_events) {
        dg_score_fmt_int(s->n_events, a);
        dg_score_fmt_int(s->n_bad_events, b);
        fprintf(out, "  events     %s: %s lines (%s without an event_id)\n", s->path_events, a, b);
    }
    for (int k = 0; k < s->nsides; k++) {
        dg_score_fmt_int(s->n_decisions[k], a);
        fprintf(out, "  %-10s %s: %s decisions\n", s->side_name[k], s->path_decisions[k], a);
        if (s->missing_decisions[k])
            fprintf(out, "  warning: %llu attack requests/outflows have no decision in %s "
                         "(counted as allowed)\n",
                    (unsigned long long)s->missing_decisions[k], s->path_decisions[k]);
    }
    fputc('\n', out);
    fprintf(out, "  %-*s", LABEL_W, "");
    for (int k = 0; k < s->nsides; k++)
        fprintf(out, "%-*s", CELL_W, s->side_name[k]);
    fprintf(out, "\n");
    for (size_t i = 0; i < s->nscn; i++)
        scenario_block(out, s, i);
    legit_block(out, s);

    for (int k = 0; k < s->nsides; k++) {
        int met = 0, total = 0;
        for (size_t i = 0; i < s->nscn; i++) {
            total++;
            met += dg_score_scenario_met(s, i, k);
        }
        total++;
        met += dg_score_legit_met(s, k);
        fprintf(out, "%s: %s (%d of %d: each scenario detected with >= 90%% of its USD stopped; "
                     "legitimate traffic within its limits)\n",
                s->side_name[k], met == total ? "every target met" : "targets NOT met", met, total);
    }
}

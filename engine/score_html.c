/*
 * score_html.c - `drainguard score --html FILE`: one self-contained page for
 * a security engineer: the summary (pack vs baseline, each figure against its
 * target), per scenario a chart of attack USD allowed over time with the
 * first stop of each pack marked, and rule hits on attack vs legitimate
 * traffic. Inline CSS and SVG only: no script, no font or image from
 * anywhere, so the page reads the same offline, in a ticket or an e-mail.
 * Every name from the input files is HTML-escaped.
 */
#include "score.h"
#include "event.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const pack_color[DG_SCORE_SIDES] = {"#1f6feb", "#d9822b"};
#define TOTAL_COLOR "#9aa0a6"

static void esc(dg_buf *b, const char *s)
{
    for (; *s; s++)
        switch (*s) {
        case '<': dg_buf_puts(b, "&lt;"); break;
        case '>': dg_buf_puts(b, "&gt;"); break;
        case '&': dg_buf_puts(b, "&amp;"); break;
        case '"': dg_buf_puts(b, "&quot;"); break;
        case '\'': dg_buf_puts(b, "&#39;"); break;
        default: dg_buf_putc(b, *s);
        }
}

static void verdict(dg_buf *b, int met)
{
    dg_buf_printf(b, "<span class=\"%s\">%s</span>", met ? "met" : "miss", met ? "met" : "NOT met");
}

/* ---- axes ---- */

/* A "nice" step (1, 2, 2.5, 5 x 10^k) giving about `ticks` ticks over range. */
static double nice_step(double range, int ticks)
{
    if (range <= 0)
        return 1;
    double raw = range / ticks, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * p;
}

/* Steps a clock reads well in, in ms. */
static int64_t time_step(int64_t range_ms, int ticks)
{
    static const int64_t steps[] = {1000, 2000, 5000, 10000, 15000, 30000, 60000, 120000, 300000,
                                    600000, 900000, 1800000, 3600000, 7200000, 10800000, 21600000,
                                    43200000, 86400000, 172800000, 604800000};
    for (size_t i = 0; i < DG_ARRAY_LEN(steps); i++)
        if (range_ms / steps[i] <= ticks)
            return steps[i];
    return steps[DG_ARRAY_LEN(steps) - 1];
}

/* ---- the per-scenario chart ---- */

#define CW 540   /* chart width */
#define CH 300
#define ML 64    /* margins: left (y labels), right, top (stop labels), bottom (x labels) */
#define MR 24
#define MT 44
#define MB 44

struct frame {
    int64_t t_max;
    double y_max;
};

static double fx(const struct frame *f, int64_t t)
{
    if (t < 0)
        t = 0;
    return ML + (double)(CW - ML - MR) * (double)t / (double)f->t_max;
}

static double fy(const struct frame *f, double usd)
{
    return CH - MB - (double)(CH - MT - MB) * usd / f->y_max;
}

/* cumulative USD of the value events (side -1: all of them; else the allowed ones) */
static void step_path(dg_buf *b, const struct dg_score *s, const struct dg_score_scenario *c,
                      const struct frame *f, int side, const char *color, const char *dash)
{
    double cum = 0;
    dg_buf_printf(b, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"%s\"%s%s%s d=\"M%.1f %.1f", color,
                  side < 0 ? "1.5" : "2.5", dash ? " stroke-dasharray=\"" : "", dash ? dash : "",
                  dash ? "\"" : "", fx(f, 0), fy(f, 0));
    for (size_t k = 0; k < c->nev; k++) {
        const struct dg_score_event *e = &s->ev[c->ev[k]];
        if (e->type != c->value_type || !e->has_ts)
            continue;
        if (side >= 0 && e->action[side] > 0)
            continue;
        cum += e->usd;
        dg_buf_printf(b, " H%.1f V%.1f", fx(f, e->ts - c->start_ts), fy(f, cum));
    }
    dg_buf_printf(b, " H%.1f\"/>\n", fx(f, f->t_max));
}

static void chart(dg_buf *b, const struct dg_score *s, size_t i)
{
    const struct dg_score_scenario *c = &s->scn[i];
    struct frame f = {.t_max = 1000, .y_max = 1};
    char t[32], u[32];

    for (size_t k = 0; k < c->nev; k++) {
        const struct dg_score_event *e = &s->ev[c->ev[k]];
        if (e->type == c->value_type && e->has_ts && e->ts - c->start_ts > f.t_max)
            f.t_max = e->ts - c->start_ts;
    }
    for (int k = 0; k < s->nsides; k++)
        if (c->res[k].has_stop && c->res[k].stop_after_ms > f.t_max)
            f.t_max = c->res[k].stop_after_ms;
    int64_t tstep = time_step(f.t_max, 6);
    f.t_max = ((f.t_max * 21 / 20) / tstep + 1) * tstep; /* room after the last event */
    double ystep = nice_step(c->usd_total > 0 ? c->usd_total : 1, 5);
    f.y_max = ceil((c->usd_total > 0 ? c->usd_total : 1) * 1.02 / ystep) * ystep;

    dg_buf_printf(b, "<svg class=\"chart\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" role=\"img\" "
                     "aria-label=\"attack USD allowed over time\">\n", CW, CH, CW, CH);
    /* grid and y axis */
    for (double y = 0; y <= f.y_max + ystep / 2; y += ystep) {
        dg_score_fmt_usd(y, u);
        dg_buf_printf(b, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>"
                         "<text x=\"%d\" y=\"%.1f\" class=\"ylab\">%s</text>\n",
                      ML, CW - MR, fy(&f, y), fy(&f, y), ML - 6, fy(&f, y) + 4, u);
    }
    /* x axis */
    for (int64_t x = 0; x <= f.t_max; x += tstep) {
        dg_duration_format(x, t); /* ticks fall on whole units: "2m", "1h30m" */
        if (x == 0)
            snprintf(t, sizeof t, "0");
        dg_buf_printf(b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" class=\"tick\"/>"
                         "<text x=\"%.1f\" y=\"%d\" class=\"xlab\">%s</text>\n",
                      fx(&f, x), fx(&f, x), CH - MB, CH - MB + 5, fx(&f, x), CH - MB + 18, t);
    }
    dg_buf_printf(b, "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" class=\"axis\"/>\n", ML, CW - MR,
                  CH - MB, CH - MB);
    dg_buf_printf(b, "<text x=\"%d\" y=\"%d\" class=\"xtitle\">time since the attack started</text>\n",
                  (ML + CW - MR) / 2, CH - 6);

    step_path(b, s, c, &f, -1, TOTAL_COLOR, "5 4");
    for (int k = s->nsides - 1; k >= 0; k--)
        step_path(b, s, c, &f, k, pack_color[k], NULL);

    /* first stops: a vertical line each, labels on their own row so two
     * stops close together never overlap */
    for (int k = 0; k < s->nsides; k++) {
        const struct dg_score_result *r = &c->res[k];
        double row_y = 14 + 15 * k;
        if (!r->has_stop) {
            dg_buf_printf(b, "<text x=\"%d\" y=\"%.1f\" class=\"stoplab\" fill=\"%s\" "
                             "text-anchor=\"end\">%s: never stopped</text>\n",
                          CW - MR, row_y, pack_color[k], s->side_name[k]);
            continue;
        }
        double x = fx(&f, r->stop_after_ms);
        dg_score_fmt_dur(r->stop_after_ms, t);
        dg_score_fmt_usd(r->usd_before_stop, u);
        dg_buf_printf(b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%d\" stroke=\"%s\" "
                         "stroke-width=\"1.5\" stroke-dasharray=\"2 3\"/>"
                         "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>\n",
                      x, x, row_y + 4, CH - MB, pack_color[k], x, fy(&f, r->usd_before_stop), pack_color[k]);
        char label[160];
        snprintf(label, sizeof label, "%s: first stop after %s, %s allowed before it", s->side_name[k], t, u);
        /* about 6.4 px a character at this size: keep the label inside the
         * plot, left of the line when it would run off the right edge */
        double w = 6.4 * (double)strlen(label);
        const char *anchor = "start";
        double tx = x + 5;
        if (tx + w > CW - 4) {
            anchor = "end";
            tx = x - 5 >= ML + w ? x - 5 : CW - 4;
        }
        dg_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" class=\"stoplab\" fill=\"%s\" text-anchor=\"%s\">",
                      tx, row_y, pack_color[k], anchor);
        esc(b, label);
        dg_buf_puts(b, "</text>\n");
    }
    dg_buf_puts(b, "</svg>\n");
}

static void legend(dg_buf *b, const struct dg_score *s)
{
    dg_buf_puts(b, "<p class=\"legend\">");
    for (int k = 0; k < s->nsides; k++)
        dg_buf_printf(b, "<span><svg width=\"26\" height=\"10\"><line x1=\"0\" x2=\"26\" y1=\"5\" y2=\"5\" "
                         "stroke=\"%s\" stroke-width=\"3\"/></svg> USD allowed, %s pack</span>",
                      pack_color[k], s->side_name[k]);
    dg_buf_printf(b, "<span><svg width=\"26\" height=\"10\"><line x1=\"0\" x2=\"26\" y1=\"5\" y2=\"5\" "
                     "stroke=\"%s\" stroke-width=\"2\" stroke-dasharray=\"5 4\"/></svg> the whole attack "
                     "(nothing stopped)</span>",
                     TOTAL_COLOR);
    dg_buf_puts(b, "<span>dotted line: a pack's first stop</span></p>\n");
}

/* ---- rule hits: attack vs legitimate, each panel on its own scale ---- */

struct hit {
    const char *id;
    uint64_t attack, legit;
};

static int cmp_hit(const void *a, const void *b)
{
    const struct hit *x = a, *y = b;
    if (x->attack != y->attack)
        return x->attack > y->attack ? -1 : 1;
    if (x->legit != y->legit)
        return x->legit > y->legit ? -1 : 1;
    return strcmp(x->id, y->id);
}

#define MAX_BARS 40

static void hits_chart(dg_buf *b, const struct dg_score *s, int k)
{
    const struct dg_score_counts *a = &s->attack_hits[k], *l = &s->legit[k].hits;
    struct hit *h = dg_xcalloc(a->n + l->n + 1, sizeof *h);
    size_t n = 0;
    uint64_t amax = 1, lmax = 1;

    for (size_t i = 0; i < a->n; i++)
        h[n++] = (struct hit){a->v[i].id, a->v[i].n, 0};
    for (size_t i = 0; i < l->n; i++) {
        size_t j = 0;
        while (j < n && strcmp(h[j].id, l->v[i].id))
            j++;
        if (j == n)
            h[n++] = (struct hit){l->v[i].id, 0, 0};
        h[j].legit = l->v[i].n;
    }
    qsort(h, n, sizeof *h, cmp_hit);
    if (n > MAX_BARS)
        n = MAX_BARS;
    for (size_t i = 0; i < n; i++) {
        amax = h[i].attack > amax ? h[i].attack : amax;
        lmax = h[i].legit > lmax ? h[i].legit : lmax;
    }
    if (!n) {
        dg_buf_printf(b, "<p>No rule matched any event under the %s pack.</p>\n", s->side_name[k]);
        free(h);
        return;
    }
    const int label_w = 300, panel = 330, gap = 30, row_h = 24, top = 34;
    const int W = label_w + 2 * panel + gap, H = top + (int)n * row_h + 8;
    const int bar_w = panel - 70; /* room for the count after the bar */
    dg_buf_printf(b, "<svg class=\"hits\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" role=\"img\" "
                     "aria-label=\"rule hits\">\n", W, H, W, H);
    dg_buf_printf(b, "<text x=\"%d\" y=\"16\" class=\"ptitle\">hits on attack events</text>"
                     "<text x=\"%d\" y=\"16\" class=\"ptitle\">hits on legitimate events</text>\n",
                  label_w, label_w + panel + gap);
    for (size_t i = 0; i < n; i++) {
        int y = top + (int)i * row_h;
        char num[32];
        dg_buf_printf(b, "<text x=\"%d\" y=\"%d\" class=\"rlab\">", label_w - 10, y + 14);
        esc(b, h[i].id);
        dg_buf_puts(b, "</text>");
        double wa = (double)bar_w * (double)h[i].attack / (double)amax;
        double wl = (double)bar_w * (double)h[i].legit / (double)lmax;
        dg_score_fmt_int(h[i].attack, num);
        dg_buf_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"16\" fill=\"#c0392b\"/>"
                         "<text x=\"%.1f\" y=\"%d\" class=\"num\">%s</text>",
                      label_w, y + 2, wa, label_w + wa + 5, y + 14, num);
        dg_score_fmt_int(h[i].legit, num);
        dg_buf_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"16\" fill=\"#5b8def\"/>"
                         "<text x=\"%.1f\" y=\"%d\" class=\"num\">%s</text>\n",
                      label_w + panel + gap, y + 2, wl, label_w + panel + gap + wl + 5, y + 14, num);
    }
    dg_buf_printf(b, "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" class=\"axis\"/>"
                     "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" class=\"axis\"/>\n",
                  label_w, label_w, top - 4, H - 4, label_w + panel + gap, label_w + panel + gap, top - 4, H - 4);
    dg_buf_puts(b, "</svg>\n");
    free(h);
}

/* the rules that fired on a scenario's events, under its chart */
static void rules_line(dg_buf *b, const struct dg_score *s, size_t i)
{
    char n[32];
    dg_buf_puts(b, "<p class=\"rules\">");
    for (int k = 0; k < s->nsides; k++) {
        const struct dg_score_result *r = &s->scn[i].res[k];
        dg_buf_printf(b, "%s<b style=\"color:%s\">%s rules:</b> ", k ? "<br>" : "", pack_color[k], s->side_name[k]);
        for (int shadow = 0; shadow < 2; shadow++) {
            const struct dg_score_counts *c = shadow ? &r->shadow : &r->rules;
            struct dg_score_count **v = dg_score_counts_sorted(c);
            for (size_t j = 0; j < c->n && j < 8; j++) {
                dg_score_fmt_int(v[j]->n, n);
                dg_buf_puts(b, "<code>");
                esc(b, v[j]->id);
                dg_buf_printf(b, "</code>%s &times;%s%s", shadow ? " (shadow)" : "", n,
                              j + 1 < c->n && j + 1 < 8 ? ", " : "");
            }
            if (shadow == 0 && r->rules.n && r->shadow.n)
                dg_buf_puts(b, "; ");
            free(v);
        }
        if (!r->rules.n && !r->shadow.n)
            dg_buf_puts(b, "none");
    }
    dg_buf_puts(b, "</p>\n");
}

/* ---- tables ---- */

static void summary_table(dg_buf *b, const struct dg_score *s)
{
    char v[32];
    dg_buf_puts(b, "<table class=\"sum\">\n<thead><tr><th rowspan=\"2\">scenario</th>"
                   "<th rowspan=\"2\" class=\"r\">attack value</th>");
    const char *heads[] = {"detected", "USD stopped (target &ge; 90%)", "allowed before first stop",
                           "first stop after"};
    for (size_t h = 0; h < DG_ARRAY_LEN(heads); h++)
        dg_buf_printf(b, "<th colspan=\"%d\" class=\"grp\">%s</th>", s->nsides, heads[h]);
    dg_buf_puts(b, "</tr>\n<tr>");
    for (size_t h = 0; h < DG_ARRAY_LEN(heads); h++)
        for (int k = 0; k < s->nsides; k++)
            dg_buf_printf(b, "<th class=\"pk%d\">%s</th>", k, s->side_name[k]);
    dg_buf_puts(b, "</tr></thead>\n<tbody>\n");
    for (size_t i = 0; i < s->nscn; i++) {
        const struct dg_score_scenario *c = &s->scn[i];
        dg_buf_puts(b, "<tr><th class=\"l\">");
        esc(b, c->name);
        dg_buf_puts(b, "</th><td class=\"r\">");
        if (s->have_events) {
            dg_score_fmt_usd(c->usd_total, v);
            dg_buf_printf(b, "%s<br><small>%llu %s</small>", v, (unsigned long long)c->value_events,
                          c->value_type == DG_EV_OUTFLOW ? "outflows" : "requests");
        } else {
            dg_buf_puts(b, "n/a");
        }
        dg_buf_puts(b, "</td>");
        for (int k = 0; k < s->nsides; k++) {
            dg_buf_printf(b, "<td>%s ", c->res[k].detected ? "yes" : "no");
            verdict(b, c->res[k].detected);
            dg_buf_puts(b, "</td>");
        }
        for (int k = 0; k < s->nsides; k++) {
            double p = dg_score_stopped_pct(s, i, k);
            if (p < 0)
                snprintf(v, sizeof v, "n/a");
            else
                dg_score_fmt_pct(p, 1, 0, v);
            dg_buf_printf(b, "<td class=\"r\">%s ", v);
            verdict(b, p >= DG_SCORE_TARGET_STOPPED_PCT);
            dg_buf_puts(b, "</td>");
        }
        for (int k = 0; k < s->nsides; k++) {
            dg_score_fmt_usd(c->res[k].usd_before_stop, v);
            dg_buf_printf(b, "<td class=\"r\">%s</td>", s->have_events ? v : "n/a");
        }
        for (int k = 0; k < s->nsides; k++) {
            const struct dg_score_result *r = &c->res[k];
            if (!r->has_stop) {
                dg_buf_puts(b, "<td class=\"r\">never</td>");
                continue;
            }
            dg_score_fmt_dur(r->stop_after_ms, v);
            dg_buf_printf(b, "<td class=\"r\">%s<br><small>attack event %llu of %llu</small></td>", v,
                          (unsigned long long)r->events_to_stop, (unsigned long long)c->attack_events);
        }
        dg_buf_puts(b, "</tr>\n");
    }
    dg_buf_puts(b, "</tbody></table>\n");
}

static void legit_table(dg_buf *b, const struct dg_score *s)
{
    char v[32], n[32];
    dg_buf_puts(b, "<table class=\"legit\">\n<thead><tr><th class=\"l\">legitimate traffic</th>");
    for (int k = 0; k < s->nsides; k++)
        dg_buf_printf(b, "<th class=\"pk%d\">%s</th>", k, s->side_name[k]);
    dg_buf_puts(b, "<th>target</th></tr></thead>\n<tbody>\n");

    dg_buf_puts(b, "<tr><th class=\"l\">withdrawal requests</th>");
    for (int k = 0; k < s->nsides; k++) {
        dg_score_fmt_int(s->legit[k].requests, n);
        dg_buf_printf(b, "<td class=\"r\">%s</td>", n);
    }
    dg_buf_puts(b, "<td></td></tr>\n");
    for (int which = 0; which < 2; which++) {
        dg_buf_printf(b, "<tr><th class=\"l\">%s</th>", which ? "review" : "hold + freeze");
        for (int k = 0; k < s->nsides; k++) {
            const struct dg_score_legit *lg = &s->legit[k];
            uint64_t x = which ? dg_score_fp_review(s, k) : dg_score_fp_holdfreeze(s, k);
            uint64_t coll = which ? lg->review_collateral : lg->holdfreeze_collateral;
            double p = dg_score_pct(x, lg->requests);
            dg_score_fmt_pct(p, 2, 1, v);
            dg_score_fmt_int(x, n);
            dg_buf_printf(b, "<td class=\"r\">%s <small>(%s)</small> ", v, n);
            verdict(b, p <= (which ? DG_SCORE_TARGET_REVIEW_PCT : DG_SCORE_TARGET_HOLDFREEZE_PCT));
            if (coll) {
                dg_score_fmt_int(coll, n);
                dg_buf_printf(b, "<br><small>and %s held behind an attack's freeze (not counted)</small>", n);
            }
            dg_buf_puts(b, "</td>");
        }
        dg_buf_printf(b, "<td>&le; %s</td></tr>\n", which ? "2%" : "0.5%");
    }
    dg_buf_puts(b, "<tr><th class=\"l\">wallets wrongly frozen</th>");
    for (int k = 0; k < s->nsides; k++) {
        const struct dg_score_legit *lg = &s->legit[k];
        dg_buf_printf(b, "<td class=\"r\">%zu", lg->nfrozen);
        for (size_t i = 0; i < lg->nfrozen && i < 8; i++) {
            dg_buf_puts(b, i ? ", " : "<br><small>");
            esc(b, lg->frozen_wallets[i]);
        }
        dg_buf_printf(b, "%s</td>", lg->nfrozen ? (lg->nfrozen > 8 ? ", ...</small>" : "</small>") : "");
    }
    dg_buf_puts(b, "<td></td></tr>\n");
    dg_buf_puts(b, "<tr><th class=\"l\">outflows held or frozen<br><small>of all legitimate outflows"
                   "</small></th>");
    for (int k = 0; k < s->nsides; k++) {
        dg_score_fmt_int(s->legit[k].outflow_alarms, v);
        dg_score_fmt_int(s->legit[k].outflows, n);
        dg_buf_printf(b, "<td class=\"r\">%s <small>of %s</small></td>", v, n);
    }
    dg_buf_puts(b, "<td></td></tr>\n");
    dg_buf_puts(b, "<tr><th class=\"l\">outflow alarms not excused<br><small>excused: a request it pays "
                   "was itself stopped, or an attack froze its wallet</small></th>");
    for (int k = 0; k < s->nsides; k++) {
        const struct dg_score_legit *lg = &s->legit[k];
        if (!s->have_events) {
            dg_buf_puts(b, "<td class=\"r\">n/a</td>");
            continue;
        }
        dg_score_fmt_int(dg_score_fp_outflows(s, k), n);
        dg_buf_printf(b, "<td class=\"r\">%s ", n);
        verdict(b, dg_score_fp_outflows(s, k) == 0);
        if (lg->outflow_collateral)
            dg_buf_printf(b, "<br><small>and %llu behind an attack's freeze (not counted)</small>",
                          (unsigned long long)lg->outflow_collateral);
        dg_buf_puts(b, "</td>");
    }
    dg_buf_puts(b, "<td>0</td></tr>\n");
    dg_buf_puts(b, "<tr><th class=\"l\">rules behind the false positives</th>");
    for (int k = 0; k < s->nsides; k++) {
        struct dg_score_count **cv = dg_score_counts_sorted(&s->legit[k].fp_rules);
        dg_buf_puts(b, "<td class=\"rules\">");
        if (!s->legit[k].fp_rules.n)
            dg_buf_puts(b, "none");
        for (size_t i = 0; i < s->legit[k].fp_rules.n && i < 10; i++) {
            dg_score_fmt_int(cv[i]->n, n);
            dg_buf_puts(b, "<code>");
            esc(b, cv[i]->id);
            dg_buf_printf(b, "</code> %s<br>", n);
        }
        dg_buf_puts(b, "</td>");
        free(cv);
    }
    dg_buf_puts(b, "<td></td></tr>\n</tbody></table>\n");
}

static const char css[] =
    "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;"
    "color:#1d2330;margin:24px 32px;max-width:1180px;font-size:14px;line-height:1.4}"
    "h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dde1e7;"
    "padding-bottom:4px}h3{font-size:15px;margin:0 0 2px}"
    ".meta{color:#5b6472;font-size:12.5px;margin:0 0 6px}"
    ".verdicts{font-size:15px}"
    "table{border-collapse:collapse;margin:6px 0}th,td{border:1px solid #dde1e7;padding:5px 9px;"
    "vertical-align:top}thead th{background:#f3f5f8;font-weight:600;text-align:center}"
    "th.l{text-align:left;font-weight:600;background:#fafbfc}td{white-space:nowrap}td.r{text-align:right}"
    "small{color:#5b6472}.met{color:#1a7f37;font-weight:600}.miss{color:#c0392b;font-weight:700}"
    "th.pk0{color:#1f6feb}th.pk1{color:#b5651d}th.grp{border-bottom:none}"
    "td.rules{font-size:12.5px}code{font-size:12px}"
    ".charts{display:grid;grid-template-columns:repeat(2,540px);gap:22px 28px}"
    "figure{margin:0}figcaption{font-size:12.5px;color:#5b6472;margin:2px 0 6px}"
    "svg text{font-family:inherit}svg .ylab{font-size:11px;text-anchor:end;fill:#5b6472}"
    "svg .xlab{font-size:11px;text-anchor:middle;fill:#5b6472}svg .xtitle{font-size:11px;"
    "text-anchor:middle;fill:#5b6472}svg .grid{stroke:#eceff3}svg .tick,svg .axis{stroke:#9aa3af}"
    "svg .stoplab{font-size:11.5px;font-weight:600}svg .rlab{font-size:12px;text-anchor:end;fill:#1d2330}"
    "svg .num{font-size:11px;fill:#1d2330}svg .ptitle{font-size:12.5px;font-weight:600;fill:#1d2330}"
    ".legend span{margin-right:18px;font-size:12.5px;white-space:nowrap}.legend svg{vertical-align:middle}"
    ".note{font-size:12.5px;color:#5b6472;max-width:900px}"
    "p.rules{font-size:12px;margin:2px 0 0 8px;max-width:530px}";

int dg_score_html(const struct dg_score *s, const char *name, const char *path, char *errstr,
                  size_t errstr_size)
{
    dg_buf b = {0};
    char v[32], t[32];

    dg_buf_puts(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>drainguard score");
    if (name) {
        dg_buf_puts(&b, ": ");
        esc(&b, name);
    }
    dg_buf_printf(&b, "</title>\n<style>%s</style>\n</head><body>\n<h1>drainguard score", css);
    if (name) {
        dg_buf_puts(&b, ": ");
        esc(&b, name);
    }
    dg_buf_puts(&b, "</h1>\n<p class=\"meta\">labels ");
    esc(&b, s->path_labels);
    if (s->have_events) {
        dg_score_fmt_int(s->n_events, v);
        dg_buf_printf(&b, " &middot; events %s (", v);
        esc(&b, s->path_events);
        dg_buf_puts(&b, ")");
    }
    for (int k = 0; k < s->nsides; k++) {
        dg_buf_printf(&b, " &middot; %s pack: ", s->side_name[k]);
        esc(&b, s->path_decisions[k]);
    }
    dg_buf_puts(&b, "</p>\n<p class=\"verdicts\">");
    for (int k = 0; k < s->nsides; k++) {
        dg_buf_printf(&b, "%s<b style=\"color:%s\">%s</b> pack: ", k ? " &nbsp;&middot;&nbsp; " : "",
                      pack_color[k], s->side_name[k]);
        int all = dg_score_all_met(s, k);
        dg_buf_printf(&b, "<span class=\"%s\">%s</span>", all ? "met" : "miss",
                      all ? "every target met" : "targets NOT met");
    }
    dg_buf_puts(&b, "</p>\n");

    dg_buf_puts(&b, "<h2>Attacks</h2>\n");
    summary_table(&b, s);
    dg_buf_puts(&b, "<p class=\"note\">Detected: an attack or outflow event of the scenario got any action "
                    "but allow. USD stopped: its withdrawal requests not allowed (for an attack with no "
                    "request, such as stolen hot-wallet keys, its outflows). Times run from the "
                    "scenario's first attack event.</p>\n");
    dg_buf_puts(&b, "<h2>Legitimate traffic</h2>\n");
    legit_table(&b, s);

    dg_buf_puts(&b, "<h2>Attack value allowed over time</h2>\n");
    legend(&b, s);
    dg_buf_puts(&b, "<div class=\"charts\">\n");
    for (size_t i = 0; i < s->nscn; i++) {
        const struct dg_score_scenario *c = &s->scn[i];
        dg_buf_puts(&b, "<figure><h3>");
        esc(&b, c->name);
        dg_buf_puts(&b, "</h3><figcaption>");
        if (!c->nev || !s->have_events || !c->value_events) {
            dg_buf_printf(&b, "%s</figcaption></figure>\n",
                          !c->nev ? "not in this run's labels" :
                          !s->have_events ? "no USD figures: score with --events" : "no requests or outflows");
            continue;
        }
        dg_score_fmt_usd(c->usd_total, v);
        dg_time_format(c->start_ts, t);
        dg_buf_printf(&b, "%llu %s worth %s; attack started %s</figcaption>\n",
                      (unsigned long long)c->value_events,
                      c->value_type == DG_EV_OUTFLOW ? "unapproved outflows" : "withdrawal requests", v, t);
        chart(&b, s, i);
        rules_line(&b, s, i);
        dg_buf_puts(&b, "</figure>\n");
    }
    dg_buf_puts(&b, "</div>\n");

    for (int k = 0; k < s->nsides; k++) {
        dg_buf_printf(&b, "<h2>Rule hits, %s pack</h2>\n", s->side_name[k]);
        hits_chart(&b, s, k);
    }
    dg_buf_puts(&b, "<p class=\"note\">A hit is a rule listed in a decision (enforced, or marked "
                    "(shadow)); <code>dg:frozen-scope</code> is the hold of an event that touches a "
                    "scope an earlier freeze froze.</p>\n</body></html>\n");

    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(errstr, errstr_size, "cannot write '%s': %s", path, strerror(errno));
        dg_buf_free(&b);
        return -1;
    }
    size_t w = fwrite(b.data, 1, b.len, f);
    int bad = fclose(f) != 0 || w != b.len;
    dg_buf_free(&b);
    if (bad) {
        snprintf(errstr, errstr_size, "cannot write '%s'", path);
        return -1;
    }
    return 0;
}

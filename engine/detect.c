/*
 * detect.c - evaluate a compiled rule set against one event whose windows
 * have been applied: every rule of the event's type runs (no short cut, so
 * shadow rules and explanations are complete), the strongest enforced action
 * wins, frozen scopes hold the event, enforced freeze rules freeze scopes.
 * Cost: one tree walk per rule of the type; no allocation but the reason
 * strings of the rules that matched.
 */
#include "detect.h"
#include "event.h"

#include <stdio.h>
#include <string.h>

void dg_value_render(const dg_value *v, dg_buf *out)
{
    char tmp[48];
    switch (v->t) {
    case DG_T_NUM:
        dg_number_format(v->u.n, tmp);
        dg_buf_puts(out, tmp);
        break;
    case DG_T_STR:
        dg_buf_append(out, v->u.s, v->len);
        break;
    case DG_T_TIME:
        dg_time_format(v->u.ms, tmp);
        dg_buf_puts(out, tmp);
        break;
    case DG_T_DUR:
        dg_duration_format(v->u.ms, tmp);
        dg_buf_puts(out, tmp);
        break;
    case DG_T_BOOL:
        dg_buf_puts(out, v->u.b ? "true" : "false");
        break;
    default:
        dg_buf_puts(out, "(none)");
    }
}

static void render(const struct dg_template *t, const struct dg_eval_ctx *cx, dg_arena *arena,
                   const char **out, size_t *len)
{
    static __thread dg_buf b;
    b.len = 0;
    for (size_t i = 0; i < t->nparts; i++) {
        if (t->parts[i].text) {
            dg_buf_append(&b, t->parts[i].text, t->parts[i].len);
        } else {
            dg_value v = dg_expr_eval(t->parts[i].expr, cx);
            dg_value_render(&v, &b);
        }
    }
    *out = dg_arena_strndup(arena, b.data ? b.data : "", b.len);
    *len = b.len;
}

static void add_match(struct dg_decision *d, const char *id, int action, int mode,
                      const char *reason, size_t len, int rule)
{
    if (d->nm == DG_MAX_MATCHES) {
        d->dropped++;
        return;
    }
    struct dg_match *m = &d->m[d->nm++];
    m->id = id;
    m->action = action;
    m->mode = mode;
    m->reason = reason;
    m->reason_len = len;
    m->rule = rule;
}

/* "account 'A' is frozen; wallet 'hw-1' is frozen", into arena. Held
 * events are common while a freeze stands, so no printf here. */
static size_t frozen_reason(const struct dg_item *it, dg_arena *arena, const char **out)
{
    static const char global[] = "all withdrawals are frozen (global)";
    size_t len = 0;
    char *p;

    for (int s = 0; s < DG_NSCOPES; s++)
        if (it->frozen & (1u << s))
            len += 2 + (s == DG_SCOPE_GLOBAL ? sizeof global - 1
                                             : strlen(dg_scope_name(s)) + 13 + it->scope_len[s]);
    *out = p = dg_arena_alloc(arena, len + 1);
    for (int s = 0; s < DG_NSCOPES; s++) {
        if (!(it->frozen & (1u << s)))
            continue;
        if (p != *out) {
            memcpy(p, "; ", 2);
            p += 2;
        }
        if (s == DG_SCOPE_GLOBAL) {
            memcpy(p, global, sizeof global - 1);
            p += sizeof global - 1;
        } else {
            const char *name = dg_scope_name(s);
            size_t nl = strlen(name);
            memcpy(p, name, nl);
            p += nl;
            /* as printf's %.*s had it: up to a NUL byte, if any */
            const char *nul = memchr(it->scope_key[s], '\0', it->scope_len[s]);
            size_t kl = nul ? (size_t)(nul - it->scope_key[s]) : it->scope_len[s];
            *p++ = ' ';
            *p++ = '\'';
            if (kl)
                memcpy(p, it->scope_key[s], kl);
            p += kl;
            memcpy(p, "' is frozen", 11);
            p += 11;
        }
    }
    *p = '\0';
    return (size_t)(p - *out);
}

void dg_detect(const struct dg_ruleset *rs, const struct dg_event *ev, const dg_value *win,
               const struct dg_item *it, dg_arena *arena, struct dg_decision *d)
{
    struct dg_eval_ctx cx;
    uint32_t bit = DG_EV_BIT(ev->type);

    /* not a memset: the match array is large and mostly unused */
    d->decide = d->action = 0;
    d->freezes = d->placed = 0;
    d->was_frozen = it->frozen;
    d->nm = d->dropped = 0;
    cx.ev = ev;
    cx.win = win;
    cx.lists = rs->listv;

    d->decide = ev->type == DG_EV_WITHDRAWAL || ev->type == DG_EV_OUTFLOW;
    for (size_t r = 0; r < rs->nrules; r++) {
        const struct dg_rule *rule = &rs->rules[r];
        if (!(rule->on_mask & bit) || !dg_expr_true(rule->when, &cx))
            continue;
        const char *reason;
        size_t len;
        render(&rule->reason, &cx, arena, &reason, &len);
        add_match(d, rule->id, rule->action, rule->mode, reason, len, (int)r);
        d->decide = 1;
        if (rule->mode != DG_ENFORCE)
            continue;
        if (rule->action > d->action)
            d->action = rule->action;
        if (rule->action == DG_FREEZE)
            for (int s = 0; s < DG_NSCOPES; s++)
                if ((rule->freeze & (1u << s)) && it->scope_key[s])
                    d->placed |= 1u << s;
    }
    if (it->frozen && d->decide) {
        const char *reason;
        size_t len = frozen_reason(it, arena, &reason);
        add_match(d, DG_RULE_FROZEN, DG_HOLD, DG_ENFORCE, reason, len, -1);
        if (d->action < DG_HOLD)
            d->action = DG_HOLD;
    }
    d->freezes = d->placed | (d->decide ? it->frozen : 0);
}

/*
 * detect.h - judging one event against a compiled rule set, and the decision
 * that comes out of it (before it is encoded).
 */
#ifndef DG_DETECT_H
#define DG_DETECT_H

#include "rules.h"
#include "state.h"
#include "util.h"

/* Pseudo rule ids the engine itself uses; ':' cannot occur in a rule id. */
#define DG_RULE_FROZEN "dg:frozen-scope"
#define DG_RULE_INVALID "dg:invalid-event"

struct dg_match {
    const char *id;
    int action, mode;
    const char *reason;   /* arena */
    size_t reason_len;
    int rule;             /* index in the rule set, -1 for pseudo rules */
};

#define DG_MAX_MATCHES 64

struct dg_decision {
    int decide;           /* 1: the event gets a decision */
    int action;
    uint32_t freezes;     /* scopes listed: placed or holding this event */
    uint32_t placed;      /* of those, the ones this decision freezes */
    uint32_t was_frozen;  /* of the event's scopes, those frozen before it
                             (placing one of these again is not news) */
    struct dg_match m[DG_MAX_MATCHES];
    size_t nm;
    size_t dropped;       /* matches beyond DG_MAX_MATCHES (still counted) */
};

/* Judge ev. win[] holds the window values by window index (missing where
 * the event has none); it->frozen says which scopes are frozen. Reasons are
 * rendered into arena. */
void dg_detect(const struct dg_ruleset *rs, const struct dg_event *ev,
               const dg_value *win, const struct dg_item *it, dg_arena *arena,
               struct dg_decision *d);

/* Encode a decision as one JSON object (no newline) appended to out. */
void dg_decision_encode(const struct dg_ruleset *rs, const struct dg_event *ev,
                        const struct dg_item *it, const struct dg_decision *d,
                        const char *decided_at, dg_buf *out);
/* The hold decision of an invalid input (fail closed). fallback_id names
 * the input when it has no usable event_id (dg_reject_fallback_id). */
void dg_reject_encode(const struct dg_ruleset *rs, const struct dg_reject *rej,
                      const char *fallback_id, const char *decided_at, dg_buf *out);
/* "invalid-" and 24 hex digits of the input's bytes: a redelivery of the
 * same bytes gets the same ids. out holds 40 bytes. */
void dg_reject_fallback_id(const char *raw, size_t rawlen, char out[40]);
/* Render a value the way reasons show it. */
void dg_value_render(const dg_value *v, dg_buf *out);

#endif

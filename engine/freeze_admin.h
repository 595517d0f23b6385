/*
 * freeze_admin.h - freeze administration against the engine's Redis: list
 * the freezes in force, place an operator's manual freeze, release one.
 * Implemented at the end of window_redis.c (the only file that speaks to
 * Redis); `drainguard freezes` (cmd_freezes.c) is the command line over it.
 *
 * Freezes live in the hash `<prefix>freezes`, field "<scope>|<key>", value
 * a JSON record (docs/redis.md, docs/freezes.md). Every change here also
 * INCRs `<prefix>freezes:v` in the same atomic step, so that a batch any
 * engine instance decided on the freezes as they were before is refused at
 * commit and read again: a release or a manual freeze holds from the next
 * batch on, on every instance.
 *
 * Each call opens its own connection (with the AUTH, SELECT and timeout of
 * the options) and closes it: these are operator commands, not the hot path.
 */
#ifndef DG_FREEZE_ADMIN_H
#define DG_FREEZE_ADMIN_H

#include <stddef.h>
#include <stdint.h>
#include "state.h"

/* One freeze as stored. */
struct dg_freeze_entry {
    char *field;      /* "<scope>|<key>" */
    char *record;     /* the stored value, NUL-terminated (JSON when written
                         by drainguard; anything when someone else wrote it) */
    size_t record_len;
};

/* Every freeze in force, sorted by field. On success returns 0 and sets
 * *out (owned by the caller: dg_freezes_list_free) and *n; -1 with a
 * message in err when Redis cannot be reached or the key is not a hash. */
int dg_freezes_list(const struct dg_redis_opts *o, struct dg_freeze_entry **out, size_t *n,
                    char *err, size_t errsz);
void dg_freezes_list_free(struct dg_freeze_entry *v, size_t n);

/* Place an operator's freeze of scope (enum dg_scope) and key (the global
 * scope's key is "*"): the record {"scope","key","rule":"manual","reason",
 * "ts":null,"event_id":null,"at","by"} with at = at_ms formatted as RFC
 * 3339, written with HSETNX and followed by INCR freezes:v in one script.
 * Returns 1 when placed (*stored: the record written), 0 when the scope is
 * already frozen (*stored: the record in force; nothing changed), -1 with
 * a message in err (nothing changed, or, after a lost reply, perhaps
 * changed: err says so). *stored is the caller's to free (NULL on -1). */
int dg_freeze_add(const struct dg_redis_opts *o, int scope, const char *key, const char *reason,
                  const char *by, int64_t at_ms, char **stored, char *err, size_t errsz);

/* Release the freeze of scope and key: HDEL and INCR freezes:v in one
 * script. Returns 1 when released (*previous: the record that was in
 * force, the caller's to free), 0 when the scope was not frozen (nothing
 * changed), -1 with a message in err. */
int dg_freeze_release(const struct dg_redis_opts *o, int scope, const char *key, char **previous,
                      char *err, size_t errsz);

#endif

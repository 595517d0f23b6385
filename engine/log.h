/*
 * log.h - the engine's log: one line per state change (start, assignment,
 * pause/resume, reload, freeze, shutdown), never one per event at the
 * default level. Human-readable lines ("drainguard run: ...") by default,
 * JSON lines with --log-format json. Safe to call from any thread
 * (librdkafka's, the rule loader's, the HTTP server's): a line is written
 * whole, under a lock.
 *
 * Lines at info and debug go to stdout, warnings and errors to stderr, in
 * both formats.
 */
#ifndef DG_LOG_H
#define DG_LOG_H

#include <stddef.h>

enum { DG_LOG_DEBUG = 0, DG_LOG_INFO, DG_LOG_WARN, DG_LOG_ERROR };
enum { DG_LOG_TEXT = 0, DG_LOG_JSON };

/* One structured field of a line: shown as "key":value in JSON lines, not
 * shown in text lines (the message says it in words). */
struct dg_log_field {
    const char *key;
    const char *str;   /* a string value, or NULL: num is the value */
    long long num;
};
#define DG_LF_STR(k, v) {(k), (v), 0}
#define DG_LF_NUM(k, v) {(k), NULL, (long long)(v)}

/* Set the program's name ("run": lines start "drainguard run: "), format
 * and least level shown. Call before starting threads. */
void dg_log_setup(const char *name, int format, int level);
/* Set the name only when none was set (adapters used by several commands
 * name themselves this way). name must outlive the process's logging. */
void dg_log_default_name(const char *name);

/* "debug", "info", "warn" (or "warning"), "error" -> DG_LOG_*, -1 when none. */
int dg_log_level_parse(const char *s);
const char *dg_log_level_name(int level);
/* "text" or "json" -> DG_LOG_*, -1 when neither. */
int dg_log_format_parse(const char *s);

/* Would a line at this level be written? (skip building costly messages) */
int dg_log_enabled(int level);

void dg_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A line with structured fields (nf of them). */
void dg_logf(int level, const struct dg_log_field *f, size_t nf, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif

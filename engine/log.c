/*
 * log.c - the engine's log lines (see log.h): formatting, the level filter,
 * and one lock so that lines written by librdkafka's threads, the rule
 * loader and the engine never interleave. Not on the hot path: the engine
 * logs state changes, not events.
 */
#include "log.h"
#include "util.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *log_name;   /* NULL: lines start "drainguard: " */
static int log_format = DG_LOG_TEXT;
static int log_level = DG_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void dg_log_setup(const char *name, int format, int level)
{
    pthread_mutex_lock(&log_lock);
    log_name = name;
    log_format = format;
    log_level = level;
    pthread_mutex_unlock(&log_lock);
}

void dg_log_default_name(const char *name)
{
    pthread_mutex_lock(&log_lock);
    if (!log_name)
        log_name = name;
    pthread_mutex_unlock(&log_lock);
}

int dg_log_level_parse(const char *s)
{
    for (int i = 0; i < (int)DG_ARRAY_LEN(level_names); i++)
        if (!strcmp(s, level_names[i]))
            return i;
    return !strcmp(s, "warning") ? DG_LOG_WARN : -1;
}

const char *dg_log_level_name(int level)
{
    return level >= 0 && level < (int)DG_ARRAY_LEN(level_names) ? level_names[level] : "info";
}

int dg_log_format_parse(const char *s)
{
    return !strcmp(s, "text") ? DG_LOG_TEXT : !strcmp(s, "json") ? DG_LOG_JSON : -1;
}

int dg_log_enabled(int level)
{
    /* a racy read is harmless: the level is set once, before any thread */
    return level >= log_level;
}

static void vlog(int level, const struct dg_log_field *f, size_t nf, const char *fmt, va_list ap)
{
    char msg[2048];
    dg_buf b = {0};

    if (level < log_level)
        return;
    vsnprintf(msg, sizeof msg, fmt, ap);
    pthread_mutex_lock(&log_lock);
    if (log_format == DG_LOG_JSON) {
        struct timespec ts;
        struct tm tm;
        char when[96];
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(ts.tv_nsec / 1000000));
        dg_buf_puts(&b, "{\"ts\":");
        dg_buf_json_str(&b, when, strlen(when));
        dg_buf_printf(&b, ",\"level\":\"%s\",\"logger\":", level_names[level]);
        const char *name = log_name ? log_name : "drainguard";
        dg_buf_json_str(&b, name, strlen(name));
        dg_buf_puts(&b, ",\"msg\":");
        dg_buf_json_str(&b, msg, strlen(msg));
        for (size_t i = 0; i < nf; i++) {
            dg_buf_putc(&b, ',');
            dg_buf_json_str(&b, f[i].key, strlen(f[i].key));
            dg_buf_putc(&b, ':');
            if (f[i].str)
                dg_buf_json_str(&b, f[i].str, strlen(f[i].str));
            else
                dg_buf_printf(&b, "%lld", f[i].num);
        }
        dg_buf_puts(&b, "}\n");
    } else {
        static const char *const prefix[] = {"debug: ", "", "warning: ", "error: "};
        dg_buf_printf(&b, "drainguard%s%s: %s", log_name ? " " : "", log_name ? log_name : "",
                      prefix[level]);
        /* one line is one line: bytes from events (keys in freeze lines)
         * must not start a forged one */
        for (const unsigned char *c = (const unsigned char *)msg; *c; c++) {
            if (*c == '\n')
                dg_buf_puts(&b, "\\n");
            else if (*c < 0x20 || *c == 0x7f)
                dg_buf_printf(&b, "\\x%02x", *c);
            else
                dg_buf_putc(&b, (char)*c);
        }
        dg_buf_putc(&b, '\n');
    }
    FILE *out = level >= DG_LOG_WARN ? stderr : stdout;
    fwrite(b.data, 1, b.len, out);
    fflush(out);
    pthread_mutex_unlock(&log_lock);
    dg_buf_free(&b);
}

void dg_log(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(level, NULL, 0, fmt, ap);
    va_end(ap);
}

void dg_logf(int level, const struct dg_log_field *f, size_t nf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(level, f, nf, fmt, ap);
    va_end(ap);
}

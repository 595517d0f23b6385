/*
 * value.h - the one value type shared by events, windows and expressions.
 * A value is missing (DG_T_NONE), a number, a string (pointer + length, never
 * owned by the value), a point in time or a duration (both in milliseconds),
 * or a boolean.
 */
#ifndef DG_VALUE_H
#define DG_VALUE_H

#include <stdint.h>
#include <stddef.h>

typedef enum dg_type {
    DG_T_NONE = 0,  /* missing: absent field, empty window */
    DG_T_NUM,
    DG_T_STR,
    DG_T_TIME,      /* epoch milliseconds */
    DG_T_DUR,       /* milliseconds */
    DG_T_BOOL,
    DG_T_ANY        /* compile time only: an unknown field, typed at run time */
} dg_type;

typedef struct dg_value {
    uint8_t t;          /* dg_type */
    uint32_t len;       /* string length for DG_T_STR */
    union {
        double n;       /* DG_T_NUM */
        int64_t ms;     /* DG_T_TIME, DG_T_DUR */
        const char *s;  /* DG_T_STR, not NUL-terminated in general */
        int b;          /* DG_T_BOOL */
    } u;
} dg_value;

static inline dg_value dg_none(void) { dg_value v = {0}; return v; }
static inline dg_value dg_num(double n) { dg_value v = {0}; v.t = DG_T_NUM; v.u.n = n; return v; }
static inline dg_value dg_time(int64_t ms) { dg_value v = {0}; v.t = DG_T_TIME; v.u.ms = ms; return v; }
static inline dg_value dg_dur(int64_t ms) { dg_value v = {0}; v.t = DG_T_DUR; v.u.ms = ms; return v; }
static inline dg_value dg_bool(int b) { dg_value v = {0}; v.t = DG_T_BOOL; v.u.b = !!b; return v; }
static inline dg_value dg_str(const char *s, size_t len)
{
    dg_value v = {0};
    v.t = DG_T_STR;
    v.u.s = s;
    v.len = (uint32_t)len;
    return v;
}

const char *dg_type_name(dg_type t);

#endif

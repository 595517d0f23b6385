/*
 * rules_load.c - YAML text to struct dg_ynode tree; the only file that
 * includes yaml.h. A rule file is hostile input: depth, node count and size
 * are bounded, and aliases are refused (they are how "billion laughs"
 * documents blow up), as are tags and multiple documents. libyaml's marks
 * give every node its line and column for FILE:LINE:COL messages.
 */
#include "rules_tree.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define MAX_YAML_DEPTH 32
#define MAX_YAML_NODES 200000
#define MAX_RULE_FILE (8 * 1024 * 1024)

struct ybuild {
    const char *file;
    yaml_parser_t parser;
    struct dg_diag *diag;
    size_t nodes;
};

void dg_ynode_free(struct dg_ynode *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n; i++)
        dg_ynode_free(n->kids[i]);
    free(n->kids);
    free(n->text);
    free(n);
}

static void yerr(struct ybuild *b, const yaml_mark_t *m, const char *msg)
{
    struct dg_srcpos p = {b->file, (int)m->line + 1, (int)m->column + 1};
    dg_diag_add(b->diag, 1, &p, "%s", msg);
}

/* Next event; 0 on success, -1 after reporting libyaml's error. */
static int next_event(struct ybuild *b, yaml_event_t *ev)
{
    if (yaml_parser_parse(&b->parser, ev))
        return 0;
    struct dg_srcpos p = {b->file, (int)b->parser.problem_mark.line + 1,
                          (int)b->parser.problem_mark.column + 1};
    dg_diag_add(b->diag, 1, &p, "yaml: %s%s%s", b->parser.problem ? b->parser.problem : "syntax error",
                b->parser.context ? " " : "", b->parser.context ? b->parser.context : "");
    return -1;
}

static struct dg_ynode *new_node(struct ybuild *b, int kind, const yaml_mark_t *m)
{
    struct dg_ynode *n = dg_xcalloc(1, sizeof(*n));
    n->kind = kind;
    n->line = (int)m->line + 1;
    n->col = (int)m->column + 1;
    b->nodes++;
    return n;
}

static void add_kid(struct dg_ynode *p, struct dg_ynode *k)
{
    if ((p->n & (p->n - 1)) == 0) /* grow at powers of two */
        p->kids = dg_xrealloc(p->kids, (p->n ? p->n * 2 : 2) * sizeof(*p->kids));
    p->kids[p->n++] = k;
}

/* Build the node that starts with *ev (already consumed). */
static struct dg_ynode *build(struct ybuild *b, yaml_event_t *ev, int depth)
{
    struct dg_ynode *n = NULL;
    yaml_event_t kid;

    if (b->nodes >= MAX_YAML_NODES) {
        yerr(b, &ev->start_mark, "rule file has too many nodes");
        return NULL;
    }
    if (depth > MAX_YAML_DEPTH) {
        yerr(b, &ev->start_mark, "rule file nested too deeply");
        return NULL;
    }
    switch (ev->type) {
    case YAML_ALIAS_EVENT:
        yerr(b, &ev->start_mark, "yaml aliases (*name) are not supported in rule files");
        return NULL;
    case YAML_SCALAR_EVENT:
        if (ev->data.scalar.anchor) {
            yerr(b, &ev->start_mark, "yaml anchors (&name) are not supported in rule files");
            return NULL;
        }
        n = new_node(b, DG_Y_SCALAR, &ev->start_mark);
        n->len = ev->data.scalar.length;
        n->text = dg_xstrndup((const char *)ev->data.scalar.value, n->len);
        n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        n->quote_cols = (ev->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                         ev->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE);
        n->single_line = ev->start_mark.line == ev->end_mark.line;
        return n;
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        int is_map = ev->type == YAML_MAPPING_START_EVENT;
        yaml_event_type_t end = is_map ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT;
        const yaml_char_t *anchor = is_map ? ev->data.mapping_start.anchor
                                           : ev->data.sequence_start.anchor;
        if (anchor) {
            yerr(b, &ev->start_mark, "yaml anchors (&name) are not supported in rule files");
            return NULL;
        }
        n = new_node(b, is_map ? DG_Y_MAP : DG_Y_SEQ, &ev->start_mark);
        for (;;) {
            if (next_event(b, &kid))
                goto out_free;
            if (kid.type == end) {
                yaml_event_delete(&kid);
                return n;
            }
            struct dg_ynode *k = build(b, &kid, depth + 1);
            yaml_event_delete(&kid);
            if (!k)
                goto out_free;
            add_kid(n, k);
        }
    }
    default:
        yerr(b, &ev->start_mark, "unexpected yaml event");
        return NULL;
    }
out_free:
    dg_ynode_free(n);
    return NULL;
}

int dg_yaml_parse(const char *file, const char *buf, size_t len,
                  struct dg_ynode **root, struct dg_diag *diag)
{
    struct ybuild b = {0};
    yaml_event_t ev;
    int rc = -1;

    *root = NULL;
    b.file = file;
    b.diag = diag;
    if (len > MAX_RULE_FILE) {
        struct dg_srcpos p = {file, 1, 1};
        dg_diag_add(diag, 1, &p, "rule file larger than %d MiB", MAX_RULE_FILE >> 20);
        return -1;
    }
    if (!yaml_parser_initialize(&b.parser)) {
        struct dg_srcpos p = {file, 1, 1};
        dg_diag_add(diag, 1, &p, "cannot initialise the yaml parser");
        return -1;
    }
    yaml_parser_set_input_string(&b.parser, (const unsigned char *)buf, len);

    /* stream start, document start, the root node, document end, stream end */
    if (next_event(&b, &ev))
        goto out_parser;
    yaml_event_delete(&ev);
    if (next_event(&b, &ev))
        goto out_parser;
    if (ev.type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&ev);
        struct dg_srcpos p = {file, 1, 1};
        dg_diag_add(diag, 1, &p, "rule file is empty");
        goto out_parser;
    }
    yaml_event_delete(&ev);
    if (next_event(&b, &ev))
        goto out_parser;
    *root = build(&b, &ev, 0);
    yaml_event_delete(&ev);
    if (!*root)
        goto out_parser;
    if (next_event(&b, &ev))
        goto out_root;
    yaml_event_delete(&ev); /* document end */
    if (next_event(&b, &ev))
        goto out_root;
    if (ev.type != YAML_STREAM_END_EVENT) {
        yerr(&b, &ev.start_mark, "a rule file holds one yaml document, found another");
        yaml_event_delete(&ev);
        goto out_root;
    }
    yaml_event_delete(&ev);
    rc = 0;
    goto out_parser;
out_root:
    dg_ynode_free(*root);
    *root = NULL;
out_parser:
    yaml_parser_delete(&b.parser);
    return rc;
}

/*
 * rules_tree.h - a rule file as a plain tree of scalars, sequences and
 * mappings, each node with its line and column. rules_load.c builds it from
 * YAML (the only libyaml user); rules_compile.c reads it.
 */
#ifndef DG_RULES_TREE_H
#define DG_RULES_TREE_H

#include <stddef.h>
#include "rules.h"

enum { DG_Y_SCALAR = 1, DG_Y_SEQ, DG_Y_MAP };

struct dg_ynode {
    int kind;
    int line, col;       /* 1-based, where the node starts */
    char *text;          /* scalar text (NUL-terminated) */
    size_t len;
    int plain;           /* plain scalar (not quoted, not a block) */
    int quote_cols;      /* columns before the text starts: 1 for quotes */
    int single_line;     /* the scalar's source is on one line */
    struct dg_ynode **kids; /* seq: items; map: key, value, key, value... */
    size_t n;            /* number of kids */
};

/* Parse buf as one YAML document. Returns 0 and *root, or -1 with errors
 * added to diag (file name in p->file). Aliases, anchors, tags and
 * multi-document streams are refused; depth and size are bounded. */
int dg_yaml_parse(const char *file, const char *buf, size_t len,
                  struct dg_ynode **root, struct dg_diag *diag);
void dg_ynode_free(struct dg_ynode *n);

#endif

/*
 * output.c - how batonctl prints: aligned tables for people, one JSON
 * document (jansson) for programs, times as RFC 3339 in UTC either way.
 *
 * A table buffers its rows so each column is as wide as its widest cell;
 * batonctl's outputs are bounded (--limit, the number of queues or
 * workers), so holding them is cheap.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "timeutil.h"

struct ctl_table {
    size_t ncols;
    char **cells; /* rows * ncols, row 0 is the header; owned */
    size_t rows, cap;
    size_t *width; /* per column */
    int failed;    /* out of memory: print what fits, never crash */
};

struct ctl_table *ctl_table_new(size_t ncols, const char *const *headers) {
    struct ctl_table *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->ncols = ncols;
    t->width = calloc(ncols, sizeof *t->width);
    if (!t->width) {
        free(t);
        return NULL;
    }
    ctl_table_row(t, headers);
    return t;
}

void ctl_table_row(struct ctl_table *t, const char *const *cells) {
    if (!t || t->failed)
        return;
    if (t->rows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        char **grown = realloc(t->cells, cap * t->ncols * sizeof *grown);
        if (!grown) {
            t->failed = 1;
            return;
        }
        t->cells = grown;
        t->cap = cap;
    }
    for (size_t c = 0; c < t->ncols; c++) {
        const char *text = cells[c] ? cells[c] : "-";
        char *copy = strdup(text);
        if (!copy)
            t->failed = 1;
        t->cells[t->rows * t->ncols + c] = copy;
        size_t len = copy ? strlen(copy) : 0;
        if (len > t->width[c])
            t->width[c] = len;
    }
    t->rows++;
}

void ctl_table_print(const struct ctl_table *t, FILE *out) {
    if (!t)
        return;
    for (size_t r = 0; r < t->rows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const char *cell = t->cells[r * t->ncols + c];
            if (!cell)
                cell = "?";
            if (c + 1 == t->ncols)
                fprintf(out, "%s\n", cell);
            else
                fprintf(out, "%-*s  ", (int)t->width[c], cell);
        }
    }
}

void ctl_table_free(struct ctl_table *t) {
    if (!t)
        return;
    for (size_t i = 0; i < t->rows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t->width);
    free(t);
}

void ctl_json_print(json_t *doc) {
    if (!doc) {
        printf("null\n");
        return;
    }
    json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY);
    fputc('\n', stdout);
    json_decref(doc);
}

char *ctl_time_text(int64_t ms, char *buf) {
    if (ms <= 0) {
        snprintf(buf, BATON_RFC3339_BUFSZ, "-");
        return buf;
    }
    return baton_time_format_rfc3339(ms, buf);
}

json_t *ctl_time_json(int64_t ms) {
    char buf[BATON_RFC3339_BUFSZ];
    return ms > 0 ? json_string(baton_time_format_rfc3339(ms, buf)) : json_null();
}

char *ctl_age_text(int64_t ms, char *buf, size_t size) {
    if (ms < 0)
        ms = 0;
    int64_t s = ms / 1000;
    if (ms < 60000)
        snprintf(buf, size, "%" PRId64 ".%01" PRId64 "s", s, (ms % 1000) / 100);
    else if (s < 3600)
        snprintf(buf, size, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
    else if (s < 86400)
        snprintf(buf, size, "%" PRId64 "h%02" PRId64 "m", s / 3600, (s % 3600) / 60);
    else
        snprintf(buf, size, "%" PRId64 "d%02" PRId64 "h", s / 86400, (s % 86400) / 3600);
    return buf;
}

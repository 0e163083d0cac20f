/*
 * output.c - how batonctl prints: aligned tables for people, one JSON
 * document (jansson) for programs, times as RFC 3339 in UTC either way.
 *
 * A table buffers its rows so each column is as wide as its widest cell;
 * batonctl's outputs are bounded (--limit, the number of queues or
 * workers), so holding them is cheap.
 *
 * Human output shows text that producers and handlers wrote (payloads,
 * results, meta, error text, stderr tails). A terminal obeys control
 * characters in it: ESC]0;...BEL retitles the window, ESC[2J clears it,
 * other sequences move the cursor to overwrite what the operator reads.
 * So every human printer passes such text through ctl_term_text(), which
 * makes control characters visible instead; --json output stays exact
 * (jansson escapes C0 controls as \u00XX and the reader decides).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "timeutil.h"
#include "utf8.h"

/* ---------------------------------------------------------------------------
 * Text for a terminal
 * ------------------------------------------------------------------------ */

/*
 * Writes the escaped form of `s` (valid UTF-8, `len` bytes) into `out`, or
 * only counts it when out is NULL; returns its length. C0 controls and DEL
 * become \n, \r, \t or \xHH; C1 controls (U+0080-U+009F, which xterm-like
 * terminals obey as 8-bit CSI, OSC...) become \u0080-\u009f. In valid UTF-8
 * those code points are exactly the pairs C2 80..C2 9F, so no decoder is
 * needed here; baton_utf8_sanitize() made the text valid before.
 */
static size_t term_escape(const unsigned char *s, size_t len, char *out) {
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = s[i];
        char esc[8];
        size_t esc_len = 0;
        if (c == '\n' || c == '\r' || c == '\t') {
            esc[0] = '\\';
            esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
            esc_len = 2;
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(esc, "\\x", 2);
            esc[2] = hex[c >> 4];
            esc[3] = hex[c & 0xf];
            esc_len = 4;
        } else if (c == 0xc2 && i + 1 < len && s[i + 1] >= 0x80 && s[i + 1] <= 0x9f) {
            unsigned char c1 = s[++i];
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c1 >> 4];
            esc[5] = hex[c1 & 0xf];
            esc_len = 6;
        }
        if (esc_len == 0) {
            if (out)
                out[n] = (char)c;
            n++;
        } else {
            if (out)
                memcpy(out + n, esc, esc_len);
            n += esc_len;
        }
    }
    return n;
}

char *ctl_term_text(const char *text) {
    if (!text)
        return NULL;
    size_t len;
    char *valid = baton_utf8_sanitize(text, strlen(text), &len);
    if (!valid)
        return NULL;
    size_t n = term_escape((const unsigned char *)valid, len, NULL);
    char *out = malloc(n + 1);
    if (out) {
        term_escape((const unsigned char *)valid, len, out);
        out[n] = '\0';
    }
    free(valid);
    return out;
}

void ctl_term_printf(FILE *out, const char *fmt, ...) {
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *raw = n < 0 ? NULL : malloc((size_t)n + 1);
    if (raw)
        vsnprintf(raw, (size_t)n + 1, fmt, again);
    va_end(again);
    if (!raw)
        return;
    /* The format's own final newline ends the line; any other is data. */
    int newline = n > 0 && raw[n - 1] == '\n';
    if (newline)
        raw[n - 1] = '\0';
    char *text = ctl_term_text(raw);
    fprintf(out, "%s%s", text ? text : "(out of memory)", newline ? "\n" : "");
    free(text);
    free(raw);
}

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
        char *copy = ctl_term_text(text);
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

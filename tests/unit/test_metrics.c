/*
 * test_metrics.c - common/metrics.c: what the registry renders reads back,
 * with a strict parser of the text exposition format 0.0.4 written here,
 * as exactly the values that were recorded: counters and gauges by label
 * values, escaped label values and help text, cumulative histogram buckets
 * ending in +Inf == _count, collectors run at scrape time, registration
 * rules, and exact counts under concurrent updates and scrapes.
 */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

/* ------------------------------------------------- a strict parser */

#define MAX_LABELS 8

struct sample {
    char name[128];
    size_t nlabels;
    char key[MAX_LABELS][64];
    char value_text[MAX_LABELS][256]; /* unescaped label values */
    double value;
};

struct expo {
    struct sample *samples;
    size_t count;
    char help[64][2][256]; /* family name, unescaped help */
    char type[64][2][128]; /* family name, type */
    size_t nhelp, ntype;
};

/* Parses one label value after the opening quote; returns the position
 * after the closing quote, or NULL. */
static const char *parse_label_value(const char *p, char *out, size_t size) {
    size_t n = 0;
    for (; *p && *p != '"'; p++) {
        char c = *p;
        if (c == '\n')
            return NULL;
        if (c == '\\') {
            p++;
            if (*p == 'n')
                c = '\n';
            else if (*p == '\\' || *p == '"')
                c = *p;
            else
                return NULL; /* no other escapes exist */
        }
        if (n + 1 >= size)
            return NULL;
        out[n++] = c;
    }
    out[n] = '\0';
    return *p == '"' ? p + 1 : NULL;
}

static int parse_value(const char *text, double *v) {
    if (strcmp(text, "+Inf") == 0) {
        *v = INFINITY;
        return 1;
    }
    if (strcmp(text, "-Inf") == 0) {
        *v = -INFINITY;
        return 1;
    }
    if (strcmp(text, "NaN") == 0) {
        *v = NAN;
        return 1;
    }
    char *end;
    *v = strtod(text, &end);
    return end != text && *end == '\0';
}

static int name_char(char c, int first) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
           (!first && c >= '0' && c <= '9');
}

/* Parses a whole exposition; fails the test on any malformed line. */
static void parse(const char *text, struct expo *e) {
    memset(e, 0, sizeof *e);
    size_t cap = 64;
    e->samples = calloc(cap, sizeof *e->samples);
    ck_assert_msg(text[0] == '\0' || text[strlen(text) - 1] == '\n',
                  "exposition must end with a newline");
    char *copy = strdup(text);
    char *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "# HELP ", 7) == 0) {
            char *name = line + 7, *sp = strchr(name, ' ');
            ck_assert_msg(sp, "HELP without text: %s", line);
            *sp = '\0';
            ck_assert(e->nhelp < 64);
            snprintf(e->help[e->nhelp][0], 256, "%s", name);
            /* unescape \\ and \n */
            char *o = e->help[e->nhelp][1];
            for (const char *p = sp + 1; *p; p++) {
                if (*p == '\\') {
                    p++;
                    ck_assert_msg(*p == '\\' || *p == 'n', "bad HELP escape in %s", name);
                    *o++ = *p == 'n' ? '\n' : '\\';
                } else {
                    *o++ = *p;
                }
            }
            *o = '\0';
            e->nhelp++;
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            char name[128], type[64];
            ck_assert_msg(sscanf(line + 7, "%127s %63s", name, type) == 2, "bad TYPE: %s", line);
            ck_assert_msg(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
                              strcmp(type, "histogram") == 0,
                          "unknown type %s", type);
            snprintf(e->type[e->ntype][0], 128, "%s", name);
            snprintf(e->type[e->ntype][1], 128, "%s", type);
            e->ntype++;
            continue;
        }
        ck_assert_msg(line[0] != '#', "unexpected comment: %s", line);
        if (e->count == cap) {
            cap *= 2;
            e->samples = realloc(e->samples, cap * sizeof *e->samples);
        }
        struct sample *s = &e->samples[e->count];
        memset(s, 0, sizeof *s);
        const char *p = line;
        size_t n = 0;
        ck_assert_msg(name_char(*p, 1), "bad sample name: %s", line);
        while (name_char(*p, n == 0) && n + 1 < sizeof s->name)
            s->name[n++] = *p++;
        if (*p == '{') {
            p++;
            while (*p != '}') {
                ck_assert_msg(s->nlabels < MAX_LABELS, "too many labels: %s", line);
                size_t k = 0;
                ck_assert_msg(name_char(*p, 1) && *p != ':', "bad label name: %s", line);
                while (name_char(*p, k == 0) && *p != ':' && k + 1 < 64)
                    s->key[s->nlabels][k++] = *p++;
                ck_assert_msg(p[0] == '=' && p[1] == '"', "bad label syntax: %s", line);
                p = parse_label_value(p + 2, s->value_text[s->nlabels], 256);
                ck_assert_msg(p, "bad label value: %s", line);
                s->nlabels++;
                if (*p == ',')
                    p++;
                else
                    ck_assert_msg(*p == '}', "bad label list: %s", line);
            }
            p++;
        }
        ck_assert_msg(*p == ' ', "no space before the value: %s", line);
        ck_assert_msg(parse_value(p + 1, &s->value), "bad value: %s", line);
        e->count++;
    }
    free(copy);
}

static void expo_free(struct expo *e) {
    free(e->samples);
}

/* The sample `name` with exactly the labels k1, v1, k2, v2, ..., NULL;
 * NULL when absent. */
static const struct sample *find(const struct expo *e, const char *name, ...) {
    const char *keys[MAX_LABELS], *values[MAX_LABELS];
    size_t n = 0;
    va_list ap;
    va_start(ap, name);
    for (const char *k; (k = va_arg(ap, const char *));) {
        keys[n] = k;
        values[n++] = va_arg(ap, const char *);
    }
    va_end(ap);
    for (size_t i = 0; i < e->count; i++) {
        const struct sample *s = &e->samples[i];
        if (strcmp(s->name, name) != 0 || s->nlabels != n)
            continue;
        size_t matched = 0;
        for (size_t a = 0; a < n; a++)
            for (size_t b = 0; b < n; b++)
                if (strcmp(keys[a], s->key[b]) == 0 && strcmp(values[a], s->value_text[b]) == 0)
                    matched++;
        if (matched == n)
            return s;
    }
    return NULL;
}

static size_t count_named(const struct expo *e, const char *name) {
    size_t n = 0;
    for (size_t i = 0; i < e->count; i++)
        n += strcmp(e->samples[i].name, name) == 0;
    return n;
}

static void render(baton_metrics_t *m, struct expo *e, char **text) {
    size_t len;
    ck_assert_int_eq(baton_metrics_render(m, text, &len), BATON_OK);
    ck_assert_uint_eq(strlen(*text), len);
    parse(*text, e);
}

/* ------------------------------------------------------------- core */

START_TEST(test_counters_and_gauges_read_back) {
    baton_metrics_t *m = baton_metrics_new();
    baton_metric_t *claimed =
        baton_metrics_counter(m, "baton_test_claimed_total", "Tasks claimed.", "queue,type");
    baton_metric_t *paused = baton_metrics_gauge(m, "baton_test_paused", "1 while paused.", NULL);
    baton_metric_t *depth = baton_metrics_gauge(m, "baton_test_depth", "Ready tasks.", "queue");
    ck_assert_ptr_nonnull(claimed);
    ck_assert_ptr_nonnull(paused);
    for (int i = 0; i < 50; i++)
        baton_metric_inc(claimed, BATON_LABELS("emails", "noop"));
    baton_metric_add(claimed, BATON_LABELS("emails", "fail"), 20);
    baton_metric_add(claimed, BATON_LABELS("emails", "fail"), -5); /* ignored */
    baton_metric_inc(claimed, BATON_LABELS("reports", "noop"));
    baton_metric_set(depth, BATON_LABELS("emails"), 7);
    baton_metric_set(depth, BATON_LABELS("emails"), 3);
    baton_metric_add(depth, BATON_LABELS("emails"), -1);
    baton_metric_set(depth, BATON_LABELS("big"), 9007199254740993.0); /* 2^53 + 1 rounds */
    baton_metric_set(depth, BATON_LABELS("tenth"), 0.1);

    struct expo e;
    char *text;
    render(m, &e, &text);
    ck_assert_ptr_nonnull(strstr(text, "# HELP baton_test_claimed_total Tasks claimed.\n"
                                       "# TYPE baton_test_claimed_total counter\n"));
    ck_assert_ptr_nonnull(strstr(text, "# TYPE baton_test_paused gauge\n"));
    ck_assert_double_eq(
        find(&e, "baton_test_claimed_total", "queue", "emails", "type", "noop", NULL)->value, 50);
    ck_assert_double_eq(
        find(&e, "baton_test_claimed_total", "queue", "emails", "type", "fail", NULL)->value, 20);
    ck_assert_double_eq(
        find(&e, "baton_test_claimed_total", "type", "noop", "queue", "reports", NULL)->value, 1);
    ck_assert_uint_eq(count_named(&e, "baton_test_claimed_total"), 3);
    /* A labelless family is there from the start, at 0. */
    ck_assert_double_eq(find(&e, "baton_test_paused", NULL)->value, 0);
    ck_assert_double_eq(find(&e, "baton_test_depth", "queue", "emails", NULL)->value, 2);
    ck_assert_double_eq(find(&e, "baton_test_depth", "queue", "tenth", NULL)->value, 0.1);
    /* Integral values print as integers, fractions in the shortest exact form. */
    ck_assert_ptr_nonnull(
        strstr(text, "baton_test_claimed_total{queue=\"emails\",type=\"noop\"} 50\n"));
    ck_assert_ptr_nonnull(strstr(text, "baton_test_depth{queue=\"tenth\"} 0.1\n"));
    ck_assert_ptr_nonnull(strstr(text, "baton_test_depth{queue=\"big\"} 9007199254740992\n"));
    ck_assert_double_eq(baton_metric_value(claimed, BATON_LABELS("emails", "noop")), 50);
    ck_assert_double_eq(baton_metric_value(claimed, BATON_LABELS("none", "noop")), 0);
    free(text);
    expo_free(&e);
    baton_metrics_destroy(m);
}
END_TEST

START_TEST(test_escaping) {
    baton_metrics_t *m = baton_metrics_new();
    baton_metric_t *c = baton_metrics_counter(
        m, "baton_test_escaped_total", "Help with a \\ backslash\nand a second line.", "queue");
    const char *nasty = "a\"quoted\" \\path\\\nnew line {},=";
    baton_metric_add(c, BATON_LABELS(nasty), 3);
    baton_metric_inc(c, BATON_LABELS(NULL)); /* NULL is "" */
    struct expo e;
    char *text;
    render(m, &e, &text);
    ck_assert_ptr_nonnull(strstr(
        text,
        "baton_test_escaped_total{queue=\"a\\\"quoted\\\" \\\\path\\\\\\nnew line {},=\"} 3\n"));
    ck_assert_ptr_nonnull(strstr(
        text, "# HELP baton_test_escaped_total Help with a \\\\ backslash\\nand a second line.\n"));
    ck_assert_double_eq(find(&e, "baton_test_escaped_total", "queue", nasty, NULL)->value, 3);
    ck_assert_double_eq(find(&e, "baton_test_escaped_total", "queue", "", NULL)->value, 1);
    ck_assert_str_eq(e.help[0][1], "Help with a \\ backslash\nand a second line.");
    /* No line of the output breaks: every line parsed as one sample. */
    ck_assert_uint_eq(e.count, 2);
    free(text);
    expo_free(&e);
    baton_metrics_destroy(m);
}
END_TEST

START_TEST(test_histogram_cumulative) {
    baton_metrics_t *m = baton_metrics_new();
    static const double bounds[] = {0.01, 0.1, 1};
    baton_metric_t *h =
        baton_metrics_histogram(m, "baton_test_run_seconds", "Run time.", "type", bounds, 3);
    ck_assert_ptr_nonnull(h);
    /* 0.01 is on a bound: le is inclusive. */
    const double obs[] = {0.005, 0.01, 0.05, 0.5, 0.5, 7, 1};
    double sum = 0;
    for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++) {
        baton_metric_observe(h, BATON_LABELS("noop"), obs[i]);
        sum += obs[i];
    }
    baton_metric_observe(h, BATON_LABELS("noop"), NAN); /* ignored */
    baton_metric_observe(h, BATON_LABELS("other"), 0.2);
    struct expo e;
    char *text;
    render(m, &e, &text);
    ck_assert_ptr_nonnull(strstr(text, "# TYPE baton_test_run_seconds histogram\n"));
    const char *les[] = {"0.01", "0.1", "1", "+Inf"};
    const double want[] = {2, 3, 6, 7};
    for (int i = 0; i < 4; i++) {
        const struct sample *s =
            find(&e, "baton_test_run_seconds_bucket", "type", "noop", "le", les[i], NULL);
        ck_assert_msg(s, "no bucket le=%s", les[i]);
        ck_assert_double_eq(s->value, want[i]);
    }
    ck_assert_double_eq(find(&e, "baton_test_run_seconds_count", "type", "noop", NULL)->value, 7);
    ck_assert_double_eq_tol(find(&e, "baton_test_run_seconds_sum", "type", "noop", NULL)->value,
                            sum, 1e-12);
    const double other[] = {0, 0, 1, 1};
    for (int i = 0; i < 4; i++)
        ck_assert_double_eq(
            find(&e, "baton_test_run_seconds_bucket", "type", "other", "le", les[i], NULL)->value,
            other[i]);
    /* Every series: buckets never decrease and +Inf equals _count. */
    for (size_t i = 0; i < e.count; i++) {
        const struct sample *s = &e.samples[i];
        if (strcmp(s->name, "baton_test_run_seconds_count") != 0)
            continue;
        double prev = 0;
        for (int b = 0; b < 4; b++) {
            const struct sample *bk = find(&e, "baton_test_run_seconds_bucket", "type",
                                           s->value_text[0], "le", les[b], NULL);
            ck_assert(bk->value >= prev);
            prev = bk->value;
        }
        ck_assert_double_eq(prev, s->value);
    }
    ck_assert_double_eq(baton_metric_value(h, BATON_LABELS("noop")), 7);
    free(text);
    expo_free(&e);
    baton_metrics_destroy(m);
}
END_TEST

struct lag_source {
    int calls;
    int partitions;
};

static void collect_lag(baton_metric_t *family, void *ctx) {
    struct lag_source *src = ctx;
    src->calls++;
    for (int p = 0; p < src->partitions; p++) {
        char part[16];
        snprintf(part, sizeof part, "%d", p);
        baton_metric_set(family, BATON_LABELS("tasks", part), (double)(p * 10 + src->calls));
    }
}

START_TEST(test_collector_at_scrape_time) {
    baton_metrics_t *m = baton_metrics_new();
    baton_metric_t *lag = baton_metrics_gauge(m, "baton_test_lag", "Lag.", "topic,partition");
    struct lag_source src = {0, 3};
    ck_assert_int_eq(baton_metric_set_collector(lag, collect_lag, &src), BATON_OK);
    baton_metric_set(lag, BATON_LABELS("stale", "9"), 99); /* dropped before collecting */
    struct expo e;
    char *text;
    render(m, &e, &text);
    ck_assert_int_eq(src.calls, 1);
    ck_assert_uint_eq(count_named(&e, "baton_test_lag"), 3);
    ck_assert_ptr_null(find(&e, "baton_test_lag", "topic", "stale", "partition", "9", NULL));
    ck_assert_double_eq(find(&e, "baton_test_lag", "topic", "tasks", "partition", "2", NULL)->value,
                        21);
    free(text);
    expo_free(&e);
    /* Partitions revoked: their series go away at the next scrape. */
    src.partitions = 1;
    render(m, &e, &text);
    ck_assert_uint_eq(count_named(&e, "baton_test_lag"), 1);
    ck_assert_double_eq(find(&e, "baton_test_lag", "topic", "tasks", "partition", "0", NULL)->value,
                        2);
    free(text);
    expo_free(&e);
    /* Detached: no more calls; the family keeps what it has. */
    ck_assert_int_eq(baton_metric_set_collector(lag, NULL, NULL), BATON_OK);
    render(m, &e, &text);
    ck_assert_int_eq(src.calls, 2);
    free(text);
    expo_free(&e);
    /* Only gauges take collectors. */
    baton_metric_t *c = baton_metrics_counter(m, "baton_test_c_total", "C.", NULL);
    ck_assert_int_eq(baton_metric_set_collector(c, collect_lag, &src), BATON_ERR_INVALID);
    baton_metrics_destroy(m);
}
END_TEST

START_TEST(test_reset) {
    baton_metrics_t *m = baton_metrics_new();
    baton_metric_t *g = baton_metrics_gauge(m, "baton_test_g", "G.", "q");
    baton_metric_t *solo = baton_metrics_gauge(m, "baton_test_solo", "S.", NULL);
    baton_metric_set(g, BATON_LABELS("a"), 1);
    baton_metric_set(solo, NULL, 5);
    baton_metric_reset(g);
    baton_metric_reset(solo);
    baton_metric_set(g, BATON_LABELS("b"), 2);
    struct expo e;
    char *text;
    render(m, &e, &text);
    ck_assert_ptr_null(find(&e, "baton_test_g", "q", "a", NULL));
    ck_assert_double_eq(find(&e, "baton_test_g", "q", "b", NULL)->value, 2);
    ck_assert_double_eq(find(&e, "baton_test_solo", NULL)->value, 0);
    free(text);
    expo_free(&e);
    baton_metrics_destroy(m);
}
END_TEST

/* --------------------------------------------------------------- limits */

START_TEST(test_registration_rules) {
    baton_metrics_t *m = baton_metrics_new();
    baton_metric_t *c = baton_metrics_counter(m, "baton_x_total", "X.", "queue,type");
    ck_assert_ptr_nonnull(c);
    /* The same again: the same family. */
    ck_assert_ptr_eq(baton_metrics_counter(m, "baton_x_total", "other help", "queue,type"), c);
    /* Same name, other type or labels: refused. */
    ck_assert_ptr_null(baton_metrics_gauge(m, "baton_x_total", "X.", "queue,type"));
    ck_assert_ptr_null(baton_metrics_counter(m, "baton_x_total", "X.", "queue"));
    /* Bad names. */
    ck_assert_ptr_null(baton_metrics_counter(m, "9lives", "X.", NULL));
    ck_assert_ptr_null(baton_metrics_counter(m, "has space", "X.", NULL));
    ck_assert_ptr_null(baton_metrics_counter(m, "", "X.", NULL));
    ck_assert_ptr_null(baton_metrics_counter(m, "ok_total", "X.", "bad-label"));
    ck_assert_ptr_null(baton_metrics_counter(m, "ok_total", "X.", "__reserved"));
    ck_assert_ptr_null(baton_metrics_counter(m, "ok_total", "X.", "a,,b"));
    ck_assert_ptr_null(baton_metrics_counter(m, "ok_total", "X.", "a,a"));
    ck_assert_ptr_nonnull(baton_metrics_counter(m, "ns:ok_total", "X.", "a,b2"));
    /* Histograms: "le" is theirs; bounds strictly increasing and finite. */
    static const double good[] = {1, 2}, unsorted[] = {2, 1}, inf[] = {1, INFINITY};
    ck_assert_ptr_null(baton_metrics_histogram(m, "h_seconds", "H.", "le", good, 2));
    ck_assert_ptr_null(baton_metrics_histogram(m, "h_seconds", "H.", NULL, unsorted, 2));
    ck_assert_ptr_null(baton_metrics_histogram(m, "h_seconds", "H.", NULL, inf, 2));
    ck_assert_ptr_nonnull(baton_metrics_histogram(m, "h_seconds", "H.", NULL, good, 2));
    /* Wrong-kind updates do nothing; NULL families are no-ops. */
    baton_metric_set(c, BATON_LABELS("q", "t"), 5);
    baton_metric_observe(c, BATON_LABELS("q", "t"), 5);
    baton_metric_inc(NULL, NULL);
    baton_metric_observe(NULL, NULL, 1);
    ck_assert_double_eq(baton_metric_value(c, BATON_LABELS("q", "t")), 0);
    baton_metrics_destroy(m);
    baton_metrics_destroy(NULL);
}
END_TEST

START_TEST(test_special_values) {
    baton_metrics_t *m = baton_metrics_new();
    baton_metric_t *g = baton_metrics_gauge(m, "baton_test_special", "S.", "k");
    baton_metric_set(g, BATON_LABELS("inf"), INFINITY);
    baton_metric_set(g, BATON_LABELS("ninf"), -INFINITY);
    baton_metric_set(g, BATON_LABELS("nan"), NAN);
    baton_metric_set(g, BATON_LABELS("tiny"), 1e-7);
    baton_metric_set(g, BATON_LABELS("neg"), -2.5);
    struct expo e;
    char *text;
    render(m, &e, &text);
    ck_assert_ptr_nonnull(strstr(text, "baton_test_special{k=\"inf\"} +Inf\n"));
    ck_assert_ptr_nonnull(strstr(text, "baton_test_special{k=\"ninf\"} -Inf\n"));
    ck_assert_ptr_nonnull(strstr(text, "baton_test_special{k=\"nan\"} NaN\n"));
    ck_assert_double_eq(find(&e, "baton_test_special", "k", "tiny", NULL)->value, 1e-7);
    ck_assert_double_eq(find(&e, "baton_test_special", "k", "neg", NULL)->value, -2.5);
    free(text);
    expo_free(&e);
    /* An empty registry renders as empty text. */
    baton_metrics_t *empty = baton_metrics_new();
    size_t len;
    ck_assert_int_eq(baton_metrics_render(empty, &text, &len), BATON_OK);
    ck_assert_uint_eq(len, 0);
    free(text);
    baton_metrics_destroy(empty);
    baton_metrics_destroy(m);
}
END_TEST

/* ----------------------------------------------------------- concurrency */

#define THREADS 8
#define UPDATES 20000

struct hammer {
    baton_metric_t *counter, *hist;
    int index;
};

static void *hammer_main(void *arg) {
    struct hammer *h = arg;
    char queue[16];
    for (int i = 0; i < UPDATES; i++) {
        snprintf(queue, sizeof queue, "q%d", i % 4);
        baton_metric_inc(h->counter, BATON_LABELS(queue));
        baton_metric_observe(h->hist, NULL, (double)(i % 3));
    }
    return NULL;
}

static void *scraper_main(void *arg) {
    baton_metrics_t *m = arg;
    for (int i = 0; i < 50; i++) {
        char *text;
        size_t len;
        ck_assert_int_eq(baton_metrics_render(m, &text, &len), BATON_OK);
        struct expo e;
        parse(text, &e);
        expo_free(&e);
        free(text);
    }
    return NULL;
}

START_TEST(test_concurrent_updates_are_exact) {
    baton_metrics_t *m = baton_metrics_new();
    static const double bounds[] = {0, 1, 2};
    struct hammer h = {baton_metrics_counter(m, "baton_test_hits_total", "Hits.", "queue"),
                       baton_metrics_histogram(m, "baton_test_h", "H.", NULL, bounds, 3), 0};
    pthread_t threads[THREADS], scraper;
    pthread_create(&scraper, NULL, scraper_main, m);
    for (int i = 0; i < THREADS; i++)
        pthread_create(&threads[i], NULL, hammer_main, &h);
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    pthread_join(scraper, NULL);
    struct expo e;
    char *text;
    render(m, &e, &text);
    for (int q = 0; q < 4; q++) {
        char queue[16];
        snprintf(queue, sizeof queue, "q%d", q);
        ck_assert_double_eq(find(&e, "baton_test_hits_total", "queue", queue, NULL)->value,
                            (double)(THREADS * UPDATES) / 4);
    }
    ck_assert_double_eq(find(&e, "baton_test_h_count", NULL)->value, THREADS * UPDATES);
    ck_assert_double_eq(find(&e, "baton_test_h_bucket", "le", "+Inf", NULL)->value,
                        THREADS * UPDATES);
    free(text);
    expo_free(&e);
    baton_metrics_destroy(m);
}
END_TEST

START_TEST(test_many_series) {
    /* The hash table grows; every series keeps its own value. */
    baton_metrics_t *m = baton_metrics_new();
    baton_metrics_set_label_values(m, 5000); /* no folding here */
    baton_metric_t *c = baton_metrics_counter(m, "baton_test_many_total", "M.", "a,b");
    char a[16], b[16];
    for (int round = 1; round <= 2; round++)
        for (int i = 0; i < 2000; i++) {
            snprintf(a, sizeof a, "%d", i);
            snprintf(b, sizeof b, "%d", i % 7);
            baton_metric_add(c, BATON_LABELS(a, b), i);
        }
    for (int i = 0; i < 2000; i += 97) {
        snprintf(a, sizeof a, "%d", i);
        snprintf(b, sizeof b, "%d", i % 7);
        ck_assert_double_eq(baton_metric_value(c, BATON_LABELS(a, b)), 2.0 * i);
    }
    /* ("ab","") and ("a","b") are different series. */
    baton_metric_inc(c, BATON_LABELS("ab", ""));
    baton_metric_add(c, BATON_LABELS("a", "b"), 5);
    ck_assert_double_eq(baton_metric_value(c, BATON_LABELS("ab", "")), 1);
    ck_assert_double_eq(baton_metric_value(c, BATON_LABELS("a", "b")), 5);
    baton_metrics_destroy(m);
}
END_TEST

/* Producers choose queue names: 250 queues make 200 series of their own
 * and one "other", and the folding is counted. */
START_TEST(test_label_values_fold_into_other) {
    baton_metrics_t *m = baton_metrics_new();
    baton_metric_t *c = baton_metrics_counter(m, "baton_test_tasks_total", "T.", "queue,type");
    baton_metric_t *g = baton_metrics_gauge(m, "baton_test_depth", "D.", "queue");
    static const double bounds[] = {1};
    baton_metric_t *h =
        baton_metrics_histogram(m, "baton_test_run_seconds", "R.", "type", bounds, 1);

    /* Nothing folded yet: the fold counter is not exported at all. */
    struct expo e;
    char *text;
    render(m, &e, &text);
    ck_assert_ptr_null(strstr(text, "baton_metric_values_folded_total"));
    free(text);
    expo_free(&e);

    char queue[32];
    for (int i = 0; i < 250; i++) {
        snprintf(queue, sizeof queue, "q%d", i);
        baton_metric_inc(c, BATON_LABELS(queue, i % 2 ? "odd" : "even"));
        baton_metric_set(g, BATON_LABELS(queue), i);
        snprintf(queue, sizeof queue, "type%d", i);
        baton_metric_observe(h, BATON_LABELS(queue), 0.5);
    }
    baton_metric_inc(c, BATON_LABELS("q5", "odd"));   /* an admitted value keeps its series */
    baton_metric_inc(c, BATON_LABELS("q249", "odd")); /* a folded one stays folded */
    render(m, &e, &text);
    ck_assert_uint_eq(count_named(&e, "baton_test_tasks_total"), 200 + 2); /* other: odd, even */
    ck_assert_double_eq(
        find(&e, "baton_test_tasks_total", "queue", "q5", "type", "odd", NULL)->value, 2);
    ck_assert_ptr_null(find(&e, "baton_test_tasks_total", "queue", "q200", "type", "even", NULL));
    ck_assert_double_eq(
        find(&e, "baton_test_tasks_total", "queue", "other", "type", "even", NULL)->value, 25);
    ck_assert_double_eq(
        find(&e, "baton_test_tasks_total", "queue", "other", "type", "odd", NULL)->value, 26);
    ck_assert_uint_eq(count_named(&e, "baton_test_depth"), 201);
    ck_assert_double_eq(find(&e, "baton_test_depth", "queue", "other", NULL)->value, 249);
    ck_assert_uint_eq(count_named(&e, "baton_test_run_seconds_count"), 201);
    ck_assert_double_eq(find(&e, "baton_test_run_seconds_count", "type", "other", NULL)->value, 50);
    ck_assert_double_eq(
        find(&e, "baton_metric_values_folded_total", "metric", "baton_test_tasks_total", NULL)
            ->value,
        51);
    ck_assert_double_eq(
        find(&e, "baton_metric_values_folded_total", "metric", "baton_test_depth", NULL)->value,
        50);
    ck_assert_double_eq(
        find(&e, "baton_metric_values_folded_total", "metric", "baton_test_run_seconds", NULL)
            ->value,
        50);
    ck_assert_ptr_nonnull(strstr(text, "# TYPE baton_metric_values_folded_total counter\n"));
    free(text);
    expo_free(&e);
    baton_metrics_destroy(m);
}
END_TEST

/* A collector that reports 300 queues each scrape: the admitted values
 * start afresh with each scrape, so the series stay 200 + "other". */
static void collect_300(baton_metric_t *family, void *ctx) {
    (void)ctx;
    char queue[32];
    for (int i = 0; i < 300; i++) {
        snprintf(queue, sizeof queue, "q%d", i);
        baton_metric_set(family, BATON_LABELS(queue), 1);
    }
}

START_TEST(test_label_values_limit_set_and_reset) {
    baton_metrics_t *m = baton_metrics_new();
    baton_metrics_set_label_values(m, 3);
    baton_metric_t *c = baton_metrics_counter(m, "baton_test_c_total", "C.", "queue");
    const char *names[] = {"a", "b", "c", "d", "other", "e"};
    for (size_t i = 0; i < 6; i++)
        baton_metric_inc(c, BATON_LABELS(names[i]));
    ck_assert_double_eq(baton_metric_value(c, BATON_LABELS("c")), 1);
    ck_assert_double_eq(baton_metric_value(c, BATON_LABELS("d")), 0);
    ck_assert_double_eq(baton_metric_value(c, BATON_LABELS("other")), 3); /* d, other, e */
    /* After a reset, new values are admitted again. */
    baton_metric_reset(c);
    baton_metric_inc(c, BATON_LABELS("d"));
    ck_assert_double_eq(baton_metric_value(c, BATON_LABELS("d")), 1);
    /* 0 is the default again. */
    baton_metrics_set_label_values(m, 0);
    baton_metric_t *g = baton_metrics_gauge(m, "baton_test_ready", "R.", "queue");
    ck_assert_int_eq(baton_metric_set_collector(g, collect_300, NULL), BATON_OK);
    for (int scrape = 1; scrape <= 2; scrape++) {
        struct expo e;
        char *text;
        render(m, &e, &text);
        ck_assert_uint_eq(count_named(&e, "baton_test_ready"), BATON_METRICS_LABEL_VALUES + 1);
        ck_assert_double_eq(
            find(&e, "baton_metric_values_folded_total", "metric", "baton_test_ready", NULL)->value,
            100.0 * scrape);
        free(text);
        expo_free(&e);
    }
    /* More label names than a family may have: refused. */
    ck_assert_ptr_null(
        baton_metrics_counter(m, "baton_test_wide_total", "W.", "a,b,c,d,e,f,g,h,i"));
    baton_metrics_destroy(m);
}
END_TEST

static Suite *metrics_suite(void) {
    Suite *s = suite_create("metrics");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_counters_and_gauges_read_back);
    tcase_add_test(core, test_escaping);
    tcase_add_test(core, test_histogram_cumulative);
    tcase_add_test(core, test_collector_at_scrape_time);
    tcase_add_test(core, test_reset);
    suite_add_tcase(s, core);
    TCase *limits = tcase_create("limits");
    tcase_add_test(limits, test_registration_rules);
    tcase_add_test(limits, test_special_values);
    tcase_add_test(limits, test_many_series);
    tcase_add_test(limits, test_label_values_fold_into_other);
    tcase_add_test(limits, test_label_values_limit_set_and_reset);
    suite_add_tcase(s, limits);
    TCase *threads = tcase_create("threads");
    tcase_add_test(threads, test_concurrent_updates_are_exact);
    suite_add_tcase(s, threads);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(metrics_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

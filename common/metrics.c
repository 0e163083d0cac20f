/*
 * metrics.c - the Prometheus registry (see metrics.h).
 *
 * A family keeps its series twice: in an array, for rendering in creation
 * order (stable output, easy to diff and test), and in a small chained hash
 * table keyed by the label values, for updates. One mutex per family guards
 * both; updates are a hash, a short compare and an add under it, which is
 * far below the cost of the Redis round trip each update accompanies.
 *
 * The registry's own mutex guards the family list and serializes scrapes:
 * rendering holds it from the first collector to the last byte, so
 * detaching a collector (which takes it) waits for a scrape in progress and
 * two scrapes never interleave a collector's reset and sets. Lock order is
 * registry, then family; update paths take only the family lock, so a
 * daemon thread never waits for a scrape longer than the formatting of one
 * family.
 *
 * Label values come from producers (queue names, task types), so each
 * label of a family admits at most the registry's limit of distinct values
 * (BATON_METRICS_LABEL_VALUES by default); a new value past it is counted
 * under "other" instead, and the update is counted in
 * baton_metric_values_folded_total. The admitted values of a label are
 * kept as a short array of hashes (and the strings), scanned only when a
 * series is created or an update is folded, never on the common path of
 * an existing series.
 *
 * Values are doubles, as in Prometheus; they are printed in the shortest
 * form that reads back to the same double, so integral counts print as
 * integers ("50", not "5.0e+01").
 */
#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"

enum family_type { TYPE_COUNTER, TYPE_GAUGE, TYPE_HISTOGRAM };

static const char *const type_names[] = {"counter", "gauge", "histogram"};

struct series {
    char **values;       /* label values, owned, nlabels of them */
    uint64_t hash;       /* of the values */
    double value;        /* counter and gauge */
    uint64_t *buckets;   /* histogram: per-bucket counts (not cumulative),
                            nbounds + 1 with the +Inf bucket last */
    double sum;          /* histogram: sum of observations */
    uint64_t count;      /* histogram: number of observations */
    struct series *next; /* hash chain */
};

/* The distinct values one label of a family has taken (since a reset). */
struct label_values {
    uint64_t *hashes; /* of each value, for a quick scan */
    char **values;    /* owned */
    size_t count, cap;
};

struct baton_metric {
    baton_metrics_t *registry; /* the owner */
    int never_folds;           /* the fold counter itself: its labels are family names */
    int hidden_when_empty;     /* not rendered while it has no series */
    enum family_type type;
    char *name, *help; /* owned */
    char **labels;     /* label names, owned */
    size_t nlabels;
    double *bounds; /* histogram upper bounds, owned */
    size_t nbounds;
    baton_metric_collect_fn collect; /* gauge collector; guarded by the registry lock */
    void *collect_ctx;

    pthread_mutex_t lock; /* guards everything below */
    struct series **list; /* creation order */
    size_t count, cap;
    struct series **table; /* hash chains; size is a power of two */
    size_t table_size;
    struct label_values *seen; /* per label, nlabels of them */
};

struct baton_metrics {
    pthread_mutex_t lock; /* family list; serializes scrapes */
    struct baton_metric **families;
    size_t count, cap;
    atomic_size_t label_values;  /* distinct values a label admits */
    struct baton_metric *folded; /* baton_metric_values_folded_total; NULL if out of memory */
};

/* The label value that values past a family's limit are counted under. */
static const char OTHER[] = "other";

/* ------------------------------------------------------------- helpers */

int64_t baton_metrics_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

double baton_metrics_since(int64_t start_ns) {
    int64_t d = baton_metrics_now_ns() - start_ns;
    return d > 0 ? (double)d / 1e9 : 0.0;
}

static int valid_metric_name(const char *s) {
    if (!s || !*s)
        return 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
        if (!alpha && !(p > s && c >= '0' && c <= '9'))
            return 0;
    }
    return 1;
}

static int valid_label_name(const char *s, size_t n) {
    if (n == 0 || (n >= 2 && s[0] == '_' && s[1] == '_'))
        return 0; /* "__" names are reserved for Prometheus itself */
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            return 0;
    }
    return 1;
}

/* Splits "a,b,c" into owned names; 0 on success, -1 on a bad list. */
static int parse_labels(const char *spec, char ***out, size_t *n, int histogram) {
    *out = NULL;
    *n = 0;
    if (!spec || !*spec)
        return 0;
    size_t cap = 1;
    for (const char *p = spec; *p; p++)
        cap += *p == ',';
    if (cap > BATON_METRICS_MAX_LABELS)
        return -1;
    char **names = calloc(cap, sizeof *names);
    if (!names)
        return -1;
    const char *start = spec;
    for (;;) {
        const char *end = strchr(start, ',');
        size_t len = end ? (size_t)(end - start) : strlen(start);
        int bad =
            !valid_label_name(start, len) || (histogram && len == 2 && memcmp(start, "le", 2) == 0);
        for (size_t i = 0; !bad && i < *n; i++)
            bad = strlen(names[i]) == len && memcmp(names[i], start, len) == 0;
        if (bad || !(names[*n] = strndup(start, len))) {
            for (size_t i = 0; i < *n; i++)
                free(names[i]);
            free(names);
            *n = 0;
            return -1;
        }
        (*n)++;
        if (!end)
            break;
        start = end + 1;
    }
    *out = names;
    return 0;
}

static uint64_t hash_string(const char *s) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return h;
}

static uint64_t hash_values(const char *const *values, size_t n) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)(values[i] ? values[i] : ""); *p;
             p++) {
            h ^= *p;
            h *= 1099511628211ULL;
        }
        h ^= 0xff; /* separator: ("ab","") and ("a","b") differ */
        h *= 1099511628211ULL;
    }
    return h;
}

static void series_free(struct series *s, size_t nlabels) {
    if (!s)
        return;
    for (size_t i = 0; i < nlabels; i++)
        free(s->values[i]);
    free(s->values);
    free(s->buckets);
    free(s);
}

/* ------------------------------------------------------------ families */

/* Forgets every admitted label value; family lock held (or no sharing). */
static void seen_clear(struct baton_metric *f) {
    for (size_t l = 0; f->seen && l < f->nlabels; l++) {
        struct label_values *lv = &f->seen[l];
        for (size_t i = 0; i < lv->count; i++)
            free(lv->values[i]);
        lv->count = 0;
    }
}

/* 1 when `value` is among the admitted values of label `l`. */
static int seen_has(const struct baton_metric *f, size_t l, const char *value, uint64_t h) {
    const struct label_values *lv = &f->seen[l];
    for (size_t i = 0; i < lv->count; i++)
        if (lv->hashes[i] == h && strcmp(lv->values[i], value) == 0)
            return 1;
    return 0;
}

/* Admits `value` to label `l`; out of memory it stays unadmitted, which
 * only means the next new series with it checks the limit again. */
static void seen_add(struct baton_metric *f, size_t l, const char *value, uint64_t h) {
    struct label_values *lv = &f->seen[l];
    if (lv->count == lv->cap) {
        size_t cap = lv->cap ? lv->cap * 2 : 8;
        uint64_t *hashes = realloc(lv->hashes, cap * sizeof *hashes);
        if (!hashes)
            return;
        lv->hashes = hashes;
        char **values = realloc(lv->values, cap * sizeof *values);
        if (!values)
            return;
        lv->values = values;
        lv->cap = cap;
    }
    char *copy = strdup(value);
    if (!copy)
        return;
    lv->hashes[lv->count] = h;
    lv->values[lv->count++] = copy;
}

static void family_free(struct baton_metric *f) {
    seen_clear(f);
    for (size_t l = 0; f->seen && l < f->nlabels; l++) {
        free(f->seen[l].hashes);
        free(f->seen[l].values);
    }
    free(f->seen);
    for (size_t i = 0; i < f->count; i++)
        series_free(f->list[i], f->nlabels);
    free(f->list);
    free(f->table);
    for (size_t i = 0; i < f->nlabels; i++)
        free(f->labels[i]);
    free(f->labels);
    free(f->bounds);
    free(f->name);
    free(f->help);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

/* The series of `values` if it exists; family lock held. */
static struct series *series_find(struct baton_metric *f, const char *const *values, uint64_t h) {
    if (!f->table_size)
        return NULL;
    for (struct series *s = f->table[h & (f->table_size - 1)]; s; s = s->next) {
        if (s->hash != h)
            continue;
        size_t i = 0;
        while (i < f->nlabels && strcmp(s->values[i], values[i] ? values[i] : "") == 0)
            i++;
        if (i == f->nlabels)
            return s;
    }
    return NULL;
}

/*
 * Finds the series of `values`, creating it; family lock held. A label
 * value past the family's limit of distinct values is replaced by "other"
 * and *folded set. NULL when out of memory.
 */
static struct series *series_get(struct baton_metric *f, const char *const *values, int *folded) {
    static const char *const none[1] = {""};
    /* A family's labels are fixed at registration; one local keeps every
     * loop below bound by the same count as the arrays it indexes. */
    const size_t nlabels = f->nlabels;
    *folded = 0;
    if (nlabels == 0)
        values = none;
    uint64_t h = hash_values(values, nlabels);
    struct series *found = series_find(f, values, h);
    if (found)
        return found;
    /* A new series: every label value must be admitted, or fold. */
    const char *admitted[BATON_METRICS_MAX_LABELS];
    uint64_t value_hash[BATON_METRICS_MAX_LABELS];
    size_t limit = atomic_load(&f->registry->label_values);
    for (size_t l = 0; l < nlabels; l++) {
        admitted[l] = values[l] ? values[l] : "";
        value_hash[l] = hash_string(admitted[l]);
        if (f->never_folds || strcmp(admitted[l], OTHER) == 0 ||
            seen_has(f, l, admitted[l], value_hash[l]) || f->seen[l].count < limit)
            continue;
        admitted[l] = OTHER;
        *folded = 1;
    }
    if (*folded) {
        values = admitted;
        h = hash_values(values, nlabels);
        if ((found = series_find(f, values, h)))
            return found;
    }
    /* Grow the table at 3/4 load, and the creation-order list. */
    if (f->count + 1 > f->table_size * 3 / 4) {
        size_t size = f->table_size ? f->table_size * 2 : 16;
        struct series **table = calloc(size, sizeof *table);
        if (!table)
            return NULL;
        for (size_t i = 0; i < f->count; i++) {
            struct series *s = f->list[i];
            s->next = table[s->hash & (size - 1)];
            table[s->hash & (size - 1)] = s;
        }
        free(f->table);
        f->table = table;
        f->table_size = size;
    }
    if (f->count == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        struct series **list = realloc(f->list, cap * sizeof *list);
        if (!list)
            return NULL;
        f->list = list;
        f->cap = cap;
    }
    struct series *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->hash = h;
    s->values = calloc(nlabels ? nlabels : 1, sizeof *s->values);
    int failed = !s->values;
    for (size_t i = 0; !failed && i < nlabels; i++)
        failed = !(s->values[i] = strdup(values[i] ? values[i] : ""));
    if (!failed && f->type == TYPE_HISTOGRAM)
        failed = !(s->buckets = calloc(f->nbounds + 1, sizeof *s->buckets));
    if (failed) {
        series_free(s, s->values ? nlabels : 0);
        return NULL;
    }
    s->next = f->table[h & (f->table_size - 1)];
    f->table[h & (f->table_size - 1)] = s;
    f->list[f->count++] = s;
    for (size_t l = 0; l < nlabels; l++)
        if (!f->never_folds && strcmp(s->values[l], OTHER) != 0 &&
            !seen_has(f, l, s->values[l], value_hash[l]))
            seen_add(f, l, s->values[l], value_hash[l]);
    return s;
}

/* Counts a folded update of `f`; after its lock is released (the counter
 * has a lock of its own). */
static void count_folded(struct baton_metric *f, int folded) {
    if (folded)
        baton_metric_inc(f->registry->folded, BATON_LABELS(f->name));
}

static int same_labels(const struct baton_metric *f, char **labels, size_t n) {
    if (f->nlabels != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(f->labels[i], labels[i]) != 0)
            return 0;
    return 1;
}

static baton_metric_t *family_register(baton_metrics_t *m, enum family_type type, const char *name,
                                       const char *help, const char *labels, const double *bounds,
                                       size_t nbounds) {
    if (!m || !valid_metric_name(name))
        return NULL;
    for (size_t i = 0; type == TYPE_HISTOGRAM && i < nbounds; i++)
        if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
            return NULL;
    char **names;
    size_t nlabels;
    if (parse_labels(labels, &names, &nlabels, type == TYPE_HISTOGRAM))
        return NULL;

    pthread_mutex_lock(&m->lock);
    struct baton_metric *f = NULL;
    for (size_t i = 0; i < m->count; i++) {
        if (strcmp(m->families[i]->name, name) == 0) {
            struct baton_metric *old = m->families[i];
            int same = old->type == type && same_labels(old, names, nlabels) &&
                       old->nbounds == (type == TYPE_HISTOGRAM ? nbounds : 0) &&
                       (type != TYPE_HISTOGRAM ||
                        memcmp(old->bounds, bounds, nbounds * sizeof *bounds) == 0);
            f = same ? old : NULL;
            goto out;
        }
    }
    if (m->count == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        struct baton_metric **grown = realloc(m->families, cap * sizeof *grown);
        if (!grown)
            goto out;
        m->families = grown;
        m->cap = cap;
    }
    f = calloc(1, sizeof *f);
    if (!f)
        goto out;
    pthread_mutex_init(&f->lock, NULL);
    f->registry = m;
    f->type = type;
    f->labels = names;
    f->nlabels = nlabels;
    names = NULL; /* owned by the family now */
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    if (type == TYPE_HISTOGRAM) {
        f->nbounds = nbounds;
        f->bounds = malloc((nbounds ? nbounds : 1) * sizeof *f->bounds);
        if (f->bounds && nbounds)
            memcpy(f->bounds, bounds, nbounds * sizeof *bounds);
    }
    /* A labelless family exists from the start, at 0. */
    if (!f->name || !f->help || (type == TYPE_HISTOGRAM && !f->bounds) ||
        (nlabels && !(f->seen = calloc(nlabels, sizeof *f->seen))) ||
        (nlabels == 0 && !series_get(f, NULL, &(int){0}))) {
        family_free(f);
        f = NULL;
        goto out;
    }
    m->families[m->count++] = f;
out:
    pthread_mutex_unlock(&m->lock);
    if (names) {
        for (size_t i = 0; i < nlabels; i++)
            free(names[i]);
        free(names);
    }
    return f;
}

baton_metric_t *baton_metrics_counter(baton_metrics_t *m, const char *name, const char *help,
                                      const char *labels) {
    return family_register(m, TYPE_COUNTER, name, help, labels, NULL, 0);
}

baton_metric_t *baton_metrics_gauge(baton_metrics_t *m, const char *name, const char *help,
                                    const char *labels) {
    return family_register(m, TYPE_GAUGE, name, help, labels, NULL, 0);
}

baton_metric_t *baton_metrics_histogram(baton_metrics_t *m, const char *name, const char *help,
                                        const char *labels, const double *bounds, size_t nbounds) {
    if (nbounds && !bounds)
        return NULL;
    return family_register(m, TYPE_HISTOGRAM, name, help, labels, bounds, nbounds);
}

baton_err_t baton_metric_set_collector(baton_metric_t *f, baton_metric_collect_fn fn, void *ctx) {
    if (!f || f->type != TYPE_GAUGE)
        return BATON_ERR_INVALID;
    pthread_mutex_lock(&f->registry->lock);
    f->collect = fn;
    f->collect_ctx = fn ? ctx : NULL;
    pthread_mutex_unlock(&f->registry->lock);
    return BATON_OK;
}

/* -------------------------------------------------------------- updates */

void baton_metric_add(baton_metric_t *f, const char *const *values, double v) {
    if (!f || f->type == TYPE_HISTOGRAM || (f->type == TYPE_COUNTER && !(v >= 0)))
        return;
    int folded;
    pthread_mutex_lock(&f->lock);
    struct series *s = series_get(f, values, &folded);
    if (s)
        s->value += v;
    pthread_mutex_unlock(&f->lock);
    count_folded(f, folded);
}

void baton_metric_inc(baton_metric_t *f, const char *const *values) {
    baton_metric_add(f, values, 1.0);
}

void baton_metric_set(baton_metric_t *f, const char *const *values, double v) {
    if (!f || f->type != TYPE_GAUGE)
        return;
    int folded;
    pthread_mutex_lock(&f->lock);
    struct series *s = series_get(f, values, &folded);
    if (s)
        s->value = v;
    pthread_mutex_unlock(&f->lock);
    count_folded(f, folded);
}

void baton_metric_observe(baton_metric_t *f, const char *const *values, double v) {
    if (!f || f->type != TYPE_HISTOGRAM || isnan(v))
        return;
    /* The first bound >= v; past the last bound: the +Inf bucket. */
    size_t lo = 0, hi = f->nbounds;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (f->bounds[mid] >= v)
            hi = mid;
        else
            lo = mid + 1;
    }
    int folded;
    pthread_mutex_lock(&f->lock);
    struct series *s = series_get(f, values, &folded);
    if (s) {
        s->buckets[lo]++;
        s->sum += v;
        s->count++;
    }
    pthread_mutex_unlock(&f->lock);
    count_folded(f, folded);
}

/* Family lock held. */
static void reset_locked(struct baton_metric *f) {
    if (f->nlabels == 0) {
        struct series *s = f->list[0];
        s->value = s->sum = 0;
        s->count = 0;
        if (s->buckets)
            memset(s->buckets, 0, (f->nbounds + 1) * sizeof *s->buckets);
        return;
    }
    for (size_t i = 0; i < f->count; i++)
        series_free(f->list[i], f->nlabels);
    f->count = 0;
    seen_clear(f); /* the current values are admitted afresh */
    if (f->table)
        memset(f->table, 0, f->table_size * sizeof *f->table);
}

void baton_metric_reset(baton_metric_t *f) {
    if (!f)
        return;
    pthread_mutex_lock(&f->lock);
    reset_locked(f);
    pthread_mutex_unlock(&f->lock);
}

double baton_metric_value(baton_metric_t *f, const char *const *values) {
    if (!f)
        return 0;
    static const char *const none[1] = {""};
    /* Fixed at registration: read once, outside the lock. */
    const size_t nlabels = f->nlabels;
    if (nlabels == 0)
        values = none;
    uint64_t h = hash_values(values, nlabels);
    double v = 0;
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < f->count; i++) {
        struct series *s = f->list[i];
        size_t k = 0;
        while (s->hash == h && k < nlabels && strcmp(s->values[k], values[k] ? values[k] : "") == 0)
            k++;
        if (s->hash == h && k == nlabels) {
            v = f->type == TYPE_HISTOGRAM ? (double)s->count : s->value;
            break;
        }
    }
    pthread_mutex_unlock(&f->lock);
    return v;
}

/* ------------------------------------------------------------ rendering */

static void puts_(struct baton_buf *t, const char *s) {
    baton_buf_put(t, s, strlen(s));
}

/* HELP text escapes backslash and newline; label values also '"'. */
static void put_escaped(struct baton_buf *t, const char *s, int quote) {
    size_t start = 0, i = 0;
    for (; s[i]; i++) {
        const char *rep = s[i] == '\\'             ? "\\\\"
                          : s[i] == '\n'           ? "\\n"
                          : (quote && s[i] == '"') ? "\\\""
                                                   : NULL;
        if (rep) {
            baton_buf_put(t, s + start, i - start);
            puts_(t, rep);
            start = i + 1;
        }
    }
    baton_buf_put(t, s + start, i - start);
}

/* The shortest text that reads back as exactly `v`; Go-style specials. */
static void format_value(char *buf, size_t size, double v) {
    if (isnan(v)) {
        snprintf(buf, size, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, size, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int precision = 15; precision <= 17; precision++) {
        snprintf(buf, size, "%.*g", precision, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

static void put_value(struct baton_buf *t, double v) {
    char buf[40];
    format_value(buf, sizeof buf, v);
    puts_(t, buf);
}

static void put_u64(struct baton_buf *t, uint64_t v) {
    char buf[24];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    puts_(t, buf);
}

/* name{l1="v1",l2="v2"[,le="x"]} with `suffix` after the name. */
static void put_sample_name(struct baton_buf *t, const struct baton_metric *f,
                            const struct series *s, const char *suffix, const char *le) {
    puts_(t, f->name);
    puts_(t, suffix);
    if (f->nlabels == 0 && !le)
        return;
    baton_buf_put(t, "{", 1);
    for (size_t i = 0; i < f->nlabels; i++) {
        if (i)
            baton_buf_put(t, ",", 1);
        puts_(t, f->labels[i]);
        baton_buf_put(t, "=\"", 2);
        put_escaped(t, s->values[i], 1);
        baton_buf_put(t, "\"", 1);
    }
    if (le) {
        if (f->nlabels)
            baton_buf_put(t, ",", 1);
        baton_buf_put(t, "le=\"", 4);
        puts_(t, le);
        baton_buf_put(t, "\"", 1);
    }
    baton_buf_put(t, "}", 1);
}

static void render_family(struct baton_buf *t, struct baton_metric *f) {
    pthread_mutex_lock(&f->lock);
    int hidden = f->hidden_when_empty && f->count == 0;
    pthread_mutex_unlock(&f->lock);
    if (hidden)
        return;
    baton_buf_put(t, "# HELP ", 7);
    puts_(t, f->name);
    baton_buf_put(t, " ", 1);
    put_escaped(t, f->help, 0);
    baton_buf_put(t, "\n# TYPE ", 8);
    puts_(t, f->name);
    baton_buf_put(t, " ", 1);
    puts_(t, type_names[f->type]);
    baton_buf_put(t, "\n", 1);
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < f->count; i++) {
        const struct series *s = f->list[i];
        if (f->type != TYPE_HISTOGRAM) {
            put_sample_name(t, f, s, "", NULL);
            baton_buf_put(t, " ", 1);
            put_value(t, s->value);
            baton_buf_put(t, "\n", 1);
            continue;
        }
        uint64_t cumulative = 0;
        char le[40];
        for (size_t b = 0; b <= f->nbounds; b++) {
            cumulative += s->buckets[b];
            if (b < f->nbounds)
                format_value(le, sizeof le, f->bounds[b]);
            else
                snprintf(le, sizeof le, "+Inf");
            put_sample_name(t, f, s, "_bucket", le);
            baton_buf_put(t, " ", 1);
            put_u64(t, cumulative);
            baton_buf_put(t, "\n", 1);
        }
        put_sample_name(t, f, s, "_sum", NULL);
        baton_buf_put(t, " ", 1);
        put_value(t, s->sum);
        baton_buf_put(t, "\n", 1);
        put_sample_name(t, f, s, "_count", NULL);
        baton_buf_put(t, " ", 1);
        put_u64(t, s->count);
        baton_buf_put(t, "\n", 1);
    }
    pthread_mutex_unlock(&f->lock);
}

baton_err_t baton_metrics_render(baton_metrics_t *m, char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    if (!m)
        return BATON_ERR_INVALID;
    struct baton_buf t = {0};
    baton_buf_put(&t, "", 0);
    pthread_mutex_lock(&m->lock);
    /* Every collector first: their updates may fold, and the fold counter
     * comes before them in the list. */
    for (size_t i = 0; i < m->count; i++) {
        struct baton_metric *f = m->families[i];
        if (f->collect) {
            baton_metric_reset(f);
            f->collect(f, f->collect_ctx);
        }
    }
    for (size_t i = 0; i < m->count; i++)
        render_family(&t, m->families[i]);
    pthread_mutex_unlock(&m->lock);
    if (t.failed) {
        free(t.data);
        return BATON_ERR_NOMEM;
    }
    *out = t.data;
    *len = t.len;
    return BATON_OK;
}

/* ------------------------------------------------------------ lifecycle */

baton_metrics_t *baton_metrics_new(void) {
    baton_metrics_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    pthread_mutex_init(&m->lock, NULL);
    atomic_init(&m->label_values, BATON_METRICS_LABEL_VALUES);
    /* Exported from the first fold on: a registry that never folds
     * renders exactly its own families. */
    m->folded = baton_metrics_counter(
        m, "baton_metric_values_folded_total",
        "Updates counted under the label value \"other\" because the metric already had the "
        "limit of distinct values for that label.",
        "metric");
    if (m->folded) {
        m->folded->never_folds = 1;
        m->folded->hidden_when_empty = 1;
    }
    return m;
}

void baton_metrics_set_label_values(baton_metrics_t *m, size_t limit) {
    if (m)
        atomic_store(&m->label_values, limit ? limit : BATON_METRICS_LABEL_VALUES);
}

void baton_metrics_destroy(baton_metrics_t *m) {
    if (!m)
        return;
    for (size_t i = 0; i < m->count; i++)
        family_free(m->families[i]);
    free(m->families);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

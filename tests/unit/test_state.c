/*
 * test_state.c - the lists of task states and events (common/state.c), and
 * that the Lua scripts and the migrations' CHECK constraints use exactly
 * these names.
 *
 * The scripts and migrations are read from the source tree
 * (BATON_SOURCE_DIR): what a script writes as a state (HSET ... 'state',
 * '<name>') or passes to emit() as event, from and to, and the last CHECK
 * (<column> IN (...)) of each column across the .sql files of migrations/
 * in file order.
 */
#include <check.h>
#include <dirent.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"
#include "source_file.h"

#ifndef BATON_SOURCE_DIR
#error "BATON_SOURCE_DIR must name the source tree"
#endif

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorted file names in `dir` ending with `suffix`; caller frees each and
 * the array. */
static char **list_dir(const char *dir, const char *suffix, size_t *count) {
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "cannot open %s", dir);
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name), slen = strlen(suffix);
        if (len > slen && strcmp(e->d_name + len - slen, suffix) == 0) {
            names = realloc(names, (n + 1) * sizeof *names);
            names[n++] = strdup(e->d_name);
        }
    }
    closedir(d);
    if (n) /* qsort's array may not be NULL, even when empty */
        qsort(names, n, sizeof *names, cmp_str);
    *count = n;
    return names;
}

/* A set of names as one ", "-joined sorted string, for comparing sets. */
struct names {
    char *items[64];
    size_t n;
};

static void names_add(struct names *s, const char *name, size_t len) {
    for (size_t i = 0; i < s->n; i++)
        if (strlen(s->items[i]) == len && strncmp(s->items[i], name, len) == 0)
            return;
    ck_assert_uint_lt(s->n, 64);
    s->items[s->n] = strndup(name, len);
    s->n++;
}

static void names_clear(struct names *s) {
    for (size_t i = 0; i < s->n; i++)
        free(s->items[i]);
    s->n = 0;
}

static char *names_text(struct names *s, char *buf, size_t size) {
    qsort(s->items, s->n, sizeof s->items[0], cmp_str);
    buf[0] = '\0';
    for (size_t i = 0; i < s->n; i++)
        snprintf(buf + strlen(buf), size - strlen(buf), "%s%s", i ? ", " : "", s->items[i]);
    return buf;
}

/* The header's list as a sorted set text. */
static char *header_states(char *buf, size_t size) {
    struct names s = {.n = 0};
    for (int i = 0; i < BATON_STATE_COUNT; i++)
        names_add(&s, baton_state_name((baton_state_t)i),
                  strlen(baton_state_name((baton_state_t)i)));
    names_text(&s, buf, size);
    names_clear(&s);
    return buf;
}

static char *header_events(char *buf, size_t size) {
    struct names s = {.n = 0};
    for (int i = 0; i < BATON_EVENT_COUNT; i++)
        names_add(&s, baton_event_name((baton_event_t)i),
                  strlen(baton_event_name((baton_event_t)i)));
    names_text(&s, buf, size);
    names_clear(&s);
    return buf;
}

START_TEST(test_names_round_trip) {
    for (int i = 0; i < BATON_STATE_COUNT; i++) {
        baton_state_t s;
        ck_assert_int_eq(baton_state_parse(baton_state_name((baton_state_t)i), &s), 0);
        ck_assert_int_eq(s, i);
    }
    for (int i = 0; i < BATON_EVENT_COUNT; i++) {
        baton_event_t e;
        ck_assert_int_eq(baton_event_parse(baton_event_name((baton_event_t)i), &e), 0);
        ck_assert_int_eq(e, i);
    }
    ck_assert_ptr_null(baton_state_name(BATON_STATE_COUNT));
    ck_assert_ptr_null(baton_event_name(BATON_EVENT_COUNT));
}
END_TEST

/* The case of the report: failed is an event, never a state. */
START_TEST(test_failed_is_an_event) {
    baton_state_t s;
    baton_event_t e;
    ck_assert_int_eq(baton_state_parse("failed", &s), -1);
    ck_assert_int_eq(baton_event_parse("failed", &e), 0);
    ck_assert_int_eq(e, BATON_EVENT_FAILED);
    ck_assert_int_eq(baton_state_parse(NULL, &s), -1);
    ck_assert_int_eq(baton_state_parse("", &s), -1);
    ck_assert_int_eq(baton_state_parse("Queued", &s), -1);
}
END_TEST

START_TEST(test_list_text) {
    char buf[512];
    ck_assert_str_eq(baton_state_names(buf, sizeof buf), BATON_STATE_LIST_TEXT);
    ck_assert_str_eq(baton_event_names(buf, sizeof buf), BATON_EVENT_LIST_TEXT);
    char tiny[12];
    ck_assert_str_eq(baton_state_names(tiny, sizeof tiny), "scheduled, ");
}
END_TEST

/* Adds capture `g` of every match of `re` in `text` to `out`. Quoted names
 * '' (emit's "no from state") are skipped. */
static void collect(const char *text, const char *re, int g, struct names *out) {
    regex_t rx;
    ck_assert_int_eq(regcomp(&rx, re, REG_EXTENDED), 0);
    regmatch_t m[4];
    for (const char *p = text; regexec(&rx, p, 4, m, 0) == 0; p += m[0].rm_eo) {
        if (m[g].rm_so >= 0 && m[g].rm_eo > m[g].rm_so)
            names_add(out, p + m[g].rm_so, (size_t)(m[g].rm_eo - m[g].rm_so));
    }
    regfree(&rx);
}

/* What the scripts write: states (HSET 'state', and emit's from/to) and
 * events (emit's event) are all in the header's lists, and every name of
 * the header is written by some script. */
START_TEST(test_scripts_use_the_lists) {
    const char *dir = BATON_SOURCE_DIR "/common/scripts";
    size_t n;
    char **files = list_dir(dir, ".lua", &n);
    ck_assert_uint_gt(n, 5);
    struct names states = {.n = 0}, events = {.n = 0};
    for (size_t i = 0; i < n; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        char *text = read_file(path);
        /* HSET tkey ['field', 'value',]... 'state', '<name>' (not HMGET's
         * field lists, which name 'state' as a field to read). */
        collect(text, "'HSET', [a-z_]+,( '[a-z_]+', '[^']*',)* 'state', '([a-z_]+)'", 2, &states);
        /* emit(events, tkey, id, 'event', 'from' or a variable, 'to' ...) */
        const char *emit_re = "emit\\([^,]+,[^,]+,[^,]+, *'([a-z_]+)', *('([a-z_]*)'|[a-z_]+), "
                              "*('([a-z_]+)'|[a-z_]+)";
        regex_t rx;
        ck_assert_int_eq(regcomp(&rx, emit_re, REG_EXTENDED), 0);
        regmatch_t m[6];
        for (const char *p = text; regexec(&rx, p, 6, m, 0) == 0; p += m[0].rm_eo) {
            names_add(&events, p + m[1].rm_so, (size_t)(m[1].rm_eo - m[1].rm_so));
            for (int g = 3; g <= 5; g += 2) /* from and to, when quoted and not '' */
                if (m[g].rm_so >= 0 && m[g].rm_eo > m[g].rm_so)
                    names_add(&states, p + m[g].rm_so, (size_t)(m[g].rm_eo - m[g].rm_so));
        }
        regfree(&rx);
        free(text);
        free(files[i]);
    }
    free(files);
    char got[1024], want[1024];
    ck_assert_str_eq(names_text(&states, got, sizeof got), header_states(want, sizeof want));
    ck_assert_str_eq(names_text(&events, got, sizeof got), header_events(want, sizeof want));
    names_clear(&states);
    names_clear(&events);
}
END_TEST

/* The effective CHECK (<column> IN (...)) of `column`: the last one across
 * the migrations in file order, as a sorted set text. */
static char *migration_check(const char *column, char *buf, size_t size) {
    const char *dir = BATON_SOURCE_DIR "/migrations";
    size_t n;
    char **files = list_dir(dir, ".sql", &n);
    ck_assert_uint_gt(n, 1);
    char re[128];
    snprintf(re, sizeof re, "CHECK \\(%s IN \\(([^)]*)\\)\\)", column);
    regex_t rx;
    ck_assert_int_eq(regcomp(&rx, re, REG_EXTENDED), 0);
    struct names last = {.n = 0};
    for (size_t i = 0; i < n; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        char *text = read_file(path);
        regmatch_t m[2];
        for (const char *p = text; regexec(&rx, p, 2, m, 0) == 0; p += m[0].rm_eo) {
            names_clear(&last);
            char *list = strndup(p + m[1].rm_so, (size_t)(m[1].rm_eo - m[1].rm_so));
            collect(list, "'([a-z_]+)'", 1, &last);
            free(list);
        }
        free(text);
        free(files[i]);
    }
    free(files);
    regfree(&rx);
    ck_assert_msg(last.n > 0, "no CHECK (%s IN (...)) in migrations/", column);
    names_text(&last, buf, size);
    names_clear(&last);
    return buf;
}

START_TEST(test_migrations_use_the_lists) {
    char got[1024], want[1024];
    header_states(want, sizeof want);
    /* "(state IN" is the tasks table; to_state/from_state the events. */
    ck_assert_str_eq(migration_check("state", got, sizeof got), want);
    ck_assert_str_eq(migration_check("from_state", got, sizeof got), want);
    ck_assert_str_eq(migration_check("to_state", got, sizeof got), want);
    ck_assert_str_eq(migration_check("event", got, sizeof got), header_events(want, sizeof want));
}
END_TEST

static Suite *state_suite(void) {
    Suite *s = suite_create("state");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_names_round_trip);
    tcase_add_test(core, test_list_text);
    suite_add_tcase(s, core);
    TCase *errors = tcase_create("errors");
    tcase_add_test(errors, test_failed_is_an_event);
    suite_add_tcase(s, errors);
    TCase *drift = tcase_create("drift");
    tcase_add_test(drift, test_scripts_use_the_lists);
    tcase_add_test(drift, test_migrations_use_the_lists);
    suite_add_tcase(s, drift);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(state_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

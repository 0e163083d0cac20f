/*
 * log.h - baton's one logger: JSON lines on stderr.
 *
 * Each record is one JSON object on one line:
 *   {"time":"2026-11-25T15:04:05.123Z","level":"info","component":"scheduler",
 *    "msg":"enqueued batch","task_id":"..."}
 * so that log shippers ingest it as is. The level is checked by the macros
 * before their arguments are evaluated, so a disabled debug line costs one
 * comparison. Thread-safe: a record is written with one fwrite under the
 * stream's lock, so lines from different threads never interleave.
 */
#ifndef BATON_LOG_H
#define BATON_LOG_H

#include <stdio.h>

#include "error.h"

typedef enum baton_log_level {
    BATON_LOG_DEBUG = 0,
    BATON_LOG_INFO = 1,
    BATON_LOG_WARN = 2,
    BATON_LOG_ERROR = 3,
    BATON_LOG_OFF = 4,
} baton_log_level_t;

/* Extra string fields of a record ("task_id", "queue", ...). */
struct baton_log_field {
    const char *key;   /* borrowed */
    const char *value; /* borrowed; NULL fields are skipped */
};

/* Records below this level are dropped. Default BATON_LOG_INFO. */
extern baton_log_level_t baton_log_threshold;

/* Parses "debug|info|warn|error|off" into *out. BATON_ERR_CONFIG if unknown. */
baton_err_t baton_log_level_parse(const char *text, baton_log_level_t *out);

/* Lowercase name of a level ("info"). */
const char *baton_log_level_str(baton_log_level_t level);

/*
 * Redirects records to `stream` (borrowed; NULL restores stderr). For tests,
 * which read back what was logged.
 */
void baton_log_set_stream(FILE *stream);

/*
 * Writes one record. `fields` (may be NULL) is an array of `nfields` extra
 * fields. Prefer the macros, which skip disabled levels before formatting.
 */
void baton_log_write(baton_log_level_t level, const char *component,
                     const struct baton_log_field *fields, size_t nfields, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#define BATON_LOG(level, component, ...)                                                           \
    do {                                                                                           \
        if ((level) >= baton_log_threshold)                                                        \
            baton_log_write((level), (component), NULL, 0, __VA_ARGS__);                           \
    } while (0)

/* A record about one task: adds the "task_id" field. */
#define BATON_LOG_TASK(level, component, task_id, ...)                                             \
    do {                                                                                           \
        if ((level) >= baton_log_threshold) {                                                      \
            struct baton_log_field baton_log_f_[1] = {{"task_id", (task_id)}};                     \
            baton_log_write((level), (component), baton_log_f_, 1, __VA_ARGS__);                   \
        }                                                                                          \
    } while (0)

#define BATON_DEBUG(component, ...) BATON_LOG(BATON_LOG_DEBUG, component, __VA_ARGS__)
#define BATON_INFO(component, ...) BATON_LOG(BATON_LOG_INFO, component, __VA_ARGS__)
#define BATON_WARN(component, ...) BATON_LOG(BATON_LOG_WARN, component, __VA_ARGS__)
#define BATON_ERROR(component, ...) BATON_LOG(BATON_LOG_ERROR, component, __VA_ARGS__)

#endif

/*
 * log.c - JSON-lines logger.
 *
 * Records are built with jansson (so escaping is never hand-rolled), dumped
 * compact into one buffer and written with a single fwrite while holding the
 * stream lock: concurrent threads produce whole lines. Logging must never
 * take a process down, so allocation failures fall back to a fixed line.
 */
#include "log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "timeutil.h"

baton_log_level_t baton_log_threshold = BATON_LOG_INFO;

static FILE *log_stream; /* NULL means stderr */

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

baton_err_t baton_log_level_parse(const char *text, baton_log_level_t *out) {
    for (int i = BATON_LOG_DEBUG; i <= BATON_LOG_OFF; i++) {
        if (text && strcmp(text, level_names[i]) == 0) {
            *out = (baton_log_level_t)i;
            return BATON_OK;
        }
    }
    return BATON_ERR_CONFIG;
}

const char *baton_log_level_str(baton_log_level_t level) {
    if (level < BATON_LOG_DEBUG || level > BATON_LOG_OFF)
        return "unknown";
    return level_names[level];
}

void baton_log_set_stream(FILE *stream) {
    log_stream = stream;
}

void baton_log_write(baton_log_level_t level, const char *component,
                     const struct baton_log_field *fields, size_t nfields, const char *fmt, ...) {
    FILE *out = log_stream ? log_stream : stderr;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    char when[BATON_RFC3339_BUFSZ];
    baton_time_format_rfc3339(baton_time_wall_ms(), when);

    json_t *rec = json_object();
    if (rec) {
        json_object_set_new(rec, "time", json_string(when));
        json_object_set_new(rec, "level", json_string(baton_log_level_str(level)));
        json_object_set_new(rec, "component", json_string(component ? component : "baton"));
        /* A message with invalid UTF-8 (a peer's bytes) must still log. */
        json_t *m = json_string(msg);
        json_object_set_new(rec, "msg", m ? m : json_string("(message not valid UTF-8)"));
        for (size_t i = 0; i < nfields; i++) {
            if (fields[i].key && fields[i].value) {
                json_t *v = json_string(fields[i].value);
                if (v)
                    json_object_set_new(rec, fields[i].key, v);
            }
        }
    }
    char *line = rec ? json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(rec);

    flockfile(out);
    if (line) {
        fwrite(line, 1, strlen(line), out);
        putc_unlocked('\n', out);
    } else {
        fputs("{\"level\":\"error\",\"msg\":\"log record lost: out of memory\"}\n", out);
    }
    fflush(out);
    funlockfile(out);
    free(line);
}

/*
 * error.h - baton's one error type.
 *
 * Every fallible function in baton returns a baton_err_t: BATON_OK (0) or a
 * negative code naming the kind of failure. The human detail (which field,
 * which server said what) goes into a caller-supplied `errstr` buffer, the way
 * librdkafka's constructors do. Errors of third-party libraries (hiredis,
 * libpq, librdkafka, jansson) are translated into these codes at the module
 * boundary and never leak past it.
 */
#ifndef BATON_ERROR_H
#define BATON_ERROR_H

#include <stddef.h>

typedef enum baton_err {
    BATON_OK = 0,
    BATON_ERR_NOMEM = -1,        /* allocation failed */
    BATON_ERR_INVALID = -2,      /* bad argument or bad input (see errstr) */
    BATON_ERR_CONFIG = -3,       /* bad configuration value or flag */
    BATON_ERR_IO = -4,           /* file, pipe or socket error */
    BATON_ERR_REDIS = -5,        /* Redis unreachable or returned an error */
    BATON_ERR_KAFKA = -6,        /* Kafka client or broker error */
    BATON_ERR_PG = -7,           /* PostgreSQL unreachable or returned an error */
    BATON_ERR_TIMEOUT = -8,      /* an operation ran past its time limit */
    BATON_ERR_NOT_FOUND = -9,    /* no such task, queue, file */
    BATON_ERR_STALE_TOKEN = -10, /* fencing token is no longer current */
    BATON_ERR_STATE = -11,       /* object is not in the state the call needs */
    BATON_ERR_EXISTS = -12,      /* already there (idempotent no-op) */
    BATON_ERR_HELP = -13,        /* --help was asked for; not a failure */
    BATON_ERR_REFUSED = -14,     /* Redis answered with an error reply it gives again
                                    (OOM, wrong type): the connection is fine */
} baton_err_t;

/* Returns a static, short English description of `err`. Never NULL. */
const char *baton_err2str(baton_err_t err);

/*
 * Formats into `errstr` (of `errstr_size` bytes, may be 0/NULL) and returns
 * `err`, so a failing path reads `return baton_seterr(errstr, n, BATON_ERR_IO,
 * "open %s: %s", path, strerror(errno));`.
 */
baton_err_t baton_seterr(char *errstr, size_t errstr_size, baton_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#ifdef __clang_analyzer__
/* clang-tidy's analyser sees one file at a time and would take the value of
 * baton_seterr() for any code, BATON_OK too, then report the NULL reply that
 * only a success would leave. This tells it the value is `err`. */
#define baton_seterr(errstr, errstr_size, err, ...)                                                \
    (baton_seterr((errstr), (errstr_size), (err), __VA_ARGS__), (err))
#endif

#endif

/*
 * error.c - descriptions of baton_err_t and the errstr helper.
 */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>

const char *baton_err2str(baton_err_t err) {
    switch (err) {
    case BATON_OK: return "success";
    case BATON_ERR_NOMEM: return "out of memory";
    case BATON_ERR_INVALID: return "invalid input";
    case BATON_ERR_CONFIG: return "invalid configuration";
    case BATON_ERR_IO: return "I/O error";
    case BATON_ERR_REDIS: return "Redis error";
    case BATON_ERR_KAFKA: return "Kafka error";
    case BATON_ERR_PG: return "PostgreSQL error";
    case BATON_ERR_TIMEOUT: return "timed out";
    case BATON_ERR_NOT_FOUND: return "not found";
    case BATON_ERR_STALE_TOKEN: return "stale fencing token";
    case BATON_ERR_STATE: return "wrong state";
    case BATON_ERR_EXISTS: return "already exists";
    case BATON_ERR_HELP: return "help requested";
    case BATON_ERR_REFUSED: return "refused by Redis";
    }
    return "unknown error";
}

#undef baton_seterr /* error.h's form for the static analyser */
baton_err_t baton_seterr(char *errstr, size_t errstr_size, baton_err_t err, const char *fmt, ...) {
    if (errstr && errstr_size > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
    }
    return err;
}

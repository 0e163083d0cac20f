/*
 * redis_script.h - sending an embedded script, for common/transition.c
 * only: every other caller goes through a typed transition
 * (common/transition.h), so that no script is called by name elsewhere.
 * Implemented in common/redis.c, which embeds and loads the scripts.
 */
#ifndef BATON_REDIS_SCRIPT_H
#define BATON_REDIS_SCRIPT_H

#include <stddef.h>

#include "error.h"
#include "redis.h"

/*
 * Appends EVALSHA of the embedded script `name` ("enqueue.lua") with
 * `numkeys` keys first in argv (borrowed for the call) to r's pipeline.
 * Returns BATON_ERR_NOT_FOUND for an unknown script.
 */
baton_err_t baton_redis_append_script(baton_redis_t *r, const char *name, int numkeys, int argc,
                                      const char **argv, const size_t *argvlen, char *errstr,
                                      size_t errstr_size);

/*
 * Notes that Redis answered NOSCRIPT on r (restarted or flushed): the
 * scripts are loaded again before r's next script append. Called by the
 * reply reader of common/transition.c, the one place that reads script
 * answers.
 */
void baton_redis_scripts_lost(baton_redis_t *r);

#endif

/*
 * queue.h - Redis key layout and ready-queue ordering, shared by the
 * scheduler, the workers and batonctl (docs/redis.md is the full picture).
 *
 * Every key of one queue carries the queue name as a hash tag
 * ("baton:{emails}:ready"), so a queue's keys share one Redis Cluster slot
 * and one script can touch all of them. Task ids are therefore unique per
 * queue: the idempotency check is inside the queue's slot.
 *
 * Ready-queue order is strict priority, then FIFO: ZPOPMIN on the score
 *     score = (9 - priority) * SPAN + seq
 * where seq is the queue's insertion counter (INCR), positive for normal
 * enqueue and negative (-counter) for "return to the head" on graceful stop.
 * SPAN = 2^47 keeps each priority band apart for 2^46 enqueues either way
 * and every score below 2^53, so doubles represent them exactly. The Lua
 * scripts compute the same formula; tests check they agree.
 */
#ifndef BATON_QUEUE_H
#define BATON_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#define BATON_KEY_PREFIX "baton:"
#define BATON_KEY_QUEUES "baton:queues"         /* SET of known queue names */
#define BATON_KEY_REJECTIONS "baton:rejections" /* STREAM of rejected messages */
#define BATON_KEY_CONFIG "baton:config"         /* HASH of shared settings (retention.h) */

/* Width of one priority band of ready scores: 2^47. */
#define BATON_SCORE_SPAN 140737488355328.0
/* |seq| must stay below half a band. */
#define BATON_SCORE_SEQ_LIMIT 70368744177664LL

/* Room for any key: prefix, tag braces, 128-char queue, suffix, 128-char id. */
#define BATON_KEY_MAX 320

/*
 * Writes "baton:{<queue>}:<suffix>" into buf (BATON_KEY_MAX bytes) and
 * returns its length. Suffixes: "ready", "scheduled", "running", "dead",
 * "deadline", "seq", "events", "notify", "t:" (task hash prefix).
 */
size_t baton_queue_key(char *buf, const char *queue, const char *suffix);

/* Writes the task hash key "baton:{<queue>}:t:<id>"; returns its length. */
size_t baton_task_key(char *buf, const char *queue, const char *id);

/* Ready score of a task of `priority` (0-9) enqueued as number `seq`. */
double baton_ready_score(int priority, int64_t seq);

/* Priority (0-9) that a ready score belongs to. */
int baton_ready_score_priority(double score);

/* Inclusive score bounds of one priority band, for ZCOUNT per priority. */
void baton_ready_priority_range(int priority, double *min, double *max);

#endif

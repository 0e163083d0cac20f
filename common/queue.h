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

/* The global keys (docs/redis.md, "Global"). */
#define BATON_KEY_PREFIX "baton:"
#define BATON_KEY_QUEUES "baton:queues"                 /* SET of known queue names */
#define BATON_KEY_QUEUES_TOUCHED "baton:queues:touched" /* ZSET queue -> last ingest batch, ms */
#define BATON_KEY_REJECTIONS "baton:rejections"         /* STREAM of rejected messages */
#define BATON_KEY_WORKERS "baton:workers"               /* ZSET worker id -> last heartbeat */
#define BATON_KEY_WORKER_PATTERN "baton:worker:*"       /* every baton_worker_key(), for SCAN */
#define BATON_KEY_CONFIG "baton:config"                 /* HASH of shared settings (retention.h) */

/* Width of one priority band of ready scores: 2^47. */
#define BATON_SCORE_SPAN 140737488355328.0
/* |seq| must stay below half a band. */
#define BATON_SCORE_SEQ_LIMIT 70368744177664LL

/* Room for any key: prefix, tag braces, 128-char queue, suffix, 128-char id. */
#define BATON_KEY_MAX 320

/*
 * Every key of one queue, built once (baton_queue_keys_init) and passed to
 * the transitions (common/transition.h) and to whatever reads the sets.
 * Plain data: copy it, keep it for the queue's lifetime.
 */
struct baton_queue_keys {
    char name[BATON_KEY_MAX];        /* the queue name itself */
    char ready[BATON_KEY_MAX];       /* ZSET of queued ids by ready score */
    char scheduled[BATON_KEY_MAX];   /* ZSET of ids by due time */
    char running[BATON_KEY_MAX];     /* ZSET of claimed ids by lease deadline */
    char dead[BATON_KEY_MAX];        /* ZSET of dead ids by time of death */
    char deadline[BATON_KEY_MAX];    /* ZSET of not-yet-started ids by deadline */
    char seq[BATON_KEY_MAX];         /* counter for FIFO order */
    char events[BATON_KEY_MAX];      /* STREAM of transitions */
    char notify[BATON_KEY_MAX];      /* LIST of wake-up tokens for idle workers */
    char paused[BATON_KEY_MAX];      /* exists while the queue is paused */
    char task_prefix[BATON_KEY_MAX]; /* "baton:{q}:t:", the task hash key less the id */
    char key_prefix[BATON_KEY_MAX];  /* "baton:{q}:", what every key of the queue starts with */
};

/* Fills `keys` for `queue` (at most 128 characters, as task.h allows). */
void baton_queue_keys_init(struct baton_queue_keys *keys, const char *queue);

/* Writes the task hash key "baton:{<queue>}:t:<id>"; returns its length. */
size_t baton_task_key(char *buf, const char *queue, const char *id);

/* Writes a worker's registry hash key "baton:worker:<id>" into buf
 * (BATON_KEY_MAX bytes); returns its length. */
size_t baton_worker_key(char *buf, const char *worker_id);

/* Ready score of a task of `priority` (0-9) enqueued as number `seq`. */
double baton_ready_score(int priority, int64_t seq);

/* Priority (0-9) that a ready score belongs to. */
int baton_ready_score_priority(double score);

/* Inclusive score bounds of one priority band, for ZCOUNT per priority. */
void baton_ready_priority_range(int priority, double *min, double *max);

#endif

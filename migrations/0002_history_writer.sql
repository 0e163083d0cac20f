-- 0002_history_writer.sql: what the history writer (scheduler/history.c)
-- needs, and the views users query.
--
-- The writer copies each batch of Redis events into baton.task_events
-- (idempotent on (queue, task_id, seq)), inserts the task's static columns
-- from its "submitted" event, then recomputes the dynamic columns of every
-- task the batch touched from ALL of that task's events. So the row is a
-- function of the events alone: events may arrive in any order (a batch
-- re-delivered after a writer crash) and the row still ends up right.

-- The highest event number folded into the row, for operators and tests.
ALTER TABLE baton.tasks ADD COLUMN last_seq bigint NOT NULL DEFAULT 0;

-- The staging table of one batch (per session; emptied at commit).
-- Created by the writer as: CREATE TEMP TABLE ... (LIKE baton.event_staging)
CREATE TABLE baton.event_staging (
    queue          text,
    task_id        text,
    seq            bigint,
    at_ms          bigint,
    event          text,
    from_state     text,
    to_state       text,
    attempt        integer,
    fencing_token  bigint,
    worker_id      text,
    error          text,
    detail         jsonb,
    task           jsonb,     -- the task JSON, on "submitted" events only
    kafka_topic    text,
    kafka_partition integer,
    kafka_offset   bigint
);

-- One row per task with the durations people ask about.
CREATE VIEW baton.task_latest AS
SELECT t.queue, t.id, t.type, t.priority, t.state, t.attempts, t.max_attempts,
       t.submitted_at, t.first_started_at, t.finished_at, t.updated_at,
       t.first_started_at - t.submitted_at AS queue_wait,
       t.finished_at - t.first_started_at AS run_span,
       t.last_worker, t.last_error, t.result, t.meta
FROM baton.tasks t;

-- Every attempt: a claim and the event that ended it.
CREATE VIEW baton.attempts AS
SELECT * FROM (
    SELECT e.queue, e.task_id, e.attempt, e.worker_id, e.at AS started_at,
           lead(e.at) OVER w AS ended_at,
           lead(e.event) OVER w AS outcome,
           lead(e.error) OVER w AS error,
           e.event
    FROM baton.task_events e
    WINDOW w AS (PARTITION BY e.queue, e.task_id ORDER BY e.seq)
) a
WHERE a.event = 'claimed';

-- Failed attempts and deaths of the last hour, by type and error.
CREATE VIEW baton.failures_last_hour AS
SELECT t.type, e.event, e.error, count(*) AS failures, max(e.at) AS last_at
FROM baton.task_events e
JOIN baton.tasks t ON t.queue = e.queue AND t.id = e.task_id
WHERE e.event IN ('failed', 'dead') AND e.at > now() - interval '1 hour'
GROUP BY t.type, e.event, e.error
ORDER BY failures DESC;

-- Queue wait (submitted -> first start) and run time (per attempt)
-- percentiles by type.
CREATE VIEW baton.latency_by_type AS
WITH waits AS (
    SELECT type, extract(epoch FROM first_started_at - submitted_at) * 1000 AS wait_ms
    FROM baton.tasks WHERE first_started_at IS NOT NULL
), runs AS (
    SELECT t.type, extract(epoch FROM a.ended_at - a.started_at) * 1000 AS run_ms
    FROM baton.attempts a JOIN baton.tasks t ON t.queue = a.queue AND t.id = a.task_id
    WHERE a.ended_at IS NOT NULL
)
SELECT w.type,
       count(*) AS tasks,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY wait_ms) AS wait_p50_ms,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY wait_ms) AS wait_p90_ms,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY wait_ms) AS wait_p99_ms,
       (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY run_ms) FROM runs r WHERE r.type = w.type) AS run_p50_ms,
       (SELECT percentile_cont(0.9) WITHIN GROUP (ORDER BY run_ms) FROM runs r WHERE r.type = w.type) AS run_p90_ms,
       (SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY run_ms) FROM runs r WHERE r.type = w.type) AS run_p99_ms
FROM waits w
GROUP BY w.type;

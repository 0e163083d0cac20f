-- 0005_history_partitions.sql: history tables partitioned by time, written
-- once per row where possible, with retention by DROP.
--
-- Before this file the writer inserted each event with a per-event primary
-- key and four indexes, and recomputed every touched task row from all of
-- its events on every batch: the cost per task grew with the history.
-- From here on (docs/history-schema.md):
--
-- baton.task_events      append-only, partitioned by RANGE (at), written by
--                        COPY; one index, (task_id). No per-event key: a
--                        replay is recognised by its Redis stream entry.
-- baton.history_entries  the Redis stream entries written: one row per stream
--                        per batch, with the ids in an array, partitioned by
--                        RANGE (at) (the first id's time). The writer looks
--                        a batch's entries up first and copies the events of
--                        those never written only: replays are no-ops.
-- baton.tasks            one row per task, partitioned by RANGE
--                        (submitted_at); key (id, queue, submitted_at). The
--                        writer folds a batch's events per task in memory
--                        and upserts each touched row once per batch. The
--                        static columns are NULL until the task's
--                        "submitted" event is written (a row made by later
--                        events that arrived first).
-- baton.tasks_early      tasks with events written but no row, because the
--                        writer could not tell their submitted time (their
--                        "submitted" event was not written yet); the row is
--                        made, and recomputed from all events, when it is.
-- baton.history_settings the partition period (hour, day, week, month).
--
-- Partitions are named <table>_<YYYYMMDD>_<HH24MI> after their lower bound
-- in UTC and made by baton.create_history_partitions(t), which the writer
-- calls for the periods it writes in, ahead of time. `batonctl prune`
-- detaches (CONCURRENTLY: no lock that stops the writer) and drops the
-- partitions older than its cutoff. Rows of the 0001-0004 tables are
-- carried over into partitions of their day.

CREATE TABLE baton.history_settings (
    only_row         boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    partition_period text    NOT NULL DEFAULT 'day'
                             CHECK (partition_period IN ('hour', 'day', 'week', 'month'))
);
INSERT INTO baton.history_settings DEFAULT VALUES;

-- The partitions of the partitioned history tables with their bounds (read
-- from the catalog, so it is never out of date).
CREATE FUNCTION baton.history_partitions()
RETURNS TABLE (parent text, partition text, lower_bound timestamptz, upper_bound timestamptz,
               detach_pending boolean)
LANGUAGE sql STABLE AS $$
    SELECT p.relname::text, c.relname::text, b[1]::timestamptz, b[2]::timestamptz,
           i.inhdetachpending
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    JOIN pg_class p ON p.oid = i.inhparent
    CROSS JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                    'FROM \(''([^'']*)''\) TO \(''([^'']*)''\)') b
    WHERE p.relnamespace = 'baton'::regnamespace
      AND p.relname IN ('tasks', 'task_events', 'history_entries')
$$;

-- Makes sure each partitioned history table has a partition holding time
-- t, and returns the range all three hold around t. A new partition spans
-- the period of t (history_settings, in UTC), cut short where another
-- partition begins or ends (after a change of period). It is made as a
-- table of its own, then attached: ATTACH PARTITION locks the parent in
-- SHARE UPDATE EXCLUSIVE mode, which neither the writer's inserts nor
-- readers wait for (CREATE TABLE ... PARTITION OF would lock it
-- exclusively).
CREATE FUNCTION baton.create_history_partitions(t timestamptz)
RETURNS TABLE (lower_bound timestamptz, upper_bound timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    period text;
    tbl text;
    lo timestamptz;
    hi timestamptz;
    plo timestamptz;
    phi timestamptz;
    pending boolean;
    part text;
BEGIN
    IF t IS NULL OR NOT isfinite(t) THEN
        RAISE EXCEPTION 'no history partition for time %', t
            USING ERRCODE = '22008';
    END IF;
    -- Writers (and migrations) make partitions one at a time.
    PERFORM pg_advisory_xact_lock(7089075310396532856);
    SELECT s.partition_period INTO period FROM baton.history_settings s;
    lo := date_trunc(period, t, 'UTC');
    hi := ((lo AT TIME ZONE 'UTC') + ('1 ' || period)::interval) AT TIME ZONE 'UTC';
    lower_bound := '-infinity';
    upper_bound := 'infinity';
    FOREACH tbl IN ARRAY ARRAY['tasks', 'task_events', 'history_entries'] LOOP
        SELECT p.lower_bound, p.upper_bound, p.detach_pending, p.partition
        INTO plo, phi, pending, part
        FROM baton.history_partitions() p
        WHERE p.parent = tbl AND p.lower_bound <= t AND t < p.upper_bound;
        IF FOUND AND pending THEN
            RAISE EXCEPTION 'history partition baton.% is being detached', part
                USING ERRCODE = '55000',
                      HINT = 'a batonctl prune is running, or was interrupted: run batonctl prune again to finish it';
        END IF;
        IF NOT FOUND THEN
            SELECT greatest(lo, max(p.upper_bound)) INTO plo
            FROM baton.history_partitions() p WHERE p.parent = tbl AND p.upper_bound <= t;
            plo := coalesce(plo, lo);
            SELECT least(hi, min(p.lower_bound)) INTO phi
            FROM baton.history_partitions() p WHERE p.parent = tbl AND p.lower_bound > t;
            phi := coalesce(phi, hi);
            part := tbl || '_' || to_char(plo AT TIME ZONE 'UTC', 'YYYYMMDD_HH24MI');
            IF to_regclass(format('baton.%I', part)) IS NOT NULL THEN
                RAISE EXCEPTION 'table baton.% exists but is not a partition of baton.%', part, tbl
                    USING ERRCODE = '55000',
                          HINT = 'a batonctl prune was interrupted after detaching it: run batonctl prune again to drop it';
            END IF;
            -- fillfactor: room on the page for the update that follows
            -- the insert of a task row, so that it is a HOT update.
            EXECUTE format('CREATE TABLE baton.%I (LIKE baton.%I INCLUDING DEFAULTS'
                           ' INCLUDING CONSTRAINTS INCLUDING STORAGE)%s', part, tbl,
                           CASE WHEN tbl = 'tasks' THEN ' WITH (fillfactor = 90)' ELSE '' END);
            EXECUTE format('ALTER TABLE baton.%I ATTACH PARTITION baton.%I FOR VALUES FROM (%L) TO (%L)',
                           tbl, part, plo, phi);
        END IF;
        lower_bound := greatest(lower_bound, plo);
        upper_bound := least(upper_bound, phi);
    END LOOP;
    RETURN NEXT;
END
$$;

-- The views of 0002 read the old tables: made again below.
DROP VIEW baton.latency_by_type;
DROP VIEW baton.failures_last_hour;
DROP VIEW baton.attempts;
DROP VIEW baton.task_latest;

ALTER TABLE baton.tasks RENAME TO tasks_0004;
ALTER INDEX baton.tasks_pkey RENAME TO tasks_0004_pkey;
DROP INDEX baton.tasks_id_idx, baton.tasks_state_updated_idx, baton.tasks_type_submitted_idx,
    baton.tasks_queue_state_idx;
ALTER TABLE baton.task_events RENAME TO task_events_0004;
ALTER INDEX baton.task_events_pkey RENAME TO task_events_0004_pkey;
DROP INDEX baton.task_events_task_idx, baton.task_events_at_idx, baton.task_events_event_at_idx;
-- The writer no longer stages events in a table: it copies them in place.
DROP TABLE baton.event_staging;
-- Their CHECKs go too, so that the new tables' keep the names 0001 and
-- 0004 gave them (tasks_state_check, ...).
DO $$
DECLARE c record;
BEGIN
    FOR c IN SELECT conrelid::regclass AS tbl, conname FROM pg_constraint
             WHERE conrelid IN ('baton.tasks_0004'::regclass, 'baton.task_events_0004'::regclass)
               AND contype = 'c'
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', c.tbl, c.conname);
    END LOOP;
END
$$;

CREATE TABLE baton.tasks (
    queue            text        NOT NULL,
    id               text        NOT NULL,
    type             text,                    -- static columns: NULL until the
    priority         smallint    CHECK (priority BETWEEN 0 AND 9), -- "submitted"
    state            text        NOT NULL CHECK (state IN (       -- event is written
                         'scheduled', 'queued', 'running', 'succeeded', 'dead', 'expired', 'canceled')),
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts     integer     CHECK (max_attempts >= 1),
    timeout_ms       bigint      CHECK (timeout_ms > 0),
    run_at           timestamptz,
    deadline         timestamptz,
    submitted_at     timestamptz NOT NULL,
    queued_at        timestamptz,
    first_started_at timestamptz,
    finished_at      timestamptz,
    last_worker      text,
    last_error       text,
    result           jsonb,
    payload          jsonb,
    meta             jsonb       NOT NULL DEFAULT '{}'::jsonb,
    extra            jsonb,
    kafka_topic      text,
    kafka_partition  integer,
    kafka_offset     bigint,
    updated_at       timestamptz NOT NULL,
    last_seq         bigint      NOT NULL DEFAULT 0,
    -- id first: a task is found by its id alone (batonctl status) too.
    PRIMARY KEY (id, queue, submitted_at)
) PARTITION BY RANGE (submitted_at);

CREATE TABLE baton.task_events (
    queue          text        NOT NULL,
    task_id        text        NOT NULL,
    seq            bigint      NOT NULL CHECK (seq >= 1),
    at             timestamptz NOT NULL,
    event          text        NOT NULL CHECK (event IN (
        'submitted', 'due', 'claimed', 'succeeded', 'failed', 'dead', 'expired', 'canceled',
        'cancel_requested', 'reclaimed', 'returned', 'retried')),
    from_state     text        CHECK (from_state IN (
        'scheduled', 'queued', 'running', 'succeeded', 'dead', 'expired', 'canceled')),
    to_state       text        NOT NULL CHECK (to_state IN (
        'scheduled', 'queued', 'running', 'succeeded', 'dead', 'expired', 'canceled')),
    attempt        integer     NOT NULL DEFAULT 0,
    fencing_token  bigint,
    worker_id      text,
    error          text,
    detail         jsonb
) PARTITION BY RANGE (at);

CREATE INDEX task_events_task_idx ON baton.task_events (task_id);

CREATE TABLE baton.history_entries (
    stream     text        NOT NULL,  -- Redis stream key, e.g. baton:{emails}:events
    at         timestamptz NOT NULL,  -- time of the first entry id
    last_at    timestamptz NOT NULL,  -- time of the last
    entry_ids  text[]      NOT NULL   -- the stream entry ids written (ms-seq)
) PARTITION BY RANGE (at);

CREATE INDEX history_entries_stream_idx ON baton.history_entries (stream, last_at);

CREATE TABLE baton.tasks_early (
    queue     text        NOT NULL,
    id        text        NOT NULL,
    first_at  timestamptz NOT NULL,   -- time of the first such event
    PRIMARY KEY (queue, id)
);

-- An entry may carry several events: each one refused is set aside alone.
ALTER TABLE baton.history_set_aside ADD COLUMN event_no integer NOT NULL DEFAULT 0;
ALTER TABLE baton.history_set_aside DROP CONSTRAINT history_set_aside_pkey,
    ADD PRIMARY KEY (stream, entry_id, event_no);

-- The rows of before, in partitions of their day.
SELECT baton.create_history_partitions(min(t))
FROM (SELECT submitted_at AS t FROM baton.tasks_0004
      UNION ALL SELECT at FROM baton.task_events_0004) times
GROUP BY date_trunc('day', t, 'UTC');

INSERT INTO baton.tasks (queue, id, type, priority, state, attempts, max_attempts, timeout_ms,
    run_at, deadline, submitted_at, queued_at, first_started_at, finished_at, last_worker,
    last_error, result, payload, meta, extra, kafka_topic, kafka_partition, kafka_offset,
    updated_at, last_seq)
SELECT queue, id, type, priority, state, attempts, max_attempts, timeout_ms,
    run_at, deadline, submitted_at, queued_at, first_started_at, finished_at, last_worker,
    last_error, result, payload, meta, extra, kafka_topic, kafka_partition, kafka_offset,
    updated_at, last_seq
FROM baton.tasks_0004;

INSERT INTO baton.task_events (queue, task_id, seq, at, event, from_state, to_state, attempt,
    fencing_token, worker_id, error, detail)
SELECT queue, task_id, seq, at, event, from_state, to_state, attempt,
    fencing_token, worker_id, error, detail
FROM baton.task_events_0004;

DROP TABLE baton.tasks_0004;
DROP TABLE baton.task_events_0004;

-- The views of 0002, unchanged, over the new tables.
CREATE VIEW baton.task_latest AS
SELECT t.queue, t.id, t.type, t.priority, t.state, t.attempts, t.max_attempts,
       t.submitted_at, t.first_started_at, t.finished_at, t.updated_at,
       t.first_started_at - t.submitted_at AS queue_wait,
       t.finished_at - t.first_started_at AS run_span,
       t.last_worker, t.last_error, t.result, t.meta
FROM baton.tasks t;

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

CREATE VIEW baton.failures_last_hour AS
SELECT t.type, e.event, e.error, count(*) AS failures, max(e.at) AS last_at
FROM baton.task_events e
JOIN baton.tasks t ON t.queue = e.queue AND t.id = e.task_id
WHERE e.event IN ('failed', 'dead') AND e.at > now() - interval '1 hour'
GROUP BY t.type, e.event, e.error
ORDER BY failures DESC;

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

-- 0001_history.sql: the task history schema.
--
-- Applied by `batonctl migrate` (common/migrate.c) inside one transaction
-- together with its row in baton.schema_migrations; files here never contain
-- BEGIN/COMMIT and are never edited once applied: changes go in a new file.
--
-- baton.tasks        one row per task: its current state and the times of
--                    its milestones (upserted by the history writer). A task
--                    is identified by (queue, id): ids are idempotency keys
--                    within a queue, as every key of a queue lives in one
--                    Redis hash slot (docs/redis.md).
-- baton.task_events  append-only, one row per state transition; the key
--                    (task_id, seq) is the per-task event sequence number
--                    assigned in Redis by the transition script (with the
--                    queue, since ids are unique per queue), so writing
--                    the same event twice is a no-op (ON CONFLICT DO NOTHING)
--                    and events sort in the order they happened.
-- baton.rejections   messages that failed validation (they never become
--                    tasks), keyed by their Kafka coordinates.

CREATE SCHEMA IF NOT EXISTS baton;

CREATE TABLE baton.tasks (
    queue            text        NOT NULL,
    id               text        NOT NULL,
    type             text        NOT NULL,
    priority         smallint    NOT NULL CHECK (priority BETWEEN 0 AND 9),
    state            text        NOT NULL CHECK (state IN (
                         'scheduled', 'queued', 'running', 'succeeded',
                         'failed', 'dead', 'expired', 'canceled')),
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts     integer     NOT NULL CHECK (max_attempts >= 1),
    timeout_ms       bigint      NOT NULL CHECK (timeout_ms > 0),
    run_at           timestamptz,             -- earliest start, when given
    deadline         timestamptz,             -- expire if not started by then
    submitted_at     timestamptz NOT NULL,    -- accepted by ingest (Redis TIME)
    queued_at        timestamptz,             -- last entered a ready queue
    first_started_at timestamptz,             -- first claim by a worker
    finished_at      timestamptz,             -- reached a terminal state
    last_worker      text,
    last_error       text,
    result           jsonb,
    payload          jsonb,                   -- NULL when payload history is off
    meta             jsonb       NOT NULL DEFAULT '{}'::jsonb,
    extra            jsonb,                   -- unknown fields of the message
    kafka_topic      text,                    -- where ingest read it
    kafka_partition  integer,
    kafka_offset     bigint,
    updated_at       timestamptz NOT NULL,    -- time of the latest event
    PRIMARY KEY (queue, id)
);

CREATE INDEX tasks_id_idx ON baton.tasks (id);

CREATE INDEX tasks_state_updated_idx ON baton.tasks (state, updated_at);
CREATE INDEX tasks_type_submitted_idx ON baton.tasks (type, submitted_at);
CREATE INDEX tasks_queue_state_idx ON baton.tasks (queue, state, updated_at);

CREATE TABLE baton.task_events (
    queue          text        NOT NULL,
    task_id        text        NOT NULL,
    seq            bigint      NOT NULL CHECK (seq >= 1),
    at             timestamptz NOT NULL,      -- Redis TIME of the transition
    event          text        NOT NULL,      -- what happened: enqueued, claimed,
                                              -- succeeded, retried, reclaimed, ...
    from_state     text,                      -- NULL for the first event
    to_state       text        NOT NULL,
    attempt        integer     NOT NULL DEFAULT 0,
    fencing_token  bigint,
    worker_id      text,
    error          text,
    detail         jsonb,                     -- event-specific extra fields
    PRIMARY KEY (queue, task_id, seq)
);

CREATE INDEX task_events_task_idx ON baton.task_events (task_id, at);

CREATE INDEX task_events_at_idx ON baton.task_events (at);
CREATE INDEX task_events_event_at_idx ON baton.task_events (event, at);

CREATE TABLE baton.rejections (
    kafka_topic     text        NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    at              timestamptz NOT NULL,
    reason          text        NOT NULL,     -- stable reason, e.g. invalid_json
    field           text,                     -- offending field, when one
    detail          text        NOT NULL,     -- the human sentence
    message_key     bytea,
    message_value   bytea,                    -- the original value, as sent
    PRIMARY KEY (kafka_topic, kafka_partition, kafka_offset)
);

CREATE INDEX rejections_at_idx ON baton.rejections (at);
CREATE INDEX rejections_reason_at_idx ON baton.rejections (reason, at);

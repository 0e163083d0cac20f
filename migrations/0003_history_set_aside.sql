-- 0003_history_set_aside.sql: where the history writer puts a Redis stream
-- entry that PostgreSQL refuses.
--
-- An entry whose data PostgreSQL refuses (invalid UTF-8, a jsonb "\u0000",
-- a number out of range, a missing column: SQLSTATE classes 22, 23, 54)
-- must not hold back the entries around it. The writer finds it (it retries
-- the batch in halves, each in a savepoint), writes it here in a form that
-- cannot be refused, writes the rest of the batch, and acknowledges the
-- whole batch in Redis after COMMIT as usual. The raw fields are kept
-- byte for byte, so nothing is lost: an operator can read them with
-- convert_from(f, 'UTF8') or encode(f, 'escape') and replay what is worth
-- replaying.

CREATE TABLE baton.history_set_aside (
    stream        text        NOT NULL,  -- Redis stream key, e.g. baton:{emails}:events
    entry_id      text        NOT NULL,  -- Redis stream entry id (ms-seq)
    set_aside_at  timestamptz NOT NULL DEFAULT now(),
    sqlstate      text        NOT NULL,  -- PostgreSQL's error code, e.g. 22021
    error         text        NOT NULL,  -- PostgreSQL's message
    fields        bytea[]     NOT NULL,  -- the entry as stored: name, value, name, value, ...
    PRIMARY KEY (stream, entry_id)
);

CREATE INDEX history_set_aside_at_idx ON baton.history_set_aside (set_aside_at);

-- 0004_states.sql: the CHECK lists of states and events match common/state.h.
--
-- 0001 allowed a task state 'failed', which no script ever writes: failed
-- is an event (an attempt failed; the task goes back to scheduled or
-- becomes dead). `batonctl history --state failed` was accepted and never
-- matched. The lists below are those of common/state.h;
-- tests/unit/test_state.c compares them (the last CHECK of each column in
-- migrations/ wins) with the header, and the header with what the Lua
-- scripts write, so the three cannot drift apart.

ALTER TABLE baton.tasks DROP CONSTRAINT tasks_state_check;
ALTER TABLE baton.tasks ADD CONSTRAINT tasks_state_check CHECK (state IN (
    'scheduled', 'queued', 'running', 'succeeded', 'dead', 'expired', 'canceled'));

ALTER TABLE baton.task_events ADD CONSTRAINT task_events_event_check CHECK (event IN (
    'submitted', 'due', 'claimed', 'succeeded', 'failed', 'dead', 'expired', 'canceled',
    'cancel_requested', 'reclaimed', 'returned', 'retried'));
ALTER TABLE baton.task_events ADD CONSTRAINT task_events_from_state_check CHECK (from_state IN (
    'scheduled', 'queued', 'running', 'succeeded', 'dead', 'expired', 'canceled'));
ALTER TABLE baton.task_events ADD CONSTRAINT task_events_to_state_check CHECK (to_state IN (
    'scheduled', 'queued', 'running', 'succeeded', 'dead', 'expired', 'canceled'));

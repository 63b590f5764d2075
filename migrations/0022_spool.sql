-- The spool: batches acknowledged while PostgreSQL was unreachable wait on local disk and
-- are replayed later. Event rows are deduplicated by event id; a batch's span counts
-- (requests and failed requests per service-minute) carry no id of their own, so the
-- transaction that adds them records the batch id here first, and a replay of the same
-- batch adds them no more. Rows older than a week are pruned by retention.
CREATE TABLE applied_batches (
    batch_id    uuid PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- Each process with batches waiting in its spool publishes the minute of the oldest one:
-- detection in every process decides only the minutes before it (late data, not silence).
CREATE TABLE spool_watermarks (
    holder      uuid PRIMARY KEY,
    oldest      timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);

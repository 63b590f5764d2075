-- Spans received per minute (requests) and those that failed, per service and per project:
-- the error *rate* series (failed / requests) that OTLP traces make possible.
ALTER TABLE minute_counts
    ADD COLUMN requests bigint NOT NULL DEFAULT 0,
    ADD COLUMN failed   bigint NOT NULL DEFAULT 0;

-- Retention: how long a project's events are kept, and how many at most. Issue counts and
-- per-minute counts are never touched by retention: only stored events go.
ALTER TABLE projects
    ADD COLUMN retention_days integer NOT NULL DEFAULT 90 CHECK (retention_days BETWEEN 1 AND 3650),
    -- Beyond this many stored events, busy issues are thinned; NULL = no cap.
    ADD COLUMN max_events bigint CHECK (max_events > 0);

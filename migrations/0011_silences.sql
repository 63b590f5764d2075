-- Silences: "don't notify about this for a while" (a deploy, a known outage, a noisy
-- issue being fixed). A silence matches a project's incidents by kind, service and issue
-- (NULL matches anything) while its window is open. A matching incident still opens and is
-- counted — the detector's record stays true — but carries the silence and announces
-- nothing: no outbox rows for its opening or its resolution.
CREATE TABLE silences (
    id          bigserial PRIMARY KEY,
    project_id  bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    kind        text CHECK (kind IN ('new_issue', 'regression', 'threshold', 'anomaly', 'error_rate')),
    service     text,
    issue_id    bigint,
    comment     text NOT NULL DEFAULT '',
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    -- The API token that made it (NULL once that token row is gone).
    created_by  bigint REFERENCES api_tokens (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at)
);
CREATE INDEX silences_project_ends ON silences (project_id, ends_at);

-- The silence an incident opened under. No foreign key: deleting a silence later must not
-- rewrite history (the incident was still not announced).
ALTER TABLE incidents ADD COLUMN silence_id bigint;

-- Detection: rules per project, incidents with their history, the outbox the delivery
-- workers will drain, and the detector's own state so a restart resumes where it stopped.

-- What may open an incident in a project. A project starts with the four default rules
-- (new issue, regression, anomaly, error rate); thresholds are added by users.
CREATE TABLE detection_rules (
    id              bigserial PRIMARY KEY,
    project_id      bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    kind            text NOT NULL CHECK (kind IN ('new_issue', 'regression', 'threshold', 'anomaly', 'error_rate')),
    enabled         boolean NOT NULL DEFAULT true,
    -- threshold: fires when the series of this scope reaches `threshold` events in
    -- `window_minutes`, re-arms when it falls back below half of it.
    scope           text NOT NULL DEFAULT 'issue' CHECK (scope IN ('project', 'service', 'issue')),
    threshold       bigint,
    window_minutes  integer,
    -- anomaly / error_rate
    sensitivity     text NOT NULL DEFAULT 'medium' CHECK (sensitivity IN ('low', 'medium', 'high')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (kind <> 'threshold' OR (threshold > 0 AND window_minutes BETWEEN 1 AND 1440))
);
CREATE INDEX detection_rules_project ON detection_rules (project_id);
INSERT INTO detection_rules (project_id, kind)
    SELECT p.id, k.kind FROM projects p
    CROSS JOIN (VALUES ('new_issue'), ('regression'), ('anomaly'), ('error_rate')) AS k (kind);

-- Series a threshold rule has fired on and not yet re-armed (absent = armed).
CREATE TABLE rule_firings (
    rule_id   bigint NOT NULL REFERENCES detection_rules (id) ON DELETE CASCADE,
    scope     text NOT NULL,
    service   text NOT NULL DEFAULT '',
    issue_id  bigint NOT NULL DEFAULT 0,
    fired_at  timestamptz NOT NULL,
    PRIMARY KEY (rule_id, scope, service, issue_id)
);

-- "Ignored until N events in K minutes": the escalation check keeps running while muted.
ALTER TABLE issues
    ADD COLUMN ignore_until_count bigint,
    ADD COLUMN ignore_window_minutes integer;

CREATE TABLE incidents (
    id            bigserial PRIMARY KEY,
    project_id    bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind IN ('new_issue', 'regression', 'threshold', 'anomaly', 'error_rate')),
    -- The series it is about; scope 'project' has service '' and issue_id 0, as in minute_counts.
    scope         text NOT NULL CHECK (scope IN ('project', 'service', 'issue')),
    service       text NOT NULL DEFAULT '',
    issue_id      bigint NOT NULL DEFAULT 0,
    state         text NOT NULL CHECK (state IN ('open', 'recovering', 'resolved', 'escalated')),
    opened_at     timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    resolved_at   timestamptz,
    score         double precision NOT NULL DEFAULT 0,
    label         text CHECK (label IN ('true_positive', 'false_positive', 'missed')),
    -- Consecutive closed buckets the series has been back at its baseline.
    calm_buckets  integer NOT NULL DEFAULT 0,
    details       jsonb NOT NULL DEFAULT '{}'
);
-- One active incident per series: two detectors (or two replicas) cannot both open one.
CREATE UNIQUE INDEX incidents_one_active_per_series ON incidents (project_id, scope, service, issue_id)
    WHERE state IN ('open', 'recovering', 'escalated');
CREATE INDEX incidents_project_opened ON incidents (project_id, opened_at DESC, id DESC);

CREATE TABLE incident_transitions (
    id           bigserial PRIMARY KEY,
    incident_id  bigint NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    at           timestamptz NOT NULL,
    from_state   text,
    to_state     text NOT NULL,
    reason       text NOT NULL
);
CREATE INDEX incident_transitions_incident ON incident_transitions (incident_id, id);

-- Side effects of incident changes, written in the same transaction as the change; the
-- delivery workers claim them (FOR UPDATE SKIP LOCKED) and fan them out to endpoints.
CREATE TABLE outbox (
    id            bigserial PRIMARY KEY,
    project_id    bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    incident_id   bigint REFERENCES incidents (id) ON DELETE CASCADE,
    topic         text NOT NULL,
    payload       jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    available_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_available ON outbox (available_at, id);

-- The detector's state per series and its seasonal profiles, with the bucket they are
-- current through; decisions are checkpointed in the same transaction as the incidents.
CREATE TABLE detector_series (
    project_id  bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    scope       text NOT NULL,
    service     text NOT NULL DEFAULT '',
    issue_id    bigint NOT NULL DEFAULT 0,
    -- 'count' (events per bucket) or 'rate' (failed among requests)
    measure     text NOT NULL CHECK (measure IN ('count', 'rate')),
    state       jsonb NOT NULL,
    PRIMARY KEY (project_id, scope, service, issue_id, measure)
);
CREATE TABLE detector_profiles (
    project_id  bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    service     text NOT NULL DEFAULT '',
    profile     jsonb NOT NULL,
    PRIMARY KEY (project_id, service)
);
CREATE TABLE detector_checkpoints (
    project_id    bigint PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    -- Decisions (incidents) are made through this bucket.
    last_bucket   timestamptz NOT NULL,
    -- The stored series and profiles are current through this bucket (saved every few
    -- minutes, not every pass: a restart replays the counts in between without paging).
    state_bucket  timestamptz
);

-- Which process detects which projects: a project belongs to shard (id % shard count),
-- and a shard to the process holding its unexpired lease.
CREATE TABLE detector_leases (
    shard       integer PRIMARY KEY,
    holder      uuid NOT NULL,
    expires_at  timestamptz NOT NULL
);

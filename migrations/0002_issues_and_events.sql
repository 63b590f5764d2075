-- Releases in the order a project first saw them: "older than R" means first seen before R.
CREATE TABLE releases (
    project_id  bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    version     text NOT NULL,
    first_seen  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL,
    PRIMARY KEY (project_id, version)
);

-- One row per group of events with the same fingerprint.
CREATE TABLE issues (
    id                    bigserial PRIMARY KEY,
    project_id            bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    fingerprint           text NOT NULL,
    grouping_strategy     text NOT NULL CHECK (grouping_strategy IN ('custom', 'stacktrace', 'exception', 'message')),
    title                 text NOT NULL,
    culprit               text NOT NULL DEFAULT '',
    level                 text NOT NULL,
    status                text NOT NULL DEFAULT 'unresolved' CHECK (status IN ('unresolved', 'resolved', 'ignored')),
    times_seen            bigint NOT NULL DEFAULT 0,
    -- Events the application did not catch; an issue is "handled" while this stays 0.
    times_unhandled       bigint NOT NULL DEFAULT 0,
    first_seen            timestamptz NOT NULL,
    last_seen             timestamptz NOT NULL,
    first_release         text,
    last_release          text,
    resolved_at           timestamptz,
    -- Set when resolved "in release R": events from releases older than R do not reopen it.
    resolved_in_release   text,
    -- When the issue last came back after being resolved (a regression).
    regressed_at          timestamptz,
    UNIQUE (project_id, fingerprint)
);
CREATE INDEX issues_project_last_seen ON issues (project_id, last_seen DESC, id DESC);
CREATE INDEX issues_project_first_seen ON issues (project_id, first_seen DESC, id DESC);
CREATE INDEX issues_project_times_seen ON issues (project_id, times_seen DESC, id DESC);

-- Events, partitioned by the day they were received so retention drops whole partitions.
-- The fields queries filter on are columns; the full event (normalized parts + original
-- payload) is a zstd-compressed JSON document in `data`, stored out of line uncompressed by
-- PostgreSQL (it is compressed already).
CREATE TABLE events (
    event_id      uuid NOT NULL,
    received_day  date NOT NULL,
    project_id    bigint NOT NULL,
    issue_id      bigint NOT NULL,
    received_at   timestamptz NOT NULL,
    timestamp     timestamptz NOT NULL,
    level         text NOT NULL,
    source        text NOT NULL,
    platform      text,
    release       text,
    environment   text,
    service       text,
    title         text NOT NULL,
    trace_id      text,
    handled       boolean NOT NULL,
    -- A short plain-text rendering of the top frames, for dashboards that read SQL.
    top_frames    text NOT NULL DEFAULT '',
    data          bytea NOT NULL,
    -- An SDK that retries sends the same event id again: stored once per day.
    PRIMARY KEY (event_id, received_day)
) PARTITION BY RANGE (received_day);
ALTER TABLE events ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE INDEX events_issue_received ON events (issue_id, received_at DESC);
CREATE INDEX events_project_received ON events (project_id, received_at DESC);

-- Per-minute event counts per series: the input of detection and of the dashboards.
-- scope 'project' has service '' and issue_id 0; 'service' has issue_id 0; 'issue' has service ''.
CREATE TABLE minute_counts (
    project_id  bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    scope       text NOT NULL CHECK (scope IN ('project', 'service', 'issue')),
    service     text NOT NULL DEFAULT '',
    issue_id    bigint NOT NULL DEFAULT 0,
    minute      timestamptz NOT NULL,
    events      bigint NOT NULL DEFAULT 0,
    unhandled   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, scope, service, issue_id, minute)
);
CREATE INDEX minute_counts_minute ON minute_counts (minute);

-- Delivery: where incidents are announced (endpoints), every message to every endpoint
-- (deliveries, unique per endpoint and dedup key), and the recovery actions with the
-- verdict of their verification window.

-- Three kinds, one table. recovery: a service's restart/rollback hook, tried in `order`
-- (lowest first; the next one when the previous did not help). webhook: notifications of
-- the `events` topics (none listed: all). email: `addresses`.
CREATE TABLE endpoints (
    id                 bigserial PRIMARY KEY,
    project_id         bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    kind               text NOT NULL CHECK (kind IN ('recovery', 'webhook', 'email')),
    url                text,
    -- `whsec_…` secrets in force, newest first (two during a rotation).
    secrets            text[] NOT NULL DEFAULT '{}',
    action             text,
    incident_kinds     text[] NOT NULL DEFAULT '{}',
    services           text[] NOT NULL DEFAULT '{}',
    "order"            integer NOT NULL DEFAULT 1,
    cooldown_minutes   integer NOT NULL DEFAULT 0 CHECK (cooldown_minutes >= 0),
    events             text[] NOT NULL DEFAULT '{}',
    addresses          text[] NOT NULL DEFAULT '{}',
    enabled            boolean NOT NULL DEFAULT true,
    -- Why it was switched off (a 410 from the receiver), for people.
    disabled_reason    text,
    -- The circuit breaker, shared by every process (see src/deliver/breaker.rs).
    breaker_state      text NOT NULL DEFAULT 'closed' CHECK (breaker_state IN ('closed', 'open', 'half_open')),
    breaker_failures   integer NOT NULL DEFAULT 0,
    breaker_until      timestamptz,
    -- email: no mail before this (the repeat interval after the last one).
    quiet_until        timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (kind <> 'recovery' OR (url IS NOT NULL AND action IS NOT NULL)),
    CHECK (kind <> 'webhook' OR url IS NOT NULL),
    CHECK (kind <> 'email' OR cardinality(addresses) > 0)
);
CREATE INDEX endpoints_project ON endpoints (project_id, kind, "order");

CREATE TABLE deliveries (
    id                bigserial PRIMARY KEY,
    endpoint_id       bigint NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    project_id        bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    incident_id       bigint REFERENCES incidents (id) ON DELETE SET NULL,
    -- recovery | webhook | email (the endpoint's kind, kept for filters and metrics)
    kind              text NOT NULL,
    topic             text NOT NULL,
    action            text,
    -- One incident never makes two deliveries of one action, nor one outbox row two
    -- notifications to one endpoint.
    dedup_key         text NOT NULL,
    -- `webhook-id` (and `Idempotency-Key`): the same on every attempt.
    message_id        text NOT NULL,
    payload           jsonb NOT NULL,
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'delivered', 'dead', 'expired', 'skipped')),
    attempts          integer NOT NULL DEFAULT 0,
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    -- A recovery action is never sent after this.
    expires_at        timestamptz,
    -- Claimed by `claimed_by` until `lease_until`: another process leaves it alone.
    claimed_by        uuid,
    lease_until       timestamptz,
    last_status       integer,
    last_error        text,
    response_excerpt  text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    delivered_at      timestamptz,
    UNIQUE (endpoint_id, dedup_key)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX deliveries_list ON deliveries (id DESC);
CREATE INDEX deliveries_incident ON deliveries (incident_id);

-- A recovery action that reached its service (2xx), and what its verification window
-- showed: succeeded (back at baseline), false_recovery (cleared, then came back) or
-- not_recovered (never cleared). The detector decides the outcome.
CREATE TABLE recovery_actions (
    id            bigserial PRIMARY KEY,
    incident_id   bigint NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    project_id    bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    endpoint_id   bigint REFERENCES endpoints (id) ON DELETE SET NULL,
    delivery_id   bigint REFERENCES deliveries (id) ON DELETE SET NULL,
    action        text NOT NULL,
    "order"       integer NOT NULL,
    delivered_at  timestamptz NOT NULL,
    verify_until  timestamptz NOT NULL,
    -- When the series was first back at baseline after the action.
    cleared_at    timestamptz,
    outcome       text CHECK (outcome IN ('succeeded', 'false_recovery', 'not_recovered')),
    decided_at    timestamptz,
    UNIQUE (delivery_id)
);
CREATE INDEX recovery_actions_undecided ON recovery_actions (project_id) WHERE outcome IS NULL;
CREATE INDEX recovery_actions_decided ON recovery_actions (decided_at) WHERE outcome IS NOT NULL;
CREATE INDEX recovery_actions_incident ON recovery_actions (incident_id);

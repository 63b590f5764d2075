-- Projects own everything else. A project's events come in with one of its keys: the public
-- key is the user part of the DSN and also the OTLP key (`x-seismo-key`).
CREATE TABLE projects (
    id                      bigserial PRIMARY KEY,
    slug                    text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    name                    text NOT NULL,
    -- Events accepted per minute before ingestion answers 429; NULL means no quota.
    rate_limit_per_minute   integer CHECK (rate_limit_per_minute > 0),
    created_at              timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE project_keys (
    id          bigserial PRIMARY KEY,
    project_id  bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    public_key  text NOT NULL UNIQUE CHECK (public_key ~ '^[0-9a-f]{32}$'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX project_keys_project ON project_keys (project_id);

-- Management API tokens. Only the SHA-256 of a token is stored: a leaked table leaks no token.
CREATE TABLE api_tokens (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL,
    token_sha256  bytea NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);

-- A quota per ingestion key, beside the project's: events accepted per minute through this
-- key; NULL means the key has no quota of its own.
ALTER TABLE project_keys
    ADD COLUMN rate_limit_per_minute integer CHECK (rate_limit_per_minute > 0);

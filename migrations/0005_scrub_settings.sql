-- What a project scrubs from events before they are stored (see src/scrub). Scrubbing is on
-- unless a project turns it off explicitly; client IP addresses are dropped by default.
ALTER TABLE projects
    ADD COLUMN scrub_settings jsonb NOT NULL
    DEFAULT '{"enabled": true, "extra_keys": [], "safe_keys": [], "keep_ip_addresses": false}';

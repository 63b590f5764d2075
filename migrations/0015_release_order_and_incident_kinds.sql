-- Release order as Sentry keeps it: when an issue is resolved "in release R" and R is
-- `package@semver`, its package and a byte key whose order is the semantic-version order
-- (computed by `store::releases`) are kept, so an event from the same package is older
-- or not by version, not by which release the project happened to see first.
ALTER TABLE issues
    ADD COLUMN resolved_in_package text,
    ADD COLUMN resolved_in_key bytea;

-- An incident gathers every finding on its series while it is active: the kind that
-- opened it stays `kind`, and a later, different finding (a regression while the new
-- issue is still open, an error-rate jump on a service already in a count anomaly) is
-- added here instead of being dropped by the one-active-incident rule.
ALTER TABLE incidents ADD COLUMN kinds text[] NOT NULL DEFAULT '{}';
UPDATE incidents SET kinds = ARRAY[kind];
CREATE INDEX incidents_kinds ON incidents USING gin (kinds);

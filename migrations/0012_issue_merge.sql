-- Merging issue B into A moves B's events and counts to A and deletes B; B's fingerprint
-- (and any it had absorbed) becomes an alias of A, so B's future events join A instead of
-- re-creating B. Deleting A deletes its aliases: its fingerprints start fresh issues again.
CREATE TABLE issue_aliases (
    project_id   bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    fingerprint  text NOT NULL,
    issue_id     bigint NOT NULL REFERENCES issues (id) ON DELETE CASCADE,
    PRIMARY KEY (project_id, fingerprint)
);
CREATE INDEX issue_aliases_issue ON issue_aliases (issue_id);

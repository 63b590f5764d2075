-- The end of a writer batch in one round trip: add the batch's new events to their issues
-- (reopening regressed ones), add its per-minute counts, then stamp the regressions. These
-- are the statements that lock rows every batch shares (a hot issue, the project's current
-- minute), held until COMMIT; as separate statements each added a round trip to that time.
-- A function runs its statements in the order written, so concurrent writers still lock
-- issues (in id order) before minute counts (in key order): one data-modifying CTE would
-- not fix that order, and writers deadlocked with it.
--
-- Deltas come one per issue, sorted by issue id; tallies one per series-minute, sorted by
-- key (see src/store/batch.rs). Returns the ids of the issues that regressed.
CREATE FUNCTION seismo_close_batch(
    d_id int8[], d_title text[], d_culprit text[], d_level text[], d_times_seen int8[],
    d_times_unhandled int8[], d_first_seen timestamptz[], d_last_seen timestamptz[],
    d_first_release text[], d_last_release text[], d_package text[], d_release_key bytea[],
    c_project int8[], c_scope text[], c_service text[], c_issue int8[], c_minute timestamptz[],
    c_events int8[], c_unhandled int8[], c_requests int8[], c_failed int8[])
RETURNS int8[]
LANGUAGE plpgsql
AS $$
DECLARE
    regressed int8[];
BEGIN
    -- `locked` takes the row locks in id order first: left to itself, the UPDATE locks rows
    -- in whatever order its join plan visits them. The latest event names the issue (by
    -- time seen). A release at or after the one the issue was resolved in reopens it: by
    -- semantic version within one package, else by first seen (src/store/releases.rs).
    IF cardinality(d_id) > 0 THEN
        WITH locked AS (SELECT id FROM issues WHERE id = ANY(d_id) ORDER BY id FOR UPDATE),
        updated AS (
            UPDATE issues AS i SET
              title = CASE WHEN b.last_seen >= i.last_seen THEN b.title ELSE i.title END,
              culprit = CASE WHEN b.last_seen >= i.last_seen THEN b.culprit ELSE i.culprit END,
              level = CASE WHEN b.last_seen >= i.last_seen THEN b.level ELSE i.level END,
              times_seen = i.times_seen + b.times_seen,
              times_unhandled = i.times_unhandled + b.times_unhandled,
              first_seen = LEAST(i.first_seen, b.first_seen),
              last_seen = GREATEST(i.last_seen, b.last_seen),
              first_release = COALESCE(i.first_release, b.first_release),
              last_release = COALESCE(b.last_release, i.last_release),
              status = CASE WHEN i.status = 'resolved' AND (
                  i.resolved_in_release IS NULL OR b.last_release IS NULL OR
                  CASE WHEN b.package = i.resolved_in_package THEN b.release_key >= i.resolved_in_key
                  ELSE COALESCE(
                    (SELECT first_seen FROM releases WHERE project_id = i.project_id AND version = b.last_release)
                    >= (SELECT first_seen FROM releases WHERE project_id = i.project_id AND version = i.resolved_in_release),
                    false) END)
                THEN 'unresolved' ELSE i.status END
            FROM UNNEST(d_id, d_title, d_culprit, d_level, d_times_seen, d_times_unhandled,
                   d_first_seen, d_last_seen, d_first_release, d_last_release, d_package,
                   d_release_key)
              AS b(id, title, culprit, level, times_seen, times_unhandled, first_seen, last_seen,
                   first_release, last_release, package, release_key)
              JOIN locked ON locked.id = b.id
            WHERE i.id = b.id
            RETURNING CASE WHEN i.status = 'unresolved' AND i.resolved_at IS NOT NULL THEN i.id END
              AS regressed_id)
        SELECT array_agg(regressed_id) FILTER (WHERE regressed_id IS NOT NULL)
          INTO regressed FROM updated;
    END IF;

    IF cardinality(c_project) > 0 THEN
        INSERT INTO minute_counts AS c (project_id, scope, service, issue_id, minute, events,
            unhandled, requests, failed)
        SELECT * FROM UNNEST(c_project, c_scope, c_service, c_issue, c_minute, c_events,
            c_unhandled, c_requests, c_failed)
        ON CONFLICT (project_id, scope, service, issue_id, minute) DO UPDATE SET
          events = c.events + EXCLUDED.events, unhandled = c.unhandled + EXCLUDED.unhandled,
          requests = c.requests + EXCLUDED.requests, failed = c.failed + EXCLUDED.failed;
    END IF;

    -- A reopened issue still carries `resolved_at` from before; clear it and stamp the
    -- regression.
    IF regressed IS NOT NULL THEN
        UPDATE issues SET resolved_at = NULL, resolved_in_release = NULL,
          resolved_in_package = NULL, resolved_in_key = NULL, regressed_at = now()
        WHERE id = ANY(regressed);
    END IF;
    RETURN COALESCE(regressed, '{}');
END
$$;

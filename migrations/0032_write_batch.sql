-- A whole writer batch in one round trip, in the implicit transaction of its one statement
-- (it commits before the answer's ReadyForQuery, so the writer still acknowledges only
-- what is durable). As separate statements — BEGIN with the issue-set locks, the issues
-- and events, the counts, COMMIT — each waited a round trip, and under load the writer's
-- round trips cost more than the SQL in them (bench/README.md).
--
-- The statements are those of the step-by-step path (src/store/batch.rs), in its order:
--  1. the shared issue-set lock of each project, in the order given, and the ids of the
--     requests whose span counts the batch adds, recorded as applied;
--  2. the releases first seen, and the issue of every key (created if new, with no events
--     counted yet), as `open` finds them;
--  3. the event rows, each with the issue of its key;
--  4. the deltas to their issues, reopening regressed ones (`seismo_close_batch`);
--  5. the per-minute counts, sorted by key as the step-by-step path sorts them.
--
-- The caller computed the deltas and counts assuming every event and span count is new and
-- every key has an issue by step 2. When that is not so — an event or a request's span
-- counts stored before (a retry or a replay), or an issue another writer committed after
-- step 2's snapshot — the function raises SQLSTATE 'SW001' and the whole batch rolls back:
-- the writer then writes it step by step, which handles these cases.
--
-- Keys (project, fingerprint) come sorted and distinct; an event names its key by position
-- (from 1). Deltas name their issue by key position; so do the per-issue counts, while the
-- project and service counts come whole. The events' columns are those of `ROW_COLUMNS` in
-- src/store/events/mod.rs, in that order. Returns the issue id of each key, in key order.
CREATE FUNCTION seismo_write_batch(
    lock_space int4, lock_keys int4[], applied uuid[],
    k_project int8[], k_fingerprint text[], k_strategy text[], k_title text[], k_culprit text[],
    k_level text[], k_seen_at timestamptz[],
    r_project int8[], r_version text[], r_first_seen timestamptz[],
    e_key int4[], e_event_id uuid[], e_received_day date[], e_project int8[],
    e_received_at timestamptz[], e_timestamp timestamptz[], e_level text[], e_source text[],
    e_platform text[], e_release text[], e_environment text[], e_service text[], e_title text[],
    e_trace_id text[], e_handled bool[], e_top_frames text[], e_dictionary int4[], e_data bytea[],
    d_key int4[], d_title text[], d_culprit text[], d_level text[], d_times_seen int8[],
    d_times_unhandled int8[], d_first_seen timestamptz[], d_last_seen timestamptz[],
    d_first_release text[], d_last_release text[], d_package text[], d_release_key bytea[],
    s_project int8[], s_scope text[], s_service text[], s_minute timestamptz[], s_events int8[],
    s_unhandled int8[], s_requests int8[], s_failed int8[],
    i_project int8[], i_key int4[], i_minute timestamptz[], i_events int8[], i_unhandled int8[])
RETURNS int8[]
LANGUAGE plpgsql
AS $$
DECLARE
    lock_key int4;
    issue_ids int8[];
    -- The rows the last insert wrote.
    written int8;
BEGIN
    FOREACH lock_key IN ARRAY lock_keys LOOP
        PERFORM pg_advisory_xact_lock_shared(lock_space, lock_key);
    END LOOP;

    WITH recorded AS (
        INSERT INTO applied_batches (batch_id) SELECT * FROM UNNEST(applied)
        ON CONFLICT DO NOTHING RETURNING 1)
    SELECT count(*) INTO written FROM recorded;
    IF written < cardinality(applied) THEN
        RAISE EXCEPTION 'the span counts of a request of the batch were added before'
          USING ERRCODE = 'SW001';
    END IF;

    -- As `open` (src/store/batch.rs): the final SELECT sees this statement's snapshot, so
    -- an issue another writer committed meanwhile is in none of the three branches.
    WITH new_releases AS (
        INSERT INTO releases (project_id, version, first_seen)
        SELECT * FROM UNNEST(r_project, r_version, r_first_seen)
        ON CONFLICT (project_id, version) DO NOTHING),
    keys AS (
        SELECT * FROM UNNEST(k_project, k_fingerprint, k_strategy, k_title, k_culprit, k_level,
          k_seen_at) WITH ORDINALITY AS k(p, f, s, t, c, l, at, n)),
    aliased AS (
        SELECT a.issue_id, keys.p, keys.f FROM keys
        JOIN issue_aliases a ON a.project_id = keys.p AND a.fingerprint = keys.f),
    created AS (
        INSERT INTO issues (project_id, fingerprint, grouping_strategy, title, culprit, level,
          first_seen, last_seen)
        SELECT p, f, s, t, c, l, at, at FROM keys
        WHERE NOT EXISTS (SELECT 1 FROM aliased WHERE aliased.p = keys.p AND aliased.f = keys.f)
        ORDER BY n
        ON CONFLICT (project_id, fingerprint) DO NOTHING
        RETURNING id, project_id, fingerprint),
    resolved AS (
        SELECT id, project_id AS p, fingerprint AS f FROM created
        UNION ALL
        SELECT issue_id, p, f FROM aliased
        UNION ALL
        SELECT i.id, i.project_id, i.fingerprint FROM issues i
          JOIN keys ON i.project_id = keys.p AND i.fingerprint = keys.f)
    SELECT array_agg(resolved.id ORDER BY keys.n) INTO issue_ids
    FROM keys LEFT JOIN resolved ON resolved.p = keys.p AND resolved.f = keys.f;
    IF array_position(issue_ids, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'an issue of the batch was created by another writer meanwhile'
          USING ERRCODE = 'SW001';
    END IF;

    WITH inserted AS (
        INSERT INTO events (issue_id, event_id, received_day, project_id, received_at, timestamp,
          level, source, platform, release, environment, service, title, trace_id, handled,
          top_frames, dictionary, data)
        SELECT issue_ids[e.key], e.event_id, e.received_day, e.project_id, e.received_at,
          e.timestamp, e.level, e.source, e.platform, e.release, e.environment, e.service,
          e.title, e.trace_id, e.handled, e.top_frames, e.dictionary, e.data
        FROM UNNEST(e_key, e_event_id, e_received_day, e_project, e_received_at, e_timestamp,
          e_level, e_source, e_platform, e_release, e_environment, e_service, e_title,
          e_trace_id, e_handled, e_top_frames, e_dictionary, e_data)
          AS e(key, event_id, received_day, project_id, received_at, timestamp, level, source,
            platform, release, environment, service, title, trace_id, handled, top_frames,
            dictionary, data)
        ON CONFLICT DO NOTHING RETURNING 1)
    SELECT count(*) INTO written FROM inserted;
    IF written < cardinality(e_key) THEN
        RAISE EXCEPTION 'an event of the batch was stored before'
          USING ERRCODE = 'SW001';
    END IF;

    -- No counts here: they follow, sorted with the per-issue ones.
    PERFORM seismo_close_batch(
        ARRAY(SELECT issue_ids[k] FROM UNNEST(d_key) WITH ORDINALITY AS d(k, n) ORDER BY n),
        d_title, d_culprit, d_level, d_times_seen, d_times_unhandled, d_first_seen,
        d_last_seen, d_first_release, d_last_release, d_package, d_release_key,
        '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}');

    -- The order of `SeriesMinute` in src/model/series.rs: project, then scope (project,
    -- service by name in byte order, issue by id), then minute. Every writer locks count
    -- rows in that one order.
    INSERT INTO minute_counts AS c (project_id, scope, service, issue_id, minute, events,
        unhandled, requests, failed)
    SELECT project_id, scope, service, issue_id, minute, events, unhandled, requests, failed
    FROM (
        SELECT s.project_id, s.scope, s.service, 0::int8 AS issue_id, s.minute, s.events,
          s.unhandled, s.requests, s.failed
        FROM UNNEST(s_project, s_scope, s_service, s_minute, s_events, s_unhandled, s_requests,
          s_failed) AS s(project_id, scope, service, minute, events, unhandled, requests, failed)
        UNION ALL
        SELECT i.project_id, 'issue', '', issue_ids[i.key], i.minute, i.events, i.unhandled, 0, 0
        FROM UNNEST(i_project, i_key, i_minute, i_events, i_unhandled)
          AS i(project_id, key, minute, events, unhandled)
    ) counts
    ORDER BY project_id, CASE scope WHEN 'project' THEN 0 WHEN 'service' THEN 1 ELSE 2 END,
      service COLLATE "C", issue_id, minute
    ON CONFLICT (project_id, scope, service, issue_id, minute) DO UPDATE SET
      events = c.events + EXCLUDED.events, unhandled = c.unhandled + EXCLUDED.unhandled,
      requests = c.requests + EXCLUDED.requests, failed = c.failed + EXCLUDED.failed;

    RETURN COALESCE(issue_ids, '{}');
END
$$;

-- Every writer batch adds its events to their issues: nearly one issue row update per stored
-- event under load. With `last_seen` and `times_seen` indexed, none of those updates could
-- be HOT (heap-only: the new row version on the same page, no index entry): each wrote a
-- row version and an entry in all five indexes, and `issues` grew by a dead row per event
-- until a vacuum came (bench/README.md, "Issue updates in place": 19 MB after 136k events
-- on 50 issues, against 240 kB without the two indexes; PostgreSQL's CPU per event fell by
-- about a quarter).
--
-- Without them, listing a project's issues by last seen or count reads all of its issues
-- and keeps the top of the page: 21-25 ms for a project of 100,000 issues, against under
-- 1 ms with the index. That is paid per page view; the index was paid per event. Listing by
-- first seen keeps its index (first_seen moves only for an earlier event, rarely).
DROP INDEX issues_project_last_seen;
DROP INDEX issues_project_times_seen;

-- Room on each page for a few more versions of its rows, so updates stay HOT for a while
-- when an open transaction keeps the older versions from being pruned. (Not measured apart
-- from the drops: without such a transaction, fillfactor 100 kept 99.9 % of them HOT.)
ALTER TABLE issues SET (fillfactor = 70);

-- A release row is written once, when first seen: updating a "last seen" time on every batch
-- made every writer transaction lock the same row. When a release was last seen is a
-- question for the events table.
ALTER TABLE releases DROP COLUMN last_seen;

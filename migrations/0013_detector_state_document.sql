-- A project's series states are now one compressed document on its checkpoint row,
-- written in one statement: replacing 100,000 jsonb rows took 5-6 s of every tenth pass.
-- States saved as rows are not carried over: without a saved state the detector warms up
-- again on the stored counts of the last hours, silently (seasonal profiles are kept).
ALTER TABLE detector_checkpoints ADD COLUMN series bytea;
UPDATE detector_checkpoints SET state_bucket = NULL;
DROP TABLE detector_series;

-- Per-project zstd dictionaries for the stored event documents (src/store/dictionaries/).
-- Trained from the project's own stored events; a version is written once and never
-- changed. Each event row names the version its `data` was compressed with (NULL: none),
-- so reads decompress with the right one whatever was trained since.
CREATE TABLE event_dictionaries (
    project_id  bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    version     integer NOT NULL CHECK (version > 0),
    dictionary  bytea NOT NULL,
    -- Compressed over raw bytes of the held-out documents when trained: what its rows
    -- should get, and the yardstick for retraining when they drift.
    ratio       double precision NOT NULL,
    -- How many documents it was trained on.
    samples     integer NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, version)
);

ALTER TABLE events ADD COLUMN dictionary integer;

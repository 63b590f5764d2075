-- The processes running detection, each renewing its heartbeat every pass. A process holds
-- its fair share of the shards (the shard count divided by the live processes, rounded up),
-- gives back the shards past it and takes free ones up to it: several processes on one
-- database split the projects instead of the first one detecting them all.
CREATE TABLE detector_holders (
    holder      uuid PRIMARY KEY,
    expires_at  timestamptz NOT NULL
);

-- Noise learning: what the old code differs in with itself. Per endpoint,
-- the samples compared with the candidate and, of those, the ones a second
-- instance of the primary (`secondary`) answered too; per instance, summed
-- when read. Kept until reset per endpoint (not pruned by the retention).
CREATE TABLE noise_endpoints (
    endpoint TEXT    NOT NULL,
    instance TEXT    NOT NULL,
    compared BIGINT  NOT NULL,
    paired   BIGINT  NOT NULL,
    PRIMARY KEY (endpoint, instance)
);
-- Per endpoint and generalised path (a JSON Pointer with array indexes as
-- `*`, or `header:<name>`): on how many paired samples the two primaries
-- differed there (noise) and the primary and the candidate did
-- (raw_paired), on how many compared samples the primary and the
-- candidate did (raw), and of those how often both values looked volatile,
-- by kind.
CREATE TABLE noise_paths (
    endpoint        TEXT    NOT NULL,
    path            TEXT    NOT NULL,
    instance        TEXT    NOT NULL,
    noise           BIGINT  NOT NULL,
    raw_paired      BIGINT  NOT NULL,
    raw             BIGINT  NOT NULL,
    looks_uuid      BIGINT  NOT NULL,
    looks_timestamp BIGINT  NOT NULL,
    looks_token     BIGINT  NOT NULL,
    looks_counter   BIGINT  NOT NULL,
    PRIMARY KEY (endpoint, path, instance)
);

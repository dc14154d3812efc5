-- Outcome counts per endpoint per minute, per instance (summed across instances when read).
CREATE TABLE counters (
    minute   INTEGER NOT NULL,  -- Unix time in minutes
    endpoint TEXT    NOT NULL,
    outcome  TEXT    NOT NULL,  -- matched, mismatched, candidate_error/timeout, skipped/..., dropped/...
    instance TEXT    NOT NULL,
    count    INTEGER NOT NULL,
    PRIMARY KEY (minute, endpoint, outcome, instance)
);

-- Latency histograms with fixed log-spaced buckets, mergeable across instances and minutes.
CREATE TABLE latencies (
    minute   INTEGER NOT NULL,
    endpoint TEXT    NOT NULL,
    side     TEXT    NOT NULL,  -- primary or candidate
    bucket   INTEGER NOT NULL,
    instance TEXT    NOT NULL,
    count    INTEGER NOT NULL,
    PRIMARY KEY (minute, endpoint, side, bucket, instance)
);

-- Mismatch groups: one per fingerprint.
CREATE TABLE mismatch_groups (
    fingerprint TEXT    PRIMARY KEY,
    endpoint    TEXT    NOT NULL,
    first_seen  INTEGER NOT NULL,  -- Unix milliseconds
    last_seen   INTEGER NOT NULL,
    count       INTEGER NOT NULL,
    paths       TEXT    NOT NULL,  -- JSON array of JSON Pointers
    status      TEXT    NOT NULL DEFAULT 'open',
    note        TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX mismatch_groups_endpoint ON mismatch_groups (endpoint, last_seen);

-- How many exemplars each group stored in each hour, to cap them.
CREATE TABLE exemplar_quota (
    fingerprint TEXT    NOT NULL,
    hour        INTEGER NOT NULL,
    count       INTEGER NOT NULL,
    PRIMARY KEY (fingerprint, hour)
);

-- Mismatch exemplars, redacted before they are written.
CREATE TABLE mismatches (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    at                  INTEGER NOT NULL,  -- Unix milliseconds
    instance            TEXT    NOT NULL,
    endpoint            TEXT    NOT NULL,
    fingerprint         TEXT    NOT NULL,
    method              TEXT    NOT NULL,
    path                TEXT    NOT NULL,
    query               TEXT    NOT NULL,
    request_headers     TEXT    NOT NULL,  -- JSON array of [name, value]
    request_body        BLOB    NOT NULL,
    request_truncated   INTEGER NOT NULL,
    primary_status      INTEGER NOT NULL,
    primary_headers     TEXT    NOT NULL,
    primary_body        BLOB    NOT NULL,
    primary_truncated   INTEGER NOT NULL,
    candidate_status    INTEGER NOT NULL,
    candidate_headers   TEXT    NOT NULL,
    candidate_body      BLOB    NOT NULL,
    candidate_truncated INTEGER NOT NULL,
    verdict             TEXT    NOT NULL   -- the verdict as JSON: patch, text diff, paths, reasons
);
CREATE INDEX mismatches_at ON mismatches (at, id);
CREATE INDEX mismatches_endpoint ON mismatches (endpoint, at);
CREATE INDEX mismatches_fingerprint ON mismatches (fingerprint, at);

-- Records the writer could not keep (database down too long), counted per minute.
CREATE TABLE lost_records (
    minute   INTEGER NOT NULL,
    instance TEXT    NOT NULL,
    count    INTEGER NOT NULL,
    PRIMARY KEY (minute, instance)
);

-- Replay runs share the store with live traffic but are counted apart:
-- live rows have run = '', a replay's rows carry its run id. SQLite cannot
-- change a primary key in place, so the counting tables are rebuilt.
CREATE TABLE counters_new (
    run      TEXT    NOT NULL DEFAULT '',
    minute   INTEGER NOT NULL,
    endpoint TEXT    NOT NULL,
    outcome  TEXT    NOT NULL,
    instance TEXT    NOT NULL,
    count    INTEGER NOT NULL,
    PRIMARY KEY (run, minute, endpoint, outcome, instance)
);
INSERT INTO counters_new (minute, endpoint, outcome, instance, count)
    SELECT minute, endpoint, outcome, instance, count FROM counters;
DROP TABLE counters;
ALTER TABLE counters_new RENAME TO counters;

CREATE TABLE latencies_new (
    run      TEXT    NOT NULL DEFAULT '',
    minute   INTEGER NOT NULL,
    endpoint TEXT    NOT NULL,
    side     TEXT    NOT NULL,
    bucket   INTEGER NOT NULL,
    instance TEXT    NOT NULL,
    count    INTEGER NOT NULL,
    PRIMARY KEY (run, minute, endpoint, side, bucket, instance)
);
INSERT INTO latencies_new (minute, endpoint, side, bucket, instance, count)
    SELECT minute, endpoint, side, bucket, instance, count FROM latencies;
DROP TABLE latencies;
ALTER TABLE latencies_new RENAME TO latencies;

ALTER TABLE mismatches ADD COLUMN run TEXT NOT NULL DEFAULT '';
CREATE INDEX mismatches_run ON mismatches (run, id);

-- A replay's exemplars have their own hourly quota, so a run neither uses up
-- live traffic's nor finds it used up.
CREATE TABLE exemplar_quota_new (
    run         TEXT    NOT NULL DEFAULT '',
    fingerprint TEXT    NOT NULL,
    hour        INTEGER NOT NULL,
    count       INTEGER NOT NULL,
    PRIMARY KEY (run, fingerprint, hour)
);
INSERT INTO exemplar_quota_new (fingerprint, hour, count)
    SELECT fingerprint, hour, count FROM exemplar_quota;
DROP TABLE exemplar_quota;
ALTER TABLE exemplar_quota_new RENAME TO exemplar_quota;

CREATE TABLE lost_records_new (
    run      TEXT    NOT NULL DEFAULT '',
    minute   INTEGER NOT NULL,
    instance TEXT    NOT NULL,
    count    INTEGER NOT NULL,
    PRIMARY KEY (run, minute, instance)
);
INSERT INTO lost_records_new (minute, instance, count)
    SELECT minute, instance, count FROM lost_records;
DROP TABLE lost_records;
ALTER TABLE lost_records_new RENAME TO lost_records;

-- What a group's mismatches differ in besides body paths, for listings:
-- header names (a JSON array) and the status pair ("200>500", or '').
ALTER TABLE mismatch_groups ADD COLUMN headers TEXT NOT NULL DEFAULT '[]';
ALTER TABLE mismatch_groups ADD COLUMN statuses TEXT NOT NULL DEFAULT '';

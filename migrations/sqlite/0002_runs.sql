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

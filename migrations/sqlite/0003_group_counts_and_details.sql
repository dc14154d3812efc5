-- Mismatches per group per minute, in their own table: they were counted in
-- `counters` as outcome 'group/<fingerprint>', a key every reader had to
-- parse apart from the outcomes. Rows already counted there move here.
CREATE TABLE group_counts (
    run         TEXT    NOT NULL DEFAULT '',
    minute      INTEGER NOT NULL,  -- Unix time in minutes
    endpoint    TEXT    NOT NULL,
    fingerprint TEXT    NOT NULL,
    instance    TEXT    NOT NULL,
    count       INTEGER NOT NULL,
    PRIMARY KEY (run, minute, endpoint, fingerprint, instance)
);
CREATE INDEX group_counts_fingerprint ON group_counts (fingerprint, minute);

INSERT INTO group_counts (run, minute, endpoint, fingerprint, instance, count)
    SELECT run, minute, endpoint, substr(outcome, 7), instance, count
    FROM counters WHERE substr(outcome, 1, 6) = 'group/';
DELETE FROM counters WHERE substr(outcome, 1, 6) = 'group/';

-- What a mismatch carries besides its columns, as one JSON object: a field
-- that is shown but never filtered on is added there, with no migration.
ALTER TABLE mismatches ADD COLUMN details TEXT NOT NULL DEFAULT '{}';

-- Every triage of a mismatch group: its status and note, who set them and
-- when, kept as history beside the group's current status (which
-- `mismatch_groups` still holds). Pruned with the retention, by `at`.
CREATE TABLE triage_history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT    NOT NULL,
    at          INTEGER NOT NULL,  -- Unix milliseconds
    status      TEXT    NOT NULL,  -- open, expected, bug or fixed
    note        TEXT    NOT NULL,
    reviewer    TEXT    NOT NULL   -- who, as the reviewer gave it; '' when not given
);
CREATE INDEX triage_history_fingerprint ON triage_history (fingerprint, at);

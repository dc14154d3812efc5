-- Replay runs share the store with live traffic but are counted apart:
-- live rows have run = '', a replay's rows carry its run id.
ALTER TABLE counters ADD COLUMN run TEXT NOT NULL DEFAULT '';
ALTER TABLE counters DROP CONSTRAINT counters_pkey;
ALTER TABLE counters ADD PRIMARY KEY (run, minute, endpoint, outcome, instance);

ALTER TABLE latencies ADD COLUMN run TEXT NOT NULL DEFAULT '';
ALTER TABLE latencies DROP CONSTRAINT latencies_pkey;
ALTER TABLE latencies ADD PRIMARY KEY (run, minute, endpoint, side, bucket, instance);

ALTER TABLE mismatches ADD COLUMN run TEXT NOT NULL DEFAULT '';
CREATE INDEX mismatches_run ON mismatches (run, id);

-- A replay's exemplars have their own hourly quota, so a run neither uses up
-- live traffic's nor finds it used up.
ALTER TABLE exemplar_quota ADD COLUMN run TEXT NOT NULL DEFAULT '';
ALTER TABLE exemplar_quota DROP CONSTRAINT exemplar_quota_pkey;
ALTER TABLE exemplar_quota ADD PRIMARY KEY (run, fingerprint, hour);

ALTER TABLE lost_records ADD COLUMN run TEXT NOT NULL DEFAULT '';
ALTER TABLE lost_records DROP CONSTRAINT lost_records_pkey;
ALTER TABLE lost_records ADD PRIMARY KEY (run, minute, instance);

-- What a group's mismatches differ in besides body paths, for listings:
-- header names (a JSON array) and the status pair ("200>500", or '').
ALTER TABLE mismatch_groups ADD COLUMN headers TEXT NOT NULL DEFAULT '[]';
ALTER TABLE mismatch_groups ADD COLUMN statuses TEXT NOT NULL DEFAULT '';

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

-- Latency histograms at a resolution that shows a 5% drift: log-linear
-- buckets, 128 per doubling of nanoseconds (each at most 0.79% wide; see
-- src/store/latency.rs), one row per instance, minute, endpoint and side
-- holding its non-empty buckets as text (`bucket:count,…`): a busy endpoint
-- touches hundreds of such buckets a minute, too many for a row each.
-- The coarser `latencies` table (four buckets per doubling of
-- microseconds, about 19% wide) is kept as it is: its rows are read at
-- their buckets' midpoints, and an instance of an earlier release keeps
-- writing there during a rolling upgrade.
CREATE TABLE latency_histograms (
    run      TEXT    NOT NULL DEFAULT '',
    minute   INTEGER NOT NULL,  -- Unix time in minutes
    endpoint TEXT    NOT NULL,
    side     TEXT    NOT NULL,  -- primary or candidate
    instance TEXT    NOT NULL,
    buckets  TEXT    NOT NULL,
    PRIMARY KEY (run, minute, endpoint, side, instance)
);

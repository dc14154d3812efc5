-- Each mismatch group's severity class, as a rank, most severe first:
-- 1 status, 2 structure, 3 membership, 4 value, 5 headers; 0 unknown
-- (groups stored before this migration, or first stored by an instance of
-- an earlier release during a rolling upgrade, whose merges leave the column
-- as it is). A group keeps the most severe class any of its mismatches had:
-- a smaller non-zero rank wins, 0 never does.
ALTER TABLE mismatch_groups ADD COLUMN severity BIGINT NOT NULL DEFAULT 0;

-- The same per group and minute, merged the same way, so that the gate
-- counts classes over any window, a replay's too (whose mismatches have
-- counts but no group).
ALTER TABLE group_counts ADD COLUMN severity BIGINT NOT NULL DEFAULT 0;

-- The serving weights of a progressive cutover, shared by every instance on
-- the database: one row per route (its `match` text; `*` for requests no
-- route matches), written by rollout commands and plans, read by each
-- instance every second. `version` grows with every change, so that two
-- instances deciding the same step at once change it once.
CREATE TABLE rollout_weights (
    route    TEXT    NOT NULL PRIMARY KEY,
    weight   REAL    NOT NULL,  -- percent of clients the candidate serves, 0 to 100
    step     INTEGER NOT NULL,  -- index in the route's plan; -1 off the plan
    paused   INTEGER NOT NULL,  -- 1: the plan neither advances nor rolls back
    since_ms INTEGER NOT NULL,  -- when this weight was set
    version  INTEGER NOT NULL
);
-- Every change of a weight: when, which route, from, to, and why.
CREATE TABLE rollout_history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms       INTEGER NOT NULL,
    route       TEXT    NOT NULL,
    from_weight REAL    NOT NULL,
    to_weight   REAL    NOT NULL,
    reason      TEXT    NOT NULL,  -- command, plan, rollback, kill
    detail      TEXT    NOT NULL,
    instance    TEXT    NOT NULL
);
CREATE INDEX rollout_history_at ON rollout_history (at_ms);

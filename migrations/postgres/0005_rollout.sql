-- The serving weights of a progressive cutover, shared by every instance on
-- the database: one row per route (its `match` text; `*` for requests no
-- route matches), written by rollout commands and plans, read by each
-- instance every second. `version` grows with every change, so that two
-- instances deciding the same step at once change it once.
CREATE TABLE rollout_weights (
    route    TEXT             NOT NULL PRIMARY KEY,
    weight   DOUBLE PRECISION NOT NULL,  -- percent of clients the candidate serves, 0 to 100
    step     BIGINT           NOT NULL,  -- index in the route's plan; -1 off the plan
    paused   BIGINT           NOT NULL,  -- 1: the plan neither advances nor rolls back
    since_ms BIGINT           NOT NULL,  -- when this weight was set
    version  BIGINT           NOT NULL
);
-- Every change of a weight: when, which route, from, to, and why.
CREATE TABLE rollout_history (
    id          BIGSERIAL        PRIMARY KEY,
    at_ms       BIGINT           NOT NULL,
    route       TEXT             NOT NULL,
    from_weight DOUBLE PRECISION NOT NULL,
    to_weight   DOUBLE PRECISION NOT NULL,
    reason      TEXT             NOT NULL,  -- command, plan, rollback, kill
    detail      TEXT             NOT NULL,
    instance    TEXT             NOT NULL
);
CREATE INDEX rollout_history_at ON rollout_history (at_ms);

-- Cursors of the joblib sources (routes pulling applications or cases from
-- the one-stop portal): name is <dept>/<feed> unless the route names one.
-- A cursor advances only after its page's records are on the bus.
CREATE TABLE joblib_cursors (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

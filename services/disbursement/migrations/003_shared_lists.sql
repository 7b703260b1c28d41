-- The payment list of a queued batch, for the replica that runs it: a list
-- submitted on one replica (the console, the CLI) is run by whichever holds
-- the cycle lease. Chunks of the file, sealed under the hub's field keys
-- when a sealer is set, base64; removed when the batch closes.
CREATE TABLE disb_lists (
    batch_id BIGINT NOT NULL,
    chunk    INTEGER NOT NULL,
    sealed   INTEGER NOT NULL,
    body     TEXT NOT NULL,
    PRIMARY KEY (batch_id, chunk)
);

-- Social security (人社) through the city big-data centre's exchange-sharing
-- platform by front-end processor tables (前置机库表交换), for household
-- verification (docs/verification.md, "Social security through the
-- front-end tables"). Portable: PostgreSQL, KingbaseES (PostgreSQL mode),
-- openGauss. Run once on the bureau's front-end database; the hub's routes
-- are docs/examples/routes/verification-hrss-frontend-*.yaml.
CREATE SCHEMA IF NOT EXISTS qzj;

-- 核对申请: the hub writes one row per verification call, once (a resend
-- after a crash hits the unique request_key and writes nothing). The
-- platform takes the rows (marking platform_taken_at is its own business).
CREATE TABLE qzj.hrss_hdsq (
    id                BIGSERIAL PRIMARY KEY,
    request_key       VARCHAR(64)  NOT NULL UNIQUE, -- the call's key: <request id>:hrss
    request_id        VARCHAR(40)  NOT NULL,        -- the verification request
    auth_ref          VARCHAR(100),                 -- the household's authorisation reference (个人电子授权)
    persons           TEXT         NOT NULL,        -- JSON array: [{"zjhm": ID number, "xm": name}]
    created_at        TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP,
    platform_taken_at TIMESTAMP
);

-- 核对结果: the platform writes one row per answered call, the whole
-- answer in the row; load_seq increases in commit order (one load batch
-- per transaction). The hub takes rows in (load_seq, id) order after its
-- watermark and sets mzhub_taken_at in the same transaction.
CREATE TABLE qzj.hrss_hdjg (
    id             BIGSERIAL PRIMARY KEY,
    load_seq       BIGINT       NOT NULL,
    request_key    VARCHAR(64)  NOT NULL,           -- copied from qzj.hrss_hdsq.request_key
    ref            VARCHAR(64),                     -- the platform's reference of the answer
    as_of          DATE         NOT NULL,           -- date of the data
    persons        TEXT         NOT NULL,           -- JSON array, one object per person asked (see docs/verification.md)
    created_at     TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP,
    mzhub_taken_at TIMESTAMP
);
CREATE INDEX hrss_hdjg_seq ON qzj.hrss_hdjg (load_seq, id);

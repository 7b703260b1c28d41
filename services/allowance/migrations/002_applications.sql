-- Card applications (敬老卡, 社保卡 一卡通) from the card center, with their
-- channel, 一卡通 flag and production stage.
CREATE TABLE allow_applications (
    app_id      TEXT NOT NULL PRIMARY KEY,
    person      TEXT NOT NULL,
    id_masked   TEXT NOT NULL,
    card_type   TEXT NOT NULL,
    channel     TEXT NOT NULL,
    yikatong    INTEGER NOT NULL,
    applied_on  TEXT NOT NULL,
    district    TEXT NOT NULL,
    bank_code   TEXT NOT NULL,
    stage       TEXT NOT NULL,
    stage_at    TEXT NOT NULL,
    received_ms BIGINT NOT NULL
);
CREATE INDEX allow_applications_person ON allow_applications (person);

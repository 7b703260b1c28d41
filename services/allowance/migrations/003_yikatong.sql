-- 一卡通: the partner bank and the masked account of a card application
-- (the card center's bank-type code stays in bank_code).
ALTER TABLE allow_applications ADD COLUMN bank TEXT NOT NULL DEFAULT '';
ALTER TABLE allow_applications ADD COLUMN account_masked TEXT NOT NULL DEFAULT '';

-- Where a 一卡通 holder's allowance is paid: the bank and account of the
-- card of their latest 一卡通 application (the account sealed, SM4-GCM).
CREATE TABLE allow_yikatong (
    person         TEXT NOT NULL PRIMARY KEY,
    app_id         TEXT NOT NULL,
    applied_on     TEXT NOT NULL,
    bank           TEXT NOT NULL,
    account_sealed TEXT NOT NULL,
    account_masked TEXT NOT NULL,
    updated_ms     BIGINT NOT NULL
);

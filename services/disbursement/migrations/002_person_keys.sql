-- Person keys become HMAC-SM3 under the key provider's disbursement-person
-- key; before, they were an unkeyed hash of the ID number that anyone could
-- recompute. person_keys says what a batch's payment rows, or a carry row,
-- hold: 'legacy' (the unkeyed hash, re-keyed by the service from the
-- batch's list file) or 'hmac-sm3'. Rows present now are legacy; rows
-- written from now on are keyed.
ALTER TABLE disb_batches ADD COLUMN person_keys TEXT NOT NULL DEFAULT 'hmac-sm3';
UPDATE disb_batches SET person_keys = 'legacy';
ALTER TABLE disb_carry ADD COLUMN person_keys TEXT NOT NULL DEFAULT 'hmac-sm3';
UPDATE disb_carry SET person_keys = 'legacy';

-- Claw-backs deducted by the banks in the quarterly deduction: the list
-- line the month was paid by (sealed, with the account the money went
-- to), the deduction period it is listed in, the last result and when it
-- was settled. States: open → listed → deducted, or back to open with the
-- bank's reason (next quarter again); cancelled (person confirmed alive);
-- refund_due (cancelled after the bank had it, and deducted).
ALTER TABLE allow_clawbacks ADD COLUMN line_sealed TEXT NOT NULL DEFAULT '';
ALTER TABLE allow_clawbacks ADD COLUMN deduct_period TEXT NOT NULL DEFAULT '';
ALTER TABLE allow_clawbacks ADD COLUMN detail TEXT NOT NULL DEFAULT '';
ALTER TABLE allow_clawbacks ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE allow_clawbacks ADD COLUMN settled_ms BIGINT NOT NULL DEFAULT 0;

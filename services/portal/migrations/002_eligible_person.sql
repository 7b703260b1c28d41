-- 预审 looks a person up in every item's register (a deceased mark).
CREATE INDEX portal_eligible_person ON portal_eligible (person_key, status);
-- The push plan reads the unpushed persons of an item in (month, key)
-- order, a batch at a time, without sorting the whole register.
DROP INDEX portal_eligible_unpushed;
CREATE INDEX portal_eligible_unpushed ON portal_eligible (item_code, pushed_batch, month, person_key);
-- Refusals are looked up by source and reference.
CREATE INDEX portal_refused_ref ON portal_refused (source, ref);

-- 预审 looks a person up in every item's register (a deceased mark).
CREATE INDEX portal_eligible_person ON portal_eligible (person_key, status);
CREATE INDEX portal_refused_ref ON portal_refused (source, ref);

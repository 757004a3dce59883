-- Audit events about procurement items name the grant's donor then its
-- recipient as subject_orgs, like events about grants: the donor and the
-- implementer list them through the same indexes (internal/audit, List).
DROP INDEX audit_events_donor;
DROP INDEX audit_events_recipient;
CREATE INDEX audit_events_donor ON audit_events ((subject_orgs[1]), id)
  WHERE seq IS NOT NULL AND entity_type IN ('grant', 'transaction', 'transaction_batch', 'procurement_item', 'token');
CREATE INDEX audit_events_recipient ON audit_events ((subject_orgs[2]), id)
  WHERE seq IS NOT NULL AND entity_type IN ('grant', 'transaction', 'transaction_batch', 'procurement_item');

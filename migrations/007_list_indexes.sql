-- Indexes behind the filtered lists; internal/audit and internal/ledger have
-- tests that EXPLAIN each filtered list and check it reads the index meant
-- for it.

-- Grants by donor need no index of their own: the unique (donor_org_id,
-- reference) index serves the filter once it compares uuids (it compared
-- donor_org_id::text, which no index serves).

-- Audit events. Real listings narrow by one thing, sometimes with a time
-- range on top: an entity's history (audit_events_entity, from 002), what a
-- token did, what happened in a period, and everything a donor or an
-- implementer may see. Each of the last three gets one index; a second filter
-- is checked on the rows the first one finds.
--
-- They index sealed events only. A writer inserts an unsealed event, so these
-- cost the writers nothing; the sealer adds their entries when it seals the
-- event in the background (its update of seq, which is indexed, is never a HOT
-- update, so the sealed row gets fresh entries in every index anyway). The
-- listing reads events still pending through audit_events_unsealed, which
-- stays small: an event stays unsealed one sealing interval.
--
-- Migration 004 dropped the actor and time indexes, which every writer paid
-- for; these come back partial.
CREATE INDEX audit_events_actor ON audit_events (actor_token_id, id) WHERE seq IS NOT NULL;
-- Events are sealed moments after they occur, so sealed rows lie in the heap
-- nearly in time order: a BRIN index (a few bytes per 128 pages, next to
-- nothing to maintain) finds a time range.
CREATE INDEX audit_events_time ON audit_events USING brin (occurred_at) WITH (autosummarize = on) WHERE seq IS NOT NULL;
-- What a donor and an implementer list (internal/audit, List): an event about
-- a grant names the grant's donor then its recipient as subject_orgs; a
-- token's events name the organisation the token acts for.
CREATE INDEX audit_events_donor ON audit_events ((subject_orgs[1]), id)
  WHERE seq IS NOT NULL AND entity_type IN ('grant', 'transaction', 'transaction_batch', 'token');
CREATE INDEX audit_events_recipient ON audit_events ((subject_orgs[2]), id)
  WHERE seq IS NOT NULL AND entity_type IN ('grant', 'transaction', 'transaction_batch');

-- Reconciliation pages a grant's receipt matches by payment reference
-- (internal/ledger, Reconcile): its disbursements and receipts in (reference,
-- id) order, so a page reads only its own references. Same rows as the index
-- it replaces, one key column more.
DROP INDEX transactions_flows;
CREATE INDEX transactions_flows ON transactions (grant_id, reference, id) WHERE bucket IN ('DISBURSEMENT', 'RECEIPT');

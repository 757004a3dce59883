-- FX corrections: a wrong rate is superseded by a correcting row with a
-- reason, never edited. Revision 0 is a rate as first recorded; revision n + 1
-- supersedes revision n of the same pair and date, and the effective rate of
-- a pair and date is its highest revision. A correction is an insert like any
-- other: it takes the writers' lock (fx_rates_serialise) and a new seq, so
-- every server's FX cache sees it as it sees a new rate (migration 004).
ALTER TABLE fx_rates ADD COLUMN revision integer NOT NULL DEFAULT 0 CHECK (revision >= 0);
ALTER TABLE fx_rates ADD COLUMN reason text NOT NULL DEFAULT '';
-- a correction says why; a first recording has nothing to explain
ALTER TABLE fx_rates ADD CONSTRAINT fx_rates_reason CHECK ((revision = 0) = (reason = ''));
ALTER TABLE fx_rates DROP CONSTRAINT fx_rates_pkey,
  ADD PRIMARY KEY (currency, quote_currency, date, revision);

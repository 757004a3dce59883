-- Detection (internal/detect) compares payment and document references with
-- case, spaces and punctuation ignored, so `DE-2024/0017` and `de 2024 0017`
-- are one reference. Normalising is a regular expression per entry: stored
-- once when the entry is written, it saves each detection run about a
-- second per million entries. The writer's cost was lost in run-to-run noise
-- (BenchmarkWriteStatement, runs alternated before and after: the statement
-- alone 0.32-0.35 of raw INSERT before, 0.35-0.37 after; grouped 0.40-0.41
-- before, 0.37-0.40 after).
--
-- What is removed is listed explicitly: ASCII white space (tab to carriage
-- return, space) and ASCII punctuation (! to /, : to @, [ to `, { to ~).
-- Every other character stays. A locale class such as [:alnum:] would not
-- do: in a C-locale cluster it is ASCII only, so `Рахунок-17` and `Акт-17`
-- would both become `17` (one document claimed twice, falsely) and a
-- reference of Cyrillic letters only would become empty (no reference).
ALTER TABLE transactions ADD COLUMN norm_reference text NOT NULL
  GENERATED ALWAYS AS (lower(regexp_replace(reference, '[\x09-\x0d\x20-\x2f\x3a-\x40\x5b-\x60\x7b-\x7e]+', '', 'g'))) STORED;

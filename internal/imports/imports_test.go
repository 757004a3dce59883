package imports_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/imports"
	"github.com/tranche-ledger/tranche/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func as(role auth.Role, orgID string) context.Context {
	return auth.WithPrincipal(context.Background(), auth.Principal{TokenID: "tok-" + string(role) + orgID, Role: role, OrgID: orgID})
}

var coord = as(auth.Coordinator, "")

// ftsPages are the real FTS pages for Afghanistan 2020 (one response, three pages).
func ftsPages(t testing.TB) []imports.File {
	t.Helper()
	var out []imports.File
	for i := 1; i <= 3; i++ {
		name := filepath.Join("fts", "testdata", fmt.Sprintf("afghanistan-2020-page-%d.json", i))
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, imports.File{Name: filepath.Base(name), Data: b})
	}
	return out
}

// counts are the rows a test expects an import to write or leave alone.
type counts struct{ grants, entries, orgs, events, runs, prov int }

func count(t testing.TB, pool *pgxpool.Pool) counts {
	t.Helper()
	var c counts
	err := pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM grants), (SELECT count(*) FROM transactions),
		(SELECT count(*) FROM organizations), (SELECT count(*) FROM audit_events), (SELECT count(*) FROM import_runs),
		(SELECT count(*) FROM provenance)`).Scan(&c.grants, &c.entries, &c.orgs, &c.events, &c.runs, &c.prov)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func total(t testing.TB, rep *imports.Report, prefix string) imports.Total {
	t.Helper()
	for _, x := range rep.Totals {
		if strings.HasPrefix(x.Name, prefix) {
			return x
		}
	}
	t.Fatalf("no total %q in %+v", prefix, rep.Totals)
	return imports.Total{}
}

// The FTS pages go into a roadmap the import creates, and the ledger then
// holds, as commitments in USD, exactly the source's own incoming funding
// total; re-importing the same pages writes nothing.
func TestFTSReproducesTheSourceTotalAndReimportWritesNothing(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	s := imports.New(db.App)
	rep, err := s.Run(coord, imports.Request{Kind: imports.FTS, Files: ftsPages(t)})
	if err != nil {
		t.Fatalf("import: %v\n%+v", err, rep.Problems)
	}
	if !rep.RoadmapCreated || rep.RunID == "" {
		t.Fatalf("roadmap created %v, run %q", rep.RoadmapCreated, rep.RunID)
	}
	want := decimal.RequireFromString("725591299")
	src := total(t, rep, "incoming funding")
	if !src.Source.Equal(want) || !src.Computed.Equal(want) || !src.Matches {
		t.Errorf("incoming funding: source %s computed %s, want %s", src.Source, src.Computed, want)
	}
	led := total(t, rep, "ledger: committed from FTS")
	if !led.Computed.Equal(want) || !led.Matches {
		t.Errorf("ledger committed %s, want %s", led.Computed, want)
	}
	// The same figure read from the ledger's own tables.
	var committed decimal.Decimal
	if err := db.App.QueryRow(context.Background(), `SELECT sum(committed_reporting) FROM grant_balances`).Scan(&committed); err != nil {
		t.Fatal(err)
	}
	if !committed.Equal(want) {
		t.Errorf("grant balances committed %s, want %s", committed, want)
	}
	if len(rep.Variances) != 8 {
		t.Errorf("%d variances, want the 8 flows whose reported USD differs from the computed by more than a dollar", len(rep.Variances))
	}
	var internal, shared int
	for _, n := range rep.NotCounted {
		switch {
		case strings.HasPrefix(n.Reason, "internal"):
			internal++
		case strings.HasPrefix(n.Reason, "onBoundary shared"):
			shared++
		}
	}
	if internal != 156 || shared != 17 {
		t.Errorf("not counted: %d internal, %d shared; want 156 and 17", internal, shared)
	}
	// One audit event per grant and one per grant per batch of entries, and
	// provenance for every entry.
	c := count(t, db.App)
	if c.entries == 0 || c.prov < c.entries+c.grants {
		t.Errorf("counts %+v: every entry and grant needs its provenance", c)
	}
	if c.grants != rep.GrantsCreated || c.entries != rep.EntriesCreated {
		t.Errorf("report says %d grants and %d entries, the database holds %+v", rep.GrantsCreated, rep.EntriesCreated, c)
	}

	again, err := s.Run(coord, imports.Request{Kind: imports.FTS, Files: ftsPages(t), RoadmapID: uuid.MustParse(rep.RoadmapID)})
	if err != nil {
		t.Fatal(err)
	}
	if again.RunID != "" || again.EntriesCreated != 0 || again.GrantsCreated != 0 || again.Unchanged == 0 {
		t.Errorf("re-import: run %q, %d entries, %d grants, %d unchanged", again.RunID, again.EntriesCreated, again.GrantsCreated, again.Unchanged)
	}
	for _, f := range again.Files {
		if !f.AlreadyImported {
			t.Errorf("file %s not seen as imported before", f.Name)
		}
	}
	if after := count(t, db.App); after != c {
		t.Errorf("re-import wrote: before %+v after %+v", c, after)
	}
}

// A newer version of a flow is applied as a reversal of its entries and new
// ones; an older version afterwards changes nothing.
func TestFTSNewerVersionIsACorrection(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	s := imports.New(db.App)
	pages := ftsPages(t)
	rep, err := s.Run(coord, imports.Request{Kind: imports.FTS, Files: pages})
	if err != nil {
		t.Fatal(err)
	}
	rm := uuid.MustParse(rep.RoadmapID)
	before := count(t, db.App)

	// Flow 204322 (ECHO, commitment, version 4): version 5 lowers it.
	v5 := bumpFlow(t, pages, "204322")
	rep2, err := s.Run(coord, imports.Request{Kind: imports.FTS, Files: v5, RoadmapID: rm})
	if err != nil {
		t.Fatalf("%v %+v", err, rep2.Problems)
	}
	if rep2.Corrected != 1 || rep2.EntriesReversed != 1 || rep2.EntriesCreated != 1 {
		t.Fatalf("corrected %d, reversed %d, created %d; want 1, 1, 1", rep2.Corrected, rep2.EntriesReversed, rep2.EntriesCreated)
	}
	after := count(t, db.App)
	if after.entries != before.entries+2 || after.grants != before.grants {
		t.Errorf("entries %d → %d, grants %d → %d", before.entries, after.entries, before.grants, after.grants)
	}
	var live decimal.Decimal
	if err := db.App.QueryRow(context.Background(), `SELECT coalesce(sum(t.amount * CASE WHEN t.type = 'REVERSAL' THEN -1 ELSE 1 END), 0)
		FROM transactions t JOIN provenance p ON p.entity_id = t.id AND p.entity_type = 'transaction'
		WHERE p.record_id = '204322'`).Scan(&live); err != nil {
		t.Fatal(err)
	}
	if !live.Equal(decimal.RequireFromString("20000000")) {
		t.Errorf("flow 204322 stands at %s EUR, want 20000000", live)
	}
	// The old pages again: version 4 is older than 5; nothing changes.
	rep3, err := s.Run(coord, imports.Request{Kind: imports.FTS, Files: pages, RoadmapID: rm})
	if err != nil {
		t.Fatal(err)
	}
	if rep3.RunID != "" || !slices.ContainsFunc(rep3.Notes, func(n string) bool { return strings.Contains(n, "flow 204322: version 4 is older") }) {
		t.Errorf("old version: run %q notes %q", rep3.RunID, rep3.Notes)
	}
	if c := count(t, db.App); c != after {
		t.Errorf("old version wrote: %+v → %+v", after, c)
	}
}

// bumpFlow gives the pages with flow id at version 5 and 20 000 000 EUR
// (its USD and the page envelope unchanged).
func bumpFlow(t testing.TB, pages []imports.File, id string) []imports.File {
	t.Helper()
	out := slices.Clone(pages)
	for i, p := range out {
		b, ok := editFlow(t, p.Data, func(f map[string]any) bool {
			if f["id"] != id {
				return false
			}
			f["versionId"], f["originalAmount"] = json.Number("5"), json.Number("20000000")
			return true
		})
		if ok {
			out[i] = imports.File{Name: p.Name + "-v5", Data: b}
			return out
		}
	}
	t.Fatalf("flow %s not found", id)
	return nil
}

// editFlow applies edit to the first flow of a page it accepts.
func editFlow(t testing.TB, page []byte, edit func(map[string]any) bool) ([]byte, bool) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(page))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	for _, f := range doc["data"].(map[string]any)["flows"].([]any) {
		if edit(f.(map[string]any)) {
			b, err := json.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			return b, true
		}
	}
	return nil, false
}

// A dry run reports what a real run writes, and writes nothing.
func TestDryRunWritesNothing(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	s := imports.New(db.App)
	before := count(t, db.App)
	dry, err := s.Run(coord, imports.Request{Kind: imports.FTS, Files: ftsPages(t), DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if after := count(t, db.App); after != before {
		t.Fatalf("dry run wrote: %+v → %+v", before, after)
	}
	real, err := s.Run(coord, imports.Request{Kind: imports.FTS, Files: ftsPages(t)})
	if err != nil {
		t.Fatal(err)
	}
	if dry.GrantsCreated != real.GrantsCreated || dry.EntriesCreated != real.EntriesCreated || dry.OrganizationsCreated != real.OrganizationsCreated ||
		dry.RunID != "" || !dry.DryRun {
		t.Errorf("dry run %d/%d/%d run %q, real %d/%d/%d", dry.GrantsCreated, dry.EntriesCreated, dry.OrganizationsCreated, dry.RunID,
			real.GrantsCreated, real.EntriesCreated, real.OrganizationsCreated)
	}
}

// Bad input is refused with the record and field named, and writes nothing;
// with SkipInvalid the bad records are listed and the rest imported.
func TestBadInput(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	s := imports.New(db.App)
	pages := ftsPages(t)
	badCurrency, ok := editFlow(t, pages[2].Data, func(f map[string]any) bool {
		if f["originalCurrency"] == nil {
			return false
		}
		f["originalCurrency"] = "XYZ"
		return true
	})
	if !ok {
		t.Fatal("no flow with an original currency on page 3")
	}
	ancient, ok := editFlow(t, pages[0].Data, func(f map[string]any) bool {
		f["date"] = "0001-01-01T00:00:00Z"
		return true
	})
	if !ok {
		t.Fatal("no flow on page 1")
	}
	cases := []struct {
		name  string
		req   imports.Request
		field string // a violation's field must start with it
	}{
		{"a date in year 1", imports.Request{Kind: imports.FTS, Files: []imports.File{{Name: "p1.json", Data: ancient}}}, "flow "},
		{"truncated page", imports.Request{Kind: imports.FTS, Files: []imports.File{{Name: "p1.json", Data: pages[0].Data[:1000]}}}, "file"},
		{"not JSON", imports.Request{Kind: imports.FTS, Files: []imports.File{{Name: "x.json", Data: []byte("<xml/>")}}}, "file"},
		{"unknown currency", imports.Request{Kind: imports.FTS, Files: []imports.File{pages[0], pages[1], {Name: "p3.json", Data: badCurrency}}}, "flow "},
		{"truncated IATI", imports.Request{Kind: imports.IATI, Files: []imports.File{{Name: "a.xml", Data: []byte("<iati-activities version=\"2.03\"><iati-activity>")}}}, "file"},
		{"NUL in name", imports.Request{Kind: imports.FTS, Files: []imports.File{{Name: "a\x00b", Data: pages[0].Data}}}, "files[0].name"},
		{"no files", imports.Request{Kind: imports.FTS}, "files"},
		{"unknown kind", imports.Request{Kind: "csv", Files: pages}, "kind"},
		{"ocds without grant", imports.Request{Kind: imports.OCDS, Files: pages}, "grantId"},
		{"unknown roadmap", imports.Request{Kind: imports.FTS, Files: pages, RoadmapID: uuid.Must(uuid.NewV7())}, "roadmapId"},
	}
	before := count(t, db.App)
	for _, c := range cases {
		_, err := s.Run(coord, c.req)
		var inv *apperr.InvalidError
		if !errors.As(err, &inv) {
			t.Errorf("%s: %v, want INVALID_ARGUMENT", c.name, err)
			continue
		}
		if !slices.ContainsFunc(inv.Violations, func(v apperr.Violation) bool { return strings.HasPrefix(v.Field, c.field) }) {
			t.Errorf("%s: violations %+v, want one on %q", c.name, inv.Violations, c.field)
		}
	}
	if after := count(t, db.App); after != before {
		t.Fatalf("refused imports wrote: %+v → %+v", before, after)
	}
	rep, err := s.Run(coord, imports.Request{Kind: imports.FTS, SkipInvalid: true,
		Files: []imports.File{pages[0], pages[1], {Name: "p3.json", Data: badCurrency}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Skipped) != 1 || !strings.Contains(rep.Skipped[0].Field, "originalCurrency") || rep.EntriesCreated == 0 {
		t.Errorf("skipped %+v, %d entries", rep.Skipped, rep.EntriesCreated)
	}
}

// Only coordinators and admins import.
func TestRoles(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	s := imports.New(db.App)
	for _, ctx := range []context.Context{as(auth.Donor, uuid.NewString()), as(auth.Implementer, uuid.NewString()), as(auth.Auditor, "")} {
		if _, err := s.Run(ctx, imports.Request{Kind: imports.FTS, Files: ftsPages(t)}); !errors.Is(err, apperr.ErrPermissionDenied) {
			t.Errorf("%v: %v, want PERMISSION_DENIED", auth.FromContext(ctx).Role, err)
		}
	}
}

// Provenance of an imported entry names the flow, its version, its file and
// what was inferred.
func TestProvenance(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	s := imports.New(db.App)
	pages := ftsPages(t)
	if _, err := s.Run(coord, imports.Request{Kind: imports.FTS, Files: pages}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	rows, err := db.App.Query(context.Background(), `SELECT entity_id::text FROM provenance WHERE record_id = '204322' AND entity_type = 'transaction'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		_ = rows.Scan(&id)
		ids = append(ids, id)
	}
	got, err := imports.ProvenanceOf(context.Background(), db.App, imports.EntityTransaction, ids)
	if err != nil || len(got) != 1 {
		t.Fatalf("%v %v", got, err)
	}
	for _, p := range got {
		if p.SourceKind != "fts" || p.RecordVersion != "4" || !strings.HasPrefix(p.Position, "page ") || len(p.FileSHA256) != 64 ||
			p.SourceValues["amountUSD"] != "28981713" || !slices.ContainsFunc(p.Inferred, func(s string) bool { return strings.HasPrefix(s, "fxRate") }) ||
			p.ImportedAt.Before(time.Now().Add(-time.Hour)) {
			t.Errorf("provenance %+v", p)
		}
	}
}

// One FTS agreement is imported into one roadmap: the same flows into a
// second roadmap are refused naming the flow (a grant reference is unique
// per donor), and nothing is written.
func TestSameAgreementInTwoRoadmaps(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	s := imports.New(db.App)
	pages := ftsPages(t)
	if _, err := s.Run(coord, imports.Request{Kind: imports.FTS, Files: pages[2:]}); err != nil {
		t.Fatal(err)
	}
	before := count(t, db.App)
	_, err := s.Run(coord, imports.Request{Kind: imports.FTS, Files: pages[2:], NewRoadmap: imports.RoadmapHint{Title: "Again"}})
	if !errors.Is(err, apperr.ErrAlreadyExists) || !strings.Contains(err.Error(), "flow ") || strings.Contains(err.Error(), "grants[") {
		t.Errorf("the same flows into a second roadmap: %v, want ALREADY_EXISTS naming the flow", err)
	}
	if after := count(t, db.App); after != before {
		t.Errorf("refused import wrote: %+v → %+v", before, after)
	}
}

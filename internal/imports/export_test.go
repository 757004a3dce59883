package imports_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/imports"
	"github.com/tranche-ledger/tranche/internal/testdb"
)

// validIATI validates an export against the IATI 2.03 activity schema with
// xmllint, skipping the test where xmllint is not installed.
func validIATI(t *testing.T, doc []byte) {
	t.Helper()
	bin, err := exec.LookPath("xmllint")
	if err != nil {
		t.Skip("xmllint not found: install Debian's libxml2-utils to validate the IATI export against the 2.03 schema")
	}
	f := filepath.Join(t.TempDir(), "export.xml")
	if err := os.WriteFile(f, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	schema := filepath.Join("iati", "testdata", "schema-2.03", "iati-activities-schema.xsd")
	out, err := exec.Command(bin, "--noout", "--nonet", "--schema", schema, f).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "validates") {
		t.Fatalf("the export does not validate against the IATI 2.03 schema: %v\n%.2000s", err, out)
	}
}

// liveTotals sums a roadmap's live entries per type and currency.
func liveTotals(t *testing.T, db *testdb.DB, roadmapID string) map[string]decimal.Decimal {
	t.Helper()
	rows, err := db.App.Query(context.Background(), `SELECT t.bucket || ' ' || t.currency,
			sum(CASE WHEN t.type = 'REVERSAL' THEN -t.amount ELSE t.amount END)::text
		FROM transactions t JOIN grants g ON g.id = t.grant_id WHERE g.roadmap_id = $1 GROUP BY 1`, roadmapID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]decimal.Decimal{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		if d := decimal.RequireFromString(v); !d.IsZero() {
			out[k] = d
		}
	}
	return out
}

// A roadmap built from FTS flows and one built from an IATI file are
// exported as IATI 2.03 (valid against the schema), and importing each
// export into an empty database gives the same totals per entry type and
// currency. A donor's export holds its own grants only.
func TestExportRoundTrip(t *testing.T) {
	t.Parallel()
	src := testdb.New(t)
	seedRates(t, src, "DKK", "EUR", "GBP")
	s := imports.New(src.App)
	fromFTS, err := s.Run(coord, imports.Request{Kind: imports.FTS, Files: ftsPages(t)})
	if err != nil {
		t.Fatal(err)
	}
	fromIATI, err := s.Run(coord, imports.Request{Kind: imports.IATI, NewRoadmap: imports.RoadmapHint{Country: "AFG"},
		Files: []imports.File{readFile(t, "iati", "testdata", "dportal-2.03-undp-danida-ifad.xml")}})
	if err != nil {
		t.Fatal(err)
	}
	dst := testdb.New(t)
	var currencies []string
	if err := src.App.QueryRow(context.Background(), `SELECT array_agg(DISTINCT currency) FROM transactions WHERE currency <> 'USD'`).Scan(&currencies); err != nil {
		t.Fatal(err)
	}
	seedRates(t, dst, currencies...)
	d := imports.New(dst.App)
	for _, rm := range []string{fromFTS.RoadmapID, fromIATI.RoadmapID} {
		var buf bytes.Buffer
		if err := s.ExportIATI(coord, &buf, uuid.MustParse(rm)); err != nil {
			t.Fatal(err)
		}
		validIATI(t, buf.Bytes())
		rep, err := d.Run(coord, imports.Request{Kind: imports.IATI, NewRoadmap: imports.RoadmapHint{Country: "AFG"},
			Files: []imports.File{{Name: "export.xml", Data: buf.Bytes()}}})
		if err != nil {
			t.Fatalf("importing the export: %v %+v", err, rep.Problems)
		}
		want, got := liveTotals(t, src, rm), liveTotals(t, dst, rep.RoadmapID)
		for k, w := range want {
			if !got[k].Equal(w) {
				t.Errorf("roadmap %s: %s: %s after the round trip, %s before", rm, k, got[k], w)
			}
		}
		for k, g := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("roadmap %s: %s: %s after the round trip, none before", rm, k, g)
			}
		}
	}

	// A donor exports its own grants only.
	var donor string
	var n int
	if err := src.App.QueryRow(context.Background(), `SELECT donor_org_id::text, count(*) OVER () FROM grants WHERE roadmap_id = $1
		GROUP BY donor_org_id ORDER BY count(*) DESC LIMIT 1`, fromFTS.RoadmapID).Scan(&donor, &n); err != nil {
		t.Fatal(err)
	}
	var own int
	if err := src.App.QueryRow(context.Background(), `SELECT count(*) FROM grants WHERE roadmap_id = $1 AND donor_org_id = $2`,
		fromFTS.RoadmapID, donor).Scan(&own); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	ctx := auth.WithPrincipal(context.Background(), auth.Principal{TokenID: "d", Role: auth.Donor, OrgID: donor})
	if err := s.ExportIATI(ctx, &buf, uuid.MustParse(fromFTS.RoadmapID)); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(buf.String(), "<iati-activity "); got != own || n < 2 {
		t.Errorf("donor export: %d activities, the donor gives %d grants (of %d donors)", got, own, n)
	}
	_ = time.Now
}

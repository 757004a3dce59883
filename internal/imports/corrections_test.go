package imports_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/google/uuid"

	"github.com/shopspring/decimal"
	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/imports"
	"github.com/tranche-ledger/tranche/internal/money"
	"github.com/tranche-ledger/tranche/internal/roadmap"
	"github.com/tranche-ledger/tranche/internal/testdb"
)

// A newer version of a *paid* FTS flow (COMMITMENT + DISBURSEMENT) must be
// applied as reversal + new entries.
func TestPaidFlowCorrection(t *testing.T) {
	db := testdb.New(t)
	s := imports.New(db.App)
	pages := ftsPages(t)
	rep, err := s.Run(coord, imports.Request{Kind: imports.FTS, Files: pages})
	if err != nil {
		t.Fatal(err)
	}
	rm := uuid.MustParse(rep.RoadmapID)
	out := make([]imports.File, len(pages))
	copy(out, pages)
	for i, p := range out {
		b, ok := editFlow(t, p.Data, func(f map[string]any) bool {
			if f["id"] != "207738" {
				return false
			}
			f["versionId"], f["amountUSD"] = json.Number("2"), json.Number("3000000")
			if _, has := f["originalAmount"]; has && f["originalAmount"] != nil {
				f["originalAmount"] = json.Number("3000000")
			}
			return true
		})
		if ok {
			out[i] = imports.File{Name: p.Name + "-v2", Data: b}
		}
	}
	rep2, err := s.Run(coord, imports.Request{Kind: imports.FTS, Files: out, RoadmapID: rm})
	if err != nil {
		t.Fatalf("correcting paid flow 207738: %v", err)
	}
	t.Logf("corrected %d reversed %d created %d", rep2.Corrected, rep2.EntriesReversed, rep2.EntriesCreated)
}

const iatiHead = `<?xml version="1.0" encoding="UTF-8"?>
<iati-activities version="2.03" generated-datetime="2020-01-01T00:00:00Z">
 <iati-activity last-updated-datetime="%s" default-currency="USD" xml:lang="en">
  <iati-identifier>XM-DAC-99-TEST-1</iati-identifier>
  <reporting-org ref="XM-DAC-99" type="10"><narrative>Donor A</narrative></reporting-org>
  <title><narrative>Test clearance</narrative></title>
  <participating-org ref="XM-DAC-99" role="1" type="10"><narrative>Donor A</narrative></participating-org>
  <participating-org ref="XM-OCHA-IMP2" role="4" type="22"><narrative>Implementer B</narrative></participating-org>
  <activity-status code="2"/>
  <activity-date type="2" iso-date="2020-01-01"/>
  <recipient-country code="AF" percentage="100"/>
`

func iatiTx(code, date, value string) string {
	return `  <transaction><transaction-type code="` + code + `"/><transaction-date iso-date="` + date + `"/>
   <value value-date="` + date + `" currency="USD">` + value + `</value>
   <provider-org ref="XM-DAC-99"><narrative>Donor A</narrative></provider-org>
   <receiver-org ref="XM-OCHA-IMP2"><narrative>Implementer B</narrative></receiver-org></transaction>
`
}

func iatiFile(name, version string, txs ...string) imports.File {
	return imports.File{Name: name, Data: []byte(strings.Replace(iatiHead, "%s", version, 1) + strings.Join(txs, "") +
		" </iati-activity>\n</iati-activities>\n")}
}

// IATI: the publisher's newer file changes the negative correction (-30 → -40).
func TestIATINegativeCorrectionReimport(t *testing.T) {
	db := testdb.New(t)
	s := imports.New(db.App)
	v1 := iatiFile("v1.xml", "2020-03-01T00:00:00Z", iatiTx("3", "2020-02-01", "100"), iatiTx("3", "2020-02-15", "-30"))
	rep, err := s.Run(coord, imports.Request{Kind: imports.IATI, Files: []imports.File{v1}})
	if err != nil {
		t.Fatalf("v1: %v %+v", err, rep.Problems)
	}
	t.Logf("v1: created %d", rep.EntriesCreated)
	v2 := iatiFile("v2.xml", "2020-04-01T00:00:00Z", iatiTx("3", "2020-02-01", "100"), iatiTx("3", "2020-02-15", "-40"))
	rep2, err := s.Run(coord, imports.Request{Kind: imports.IATI, Files: []imports.File{v2}, RoadmapID: uuid.MustParse(rep.RoadmapID)})
	if err != nil {
		t.Fatalf("v2 (changed negative value): %v", err)
	}
	t.Logf("v2: corrected %d reversed %d created %d", rep2.Corrected, rep2.EntriesReversed, rep2.EntriesCreated)
}

// IATI: the publisher's newer file appends a negative correction.
func TestIATIAppendedCorrection(t *testing.T) {
	db := testdb.New(t)
	s := imports.New(db.App)
	v1 := iatiFile("v1.xml", "2020-03-01T00:00:00Z", iatiTx("3", "2020-02-01", "100"))
	rep, err := s.Run(coord, imports.Request{Kind: imports.IATI, Files: []imports.File{v1}})
	if err != nil {
		t.Fatalf("v1: %v %+v", err, rep.Problems)
	}
	v2 := iatiFile("v2.xml", "2020-04-01T00:00:00Z", iatiTx("3", "2020-02-01", "100"), iatiTx("3", "2020-02-15", "-30"))
	rep2, err := s.Run(coord, imports.Request{Kind: imports.IATI, Files: []imports.File{v2}, RoadmapID: uuid.MustParse(rep.RoadmapID)})
	if err != nil {
		t.Fatalf("v2 (appended negative value): %v", err)
	}
	t.Logf("v2: corrected %d reversed %d created %d", rep2.Corrected, rep2.EntriesReversed, rep2.EntriesCreated)
}

// IATI: the commitment is lowered in a newer file; the disbursement is as it was.
func TestIATICommitmentLowered(t *testing.T) {
	db := testdb.New(t)
	s := imports.New(db.App)
	v1 := iatiFile("v1.xml", "2020-03-01T00:00:00Z", iatiTx("2", "2020-01-15", "100"), iatiTx("3", "2020-02-01", "100"))
	rep, err := s.Run(coord, imports.Request{Kind: imports.IATI, Files: []imports.File{v1}})
	if err != nil {
		t.Fatalf("v1: %v %+v", err, rep.Problems)
	}
	v2 := iatiFile("v2.xml", "2020-04-01T00:00:00Z", iatiTx("2", "2020-01-15", "80"), iatiTx("3", "2020-02-01", "100"))
	rep2, err := s.Run(coord, imports.Request{Kind: imports.IATI, Files: []imports.File{v2}, RoadmapID: uuid.MustParse(rep.RoadmapID)})
	if err != nil {
		t.Fatalf("v2 (commitment lowered): %v", err)
	}
	t.Logf("v2: corrected %d reversed %d created %d", rep2.Corrected, rep2.EntriesReversed, rep2.EntriesCreated)
}

// IATI: the same activity in two files of one import (an older and a newer
// copy). The doc: only the newer copy counts. Expected: DISBURSEMENT 120 in the ledger.
func TestIATIDuplicateActivityNewerCopyCounted(t *testing.T) {
	db := testdb.New(t)
	s := imports.New(db.App)
	v1 := iatiFile("v1.xml", "2020-03-01T00:00:00Z", iatiTx("3", "2020-02-01", "100"))
	v2 := iatiFile("v2.xml", "2020-04-01T00:00:00Z", iatiTx("3", "2020-02-01", "120"))
	rep, err := s.Run(coord, imports.Request{Kind: imports.IATI, Files: []imports.File{v1, v2}, NewRoadmap: imports.RoadmapHint{Country: "AFG"}})
	if err != nil {
		t.Fatalf("%v %+v", err, rep.Problems)
	}
	var n int
	var sum string
	if err := db.App.QueryRow(context.Background(), `SELECT count(*), coalesce(sum(amount), 0)::text FROM transactions WHERE type = 'DISBURSEMENT'`).Scan(&n, &sum); err != nil {
		t.Fatal(err)
	}
	t.Logf("totals %+v notCounted %+v", rep.Totals, rep.NotCounted)
	if n != 1 || sum != "120" {
		t.Errorf("disbursements in the ledger: %d summing %s; want 1 of 120 (the newer copy)", n, sum)
	}
}

// The same FTS pages re-imported after a coordinator adds a milestone whose
// code is a cluster: the file is unchanged, so nothing should be written.
func TestReimportAfterMilestoneCreated(t *testing.T) {
	db := testdb.New(t)
	s := imports.New(db.App)
	pages := ftsPages(t)
	rep, err := s.Run(coord, imports.Request{Kind: imports.FTS, Files: pages})
	if err != nil {
		t.Fatal(err)
	}
	rm := uuid.MustParse(rep.RoadmapID)
	if _, err := roadmap.New(db.App).CreateMilestone(coord, rm, roadmap.MilestoneInput{Code: "Health", Title: "Health",
		ActivityType: "CLEARANCE", FundingRequirement: money.Amount{Value: decimal.New(1, 6), Currency: "USD"}}, "m"); err != nil {
		t.Fatal(err)
	}
	before := count(t, db.App)
	rep2, err := s.Run(coord, imports.Request{Kind: imports.FTS, Files: pages, RoadmapID: rm, DryRun: true})
	t.Logf("dry run of the same pages: err=%v corrected=%d reversed=%d created=%d", err, rep2.Corrected, rep2.EntriesReversed, rep2.EntriesCreated)
	if err != nil || rep2.Corrected != 0 {
		t.Errorf("an unchanged file would be corrected")
	}
	if c := count(t, db.App); c != before {
		t.Errorf("dry run wrote")
	}
}

// FTS: a newer version of a commitment flow names another recipient (FTS
// reassigns a flow). It should become a reversal and a new entry.
func TestRecipientChangedInNewerVersion(t *testing.T) {
	db := testdb.New(t)
	s := imports.New(db.App)
	pages := ftsPages(t)
	rep, err := s.Run(coord, imports.Request{Kind: imports.FTS, Files: pages})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]imports.File, len(pages))
	copy(out, pages)
	for i, p := range out {
		b, ok := editFlow(t, p.Data, func(f map[string]any) bool {
			if f["id"] != "223271" {
				return false
			}
			f["versionId"] = json.Number("2")
			for _, o := range f["destinationObjects"].([]any) {
				m := o.(map[string]any)
				if m["type"] == "Organization" {
					m["id"], m["name"] = "2884", "Swedish Civil Contingencies Agency (MSB)"
				}
			}
			return true
		})
		if ok {
			out[i] = imports.File{Name: p.Name + "-v2", Data: b}
		}
	}
	rep2, err := s.Run(coord, imports.Request{Kind: imports.FTS, Files: out, RoadmapID: uuid.MustParse(rep.RoadmapID)})
	if err != nil {
		t.Fatalf("recipient changed: %v", err)
	}
	t.Logf("corrected %d reversed %d created %d", rep2.Corrected, rep2.EntriesReversed, rep2.EntriesCreated)
}

// IATI: commitment 100 EUR (the activity's currency), then a disbursement of
// 50 USD well within it. No commitment should be implied: committed stays 100 EUR.
func TestIATIImpliedCommitmentOtherCurrency(t *testing.T) {
	db := testdb.New(t)
	seedRates(t, db, "EUR")
	s := imports.New(db.App)
	tx := func(code, date, cur, value string) string {
		return strings.Replace(iatiTx(code, date, value), `currency="USD"`, `currency="`+cur+`"`, 1)
	}
	f := iatiFile("v1.xml", "2020-03-01T00:00:00Z", tx("2", "2020-01-15", "EUR", "100"), tx("3", "2020-02-01", "USD", "50"))
	f.Data = []byte(strings.Replace(string(f.Data), `default-currency="USD"`, `default-currency="EUR"`, 1))
	rep, err := s.Run(coord, imports.Request{Kind: imports.IATI, Files: []imports.File{f}})
	if err != nil {
		t.Fatalf("%v %+v", err, rep.Problems)
	}
	var committed string
	if err := db.App.QueryRow(context.Background(), `SELECT b.committed::text FROM grant_balances b JOIN grants g ON g.id = b.grant_id WHERE g.roadmap_id = $1`,
		rep.RoadmapID).Scan(&committed); err != nil {
		t.Fatal(err)
	}
	if committed != "100" && committed != "100.00" {
		t.Errorf("committed %s EUR; the source commits 100 EUR (a commitment of 50 USD was implied besides)", committed)
	}
}

// An import into an existing roadmap on a pool of one connection: the
// transaction holds it, and milestoneCodes asks the pool for another.
func TestImportOnOneConnectionPool(t *testing.T) {
	db := testdb.New(t)
	s := imports.New(db.App)
	v1 := iatiFile("v1.xml", "2020-03-01T00:00:00Z", iatiTx("3", "2020-02-01", "100"))
	rep, err := s.Run(coord, imports.Request{Kind: imports.IATI, Files: []imports.File{v1}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := db.App.Config()
	cfg.MaxConns, cfg.MinConns = 1, 0
	one, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	ctx, cancel := context.WithTimeout(coord, 10*time.Second)
	defer cancel()
	v2 := iatiFile("v2.xml", "2020-04-01T00:00:00Z", iatiTx("3", "2020-02-01", "100"))
	_, err = imports.New(one).Run(ctx, imports.Request{Kind: imports.IATI, Files: []imports.File{v2}, RoadmapID: uuid.MustParse(rep.RoadmapID)})
	if err != nil {
		t.Errorf("import on a one-connection pool: %v", err)
	}
}

// A refusal of the ledger's rules names the transaction of the source, not
// a position in the list the importer handed the ledger: a commitment of
// -5 USD as an activity's first transaction would leave committed below
// zero.
func TestLedgerRefusalNamesTheTransaction(t *testing.T) {
	db := testdb.New(t)
	s := imports.New(db.App)
	f := iatiFile("neg.xml", "2020-03-01T00:00:00Z", iatiTx("2", "2020-02-01", "-5"))
	_, err := s.Run(coord, imports.Request{Kind: imports.IATI, Files: []imports.File{f}})
	if !errors.Is(err, apperr.ErrFailedPrecondition) || !strings.Contains(err.Error(), "activity XM-DAC-99-TEST-1 transaction 1: ") ||
		strings.Contains(err.Error(), "transactions[") {
		t.Fatalf("%v, want FAILED_PRECONDITION naming activity XM-DAC-99-TEST-1 transaction 1", err)
	}
}

package imports_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/imports"
	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/internal/money"
	"github.com/tranche-ledger/tranche/internal/org"
	"github.com/tranche-ledger/tranche/internal/roadmap"
	"github.com/tranche-ledger/tranche/internal/testdb"
)

// genFTS writes n FTS-shaped flows into pages of at most 10 000: the shape
// of the Afghanistan 2020 response (one location, one usage year, donors and
// recipients by FTS id, a mix of statuses and currencies, every 50th flow a
// parked parent with two children), deterministic from seed. The envelope
// carries the totals the flows add up to.
func genFTS(n int, seed uint64) []imports.File {
	r := rand.New(rand.NewPCG(seed, 1))
	type obj = map[string]any
	currencies := []struct {
		code string
		rate string
	}{{"USD", "1"}, {"EUR", "0.88"}, {"GBP", "0.78"}, {"JPY", "107.5"}, {"SEK", "9.2"}, {"CHF", "0.95"}, {"KWD", "0.307"}}
	var flows []obj
	funding := decimal.Zero
	id := 300000
	party := func(typ string, id int, kind string) obj {
		return obj{"type": "Organization", "id": strconv.Itoa(id), "name": fmt.Sprintf("%s %d", typ, id), "behavior": "single",
			"organizationTypes": []string{kind}}
	}
	mk := func(fid int, donor, recipient int, usd decimal.Decimal, status, flowType string, parent int, children []int, ci int) obj {
		c := currencies[ci]
		rate := decimal.RequireFromString(c.rate)
		minor, _ := money.Currency(c.code)
		orig := usd.Mul(rate).Round(minor)
		day := time.Date(2020, time.Month(1+r.IntN(12)), 1+r.IntN(28), 0, 0, 0, 0, time.UTC)
		f := obj{"id": strconv.Itoa(fid), "versionId": 1, "amountUSD": json.Number(usd.String()),
			"originalAmount": json.Number(orig.String()), "originalCurrency": c.code, "exchangeRate": json.Number(c.rate),
			"status": status, "flowType": flowType, "date": day.Format("2006-01-02T15:04:05Z"), "decisionDate": nil,
			"description": fmt.Sprintf("Generated flow %d: mine action and protection", fid), "refCode": fmt.Sprintf("GEN-%d", fid),
			"boundary": "incoming", "onBoundary": "single", "contributionType": "financial", "newMoney": true,
			"budgetYear": nil, "keywords": nil, "method": "Traditional aid", "createdAt": "2020-01-01T00:00:00Z", "updatedAt": "2020-01-01T00:00:00Z",
			"sourceObjects": []obj{party("Donor", donor, "Government"), {"type": "UsageYear", "id": "41", "name": "2020", "behavior": "single"}},
			"destinationObjects": []obj{party("Partner", recipient, "NGO"), {"type": "Location", "id": "1", "name": "Afghanistan", "behavior": "single"},
				{"type": "UsageYear", "id": "41", "name": "2020", "behavior": "single"},
				{"type": "GlobalCluster", "id": "26479", "name": "Mine Action", "behavior": "single"}},
			"parentFlowId": nil, "childFlowIds": nil}
		if parent != 0 {
			f["parentFlowId"] = strconv.Itoa(parent)
		}
		if children != nil {
			var cs []string
			for _, c := range children {
				cs = append(cs, strconv.Itoa(c))
			}
			f["childFlowIds"] = cs
		}
		return f
	}
	for len(flows) < n {
		donor, recipient := 1000+r.IntN(200), 5000+r.IntN(1000)
		usd := decimal.New(int64(10000+r.IntN(5000000)), 0)
		status := []string{"paid", "paid", "paid", "commitment", "commitment"}[r.IntN(5)]
		if len(flows)%50 == 49 && len(flows)+3 <= n {
			p, c1, c2 := id, id+1, id+2
			id += 3
			// A parked allocation and its children share its currency.
			ci := r.IntN(len(currencies))
			flows = append(flows, mk(p, donor, recipient, usd, "commitment", "Parked", 0, []int{c1, c2}, ci))
			flows = append(flows, mk(c1, donor, 5000+r.IntN(1000), usd, "paid", "Standard", p, nil, ci))
			flows = append(flows, mk(c2, donor, 5000+r.IntN(1000), usd, "paid", "Standard", p, nil, ci))
			funding = funding.Add(usd.Mul(decimal.NewFromInt(3)))
			continue
		}
		flows = append(flows, mk(id, donor, recipient, usd, status, "Standard", 0, nil, r.IntN(len(currencies))))
		id++
		funding = funding.Add(usd)
	}
	var files []imports.File
	for start := 0; start < len(flows); start += 10000 {
		end := min(start+10000, len(flows))
		page := obj{"status": "ok", "data": obj{
			"incoming": obj{"flowCount": len(flows), "fundingTotal": json.Number(funding.String()), "pledgeTotal": 0},
			"outgoing": obj{"flowCount": 0, "fundingTotal": 0, "pledgeTotal": 0},
			"internal": obj{"flowCount": 0},
			"flows":    flows[start:end]},
			"meta": obj{"count": len(flows)}}
		b, err := json.Marshal(page)
		if err != nil {
			panic(err)
		}
		files = append(files, imports.File{Name: fmt.Sprintf("generated-page-%d.json", start/10000+1), Data: b})
	}
	return files
}

// BenchmarkImportFTS imports FTS-shaped flows (IMPORT_BENCH_FLOWS, default
// 10 000; the target is stated for 100 000) into an empty roadmap and
// reports flows per second, beside the rate BatchRecord reaches on the same
// database in the same run (1 000 entries per call, the batch-record
// target's measure): the import must reach at least that rate.
//
//	IMPORT_BENCH_FLOWS=100000 go test -run '^$' -bench ImportFTS -benchtime 1x -timeout 30m ./internal/imports/
func BenchmarkImportFTS(b *testing.B) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("IMPORT_BENCH_FLOWS")); err == nil && v > 0 {
		n = v
	}
	files := genFTS(n, 7)
	for b.Loop() {
		b.StopTimer()
		db := testdb.New(b)
		s := imports.New(db.App)
		batchRate := batchRecordRate(b, db)
		b.StartTimer()
		t0 := time.Now()
		rep, err := s.Run(coord, imports.Request{Kind: imports.FTS, Files: files})
		if err != nil {
			b.Fatal(err)
		}
		el := time.Since(t0)
		b.StopTimer()
		if !rep.Totals[0].Matches {
			b.Fatalf("generated totals do not match: %+v", rep.Totals[0])
		}
		rate := float64(n) / el.Seconds()
		b.ReportMetric(rate, "flows/s")
		b.ReportMetric(float64(rep.EntriesCreated)/el.Seconds(), "entries/s")
		b.ReportMetric(batchRate, "batchRecord_entries/s")
		b.ReportMetric(rate/batchRate, "x_batchRecord")
		b.StartTimer()
	}
}

// batchRecordRate records 20 000 disbursements through BatchRecord, 1 000 per
// call, on a fresh grant, and answers entries per second.
func batchRecordRate(b *testing.B, db *testdb.DB) float64 {
	ctx := as(auth.Admin, "")
	orgs := org.New(db.App)
	d, err := orgs.Create(ctx, org.Organization{Name: "Bench donor", Kind: "DONOR"}, "bd")
	if err != nil {
		b.Fatal(err)
	}
	i, err := orgs.Create(ctx, org.Organization{Name: "Bench partner", Kind: "IMPLEMENTER"}, "bi")
	if err != nil {
		b.Fatal(err)
	}
	rm, err := roadmap.New(db.App).Create(ctx, roadmap.Input{Country: "AFG", Title: "Bench", StartDate: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		EndDate: time.Date(2020, 12, 31, 0, 0, 0, 0, time.UTC), ReportingCurrency: "USD"}, "br")
	if err != nil {
		b.Fatal(err)
	}
	l := ledger.New(db.App)
	g, err := l.CreateGrant(ctx, ledger.GrantInput{RoadmapID: uuid.MustParse(rm.ID), DonorOrgID: uuid.MustParse(d.ID), RecipientOrgID: uuid.MustParse(i.ID),
		Reference: "B", Title: "Bench", Currency: "USD", Pledged: money.Amount{Value: decimal.Zero, Currency: "USD"},
		StartDate: rm.StartDate, EndDate: rm.EndDate}, "bg")
	if err != nil {
		b.Fatal(err)
	}
	gid := uuid.MustParse(g.ID)
	if _, err := l.RecordTransaction(ctx, ledger.EntryInput{GrantID: gid, Type: "COMMITMENT", Amount: money.Amount{Value: decimal.New(1, 9), Currency: "USD"},
		ValueDate: rm.StartDate}, "bc"); err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	for k := range 20 {
		in := make([]ledger.EntryInput, 1000)
		for j := range in {
			in[j] = ledger.EntryInput{GrantID: gid, Type: "DISBURSEMENT", Amount: money.Amount{Value: decimal.New(1, 0), Currency: "USD"},
				ValueDate: rm.StartDate, Reference: fmt.Sprint("B", k, "-", j)}
		}
		if _, err := l.BatchRecord(ctx, in, fmt.Sprint("batch-", k)); err != nil {
			b.Fatal(err)
		}
	}
	return 20000 / time.Since(t0).Seconds()
}

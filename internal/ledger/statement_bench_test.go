package ledger

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/testdb"
)

// BenchmarkWriteStatement measures, in one run on one PostgreSQL, what the
// single-entry write statement (recordSQL) costs the database alone: its
// arguments built beforehand, sent from 8 connections, each on its own grant,
// one statement per transaction, no gRPC, no sealer, no grouping; then the
// same through the group committer; against raw single-row INSERTs. It is
// the ceiling RecordTransaction can reach on the machine.
//
//	go test -run '^$' -bench WriteStatement -benchtime 3x ./internal/ledger/
func BenchmarkWriteStatement(b *testing.B) {
	db := testdb.New(b)
	ctx := context.Background()
	const clients, perClient = 8, 500
	donor, impl, roadmap := uuid.NewString(), uuid.NewString(), uuid.NewString()
	grants := make([]*Grant, clients)
	if _, err := db.Owner.Exec(ctx, `INSERT INTO organizations (id, name, kind) VALUES ($1, 'donor', 'DONOR'), ($2, 'ngo', 'IMPLEMENTER')`,
		donor, impl); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Owner.Exec(ctx, `INSERT INTO roadmaps (id, country, title, start_date, end_date, reporting_currency)
		VALUES ($1, 'AFG', 'bench', '2024-01-01', '2030-12-31', 'USD')`, roadmap); err != nil {
		b.Fatal(err)
	}
	for i := range grants {
		g := &Grant{ID: uuid.NewString(), RoadmapID: roadmap, DonorOrgID: donor, RecipientOrgID: impl, Currency: "USD", ReportingCurrency: "USD"}
		if _, err := db.Owner.Exec(ctx, `INSERT INTO grants (id, roadmap_id, donor_org_id, recipient_org_id, reference, title, currency, start_date, end_date)
			VALUES ($1, $2, $3, $4, $5, 'bench', 'USD', '2024-01-01', '2030-12-31')`,
			g.ID, roadmap, donor, impl, fmt.Sprint("G", i)); err != nil {
			b.Fatal(err)
		}
		if _, err := db.Owner.Exec(ctx, `INSERT INTO grant_balances (grant_id, pledged, committed) VALUES ($1, 1e12, 1e12)`, g.ID); err != nil {
			b.Fatal(err)
		}
		grants[i] = g
	}
	s := New(db.App)
	rates, err := s.rates.Current(ctx, db.App)
	if err != nil {
		b.Fatal(err)
	}
	op := auth.WithPrincipal(ctx, auth.Principal{TokenID: "bench", Role: auth.Admin})
	one := decimal.RequireFromString("1.00")
	args := func() [][][]any {
		out := make([][][]any, clients)
		for c, g := range grants {
			for i := range perClient {
				t := Transaction{ID: uuid.Must(uuid.NewV7()).String(), GrantID: g.ID, Type: Disbursement, Bucket: Disbursement,
					Amount: one, Currency: "USD", AgreementAmount: one, AgreementCcy: "USD", ReportingAmount: one, ReportingCcy: "USD",
					AgreementRate: decimal.NewFromInt(1), ReportingRate: decimal.NewFromInt(1),
					ValueDate: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), Reference: fmt.Sprint("P", c, "-", i),
					RecordedBy: "bench", RecordedRole: "admin"}
				a, err := entryArgs(op, t, g, "token:bench", uuid.NewString(), make([]byte, 32), rates)
				if err != nil {
					b.Fatal(err)
				}
				out[c] = append(out[c], a)
			}
		}
		return out
	}
	parallel := func(fn func(c, i int) error) float64 { return testdb.Rate(b, clients, perClient, fn) }
	raw := db.RawInsert(b)
	statement := func(a [][][]any) func(c, i int) error {
		return func(c, i int) error {
			r, err := writeAlone(ctx, db.App, a[c][i])
			if err == nil && r.outcome != "RECORDED" {
				err = fmt.Errorf("outcome %s", r.outcome)
			}
			return err
		}
	}
	grouped := func(a [][][]any) func(c, i int) error {
		return func(c, i int) error {
			r, err := s.commit.write(grants[c].ID, a[c][i])
			if err == nil && r.outcome != "RECORDED" {
				err = fmt.Errorf("outcome %s", r.outcome)
			}
			return err
		}
	}
	parallel(raw) // warm-up
	parallel(statement(args()))
	for b.Loop() {
		alone, inGroups := args(), args()
		rawRate := parallel(raw)
		aloneRate := parallel(statement(alone))
		groupRate := parallel(grouped(inGroups))
		rawRate = (rawRate + parallel(raw)) / 2
		b.ReportMetric(aloneRate/rawRate, "alone_ratio")
		b.ReportMetric(groupRate/rawRate, "grouped_ratio")
		b.Logf("8 connections: raw single-row INSERT %.0f/s; the write statement alone %.0f/s (%.2f), grouped %.0f/s (%.2f)",
			rawRate, aloneRate, aloneRate/rawRate, groupRate, groupRate/rawRate)
	}
}

package ledger_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/ledger"
)

func TestBatchRecordIsAllOrNothing(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	a := w.grant("USD", "A", "0")
	b := w.grant("EUR", "B", "0")
	admin := as(auth.Admin, "")
	count := func(sql string) (n int) {
		if err := w.db.Owner.QueryRow(context.Background(), sql).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	entries := []ledger.EntryInput{
		{GrantID: a.ID, Type: "COMMITMENT", Amount: "500.00", Currency: "USD", ValueDate: "2024-02-01"},
		{GrantID: a.ID, Type: "DISBURSEMENT", Amount: "200.00", Currency: "USD", ValueDate: "2024-02-02", Reference: "A-1"},
		{GrantID: b.ID, Type: "COMMITMENT", Amount: "90.00", Currency: "EUR", ValueDate: "2024-02-01"},
	}
	got := must(w.l.BatchRecord(admin, entries, "batch-1"))
	if len(got) != 3 || got[1].Type != "DISBURSEMENT" {
		t.Fatalf("batch recorded %+v", got)
	}
	eq(t, "EUR commitment in USD", got[2].ReportingAmount, "100.00") // 90 / 0.90
	// One audit event per grant the batch touched.
	if n := count(`SELECT count(*) FROM audit_events WHERE entity_type = 'transaction_batch'`); n != 2 {
		t.Fatalf("%d batch audit events, want 2", n)
	}
	again := must(w.l.BatchRecord(admin, entries, "batch-1"))
	for i := range got {
		if again[i].ID != got[i].ID {
			t.Fatalf("replay returned other entries")
		}
		// Each entry names its batch, whose audit events carry the same id,
		// fresh from the batch and read back alike.
		if got[i].BatchID == "" || got[i].BatchID != got[0].BatchID || again[i].BatchID != got[i].BatchID {
			t.Fatalf("entry %d: batch id %q, replayed %q, first %q", i, got[i].BatchID, again[i].BatchID, got[0].BatchID)
		}
		if got[i].RecordedAt.IsZero() || !got[i].RecordedAt.Equal(again[i].RecordedAt) {
			t.Fatalf("entry %d: recorded at %v, read back %v", i, got[i].RecordedAt, again[i].RecordedAt)
		}
	}
	if n := count(`SELECT count(*) FROM audit_events WHERE entity_type = 'transaction_batch' AND entity_id = '` + got[0].BatchID + `'`); n != 2 {
		t.Fatalf("%d audit events carry the batch id, want 2", n)
	}
	if single := w.record(w.donor(b), b, "DISBURSEMENT", "1.00", "EUR", "2024-02-03", "B-0"); single.BatchID != "" || single.RecordedAt.IsZero() {
		t.Fatalf("an entry recorded alone: batch id %q, recorded at %v", single.BatchID, single.RecordedAt)
	}
	before := count(`SELECT (SELECT count(*) FROM transactions) + (SELECT count(*) FROM audit_events)`)

	// Entries are applied in order: the second breaks disbursed ≤ committed, so none is written.
	_, err := w.l.BatchRecord(admin, []ledger.EntryInput{
		{GrantID: a.ID, Type: "DISBURSEMENT", Amount: "100.00", Currency: "USD", ValueDate: "2024-03-01", Reference: "A-2"},
		{GrantID: a.ID, Type: "DISBURSEMENT", Amount: "200.01", Currency: "USD", ValueDate: "2024-03-01", Reference: "A-3"},
	}, "batch-2")
	if !errors.Is(err, apperr.ErrFailedPrecondition) {
		t.Fatalf("over-disbursing batch: %v", err)
	}
	_, err = w.l.BatchRecord(admin, []ledger.EntryInput{entries[0], {GrantID: a.ID, Type: "DISBURSEMENT", Amount: "1.001", Currency: "USD", ValueDate: "2024-03-01"}}, "batch-3")
	var inv *apperr.InvalidError
	if !errors.As(err, &inv) || inv.Violations[0].Field != "transactions[1].amount.amount" {
		t.Fatalf("bad second entry: %v", err)
	}
	if after := count(`SELECT (SELECT count(*) FROM transactions) + (SELECT count(*) FROM audit_events)`); after != before {
		t.Fatalf("refused batches wrote %d rows", after-before)
	}
	// A later batch may reverse an entry of an earlier one.
	withReversal := must(w.l.BatchRecord(admin, []ledger.EntryInput{
		{GrantID: a.ID, Type: "DISBURSEMENT", Amount: "50.00", Currency: "USD", ValueDate: "2024-03-01", Reference: "A-4"},
	}, "batch-4"))
	must(w.l.BatchRecord(admin, []ledger.EntryInput{
		{GrantID: a.ID, Type: "REVERSAL", ReversesID: withReversal[0].ID, ValueDate: "2024-03-02"},
	}, "batch-5"))
	// An entry is reversed once: not again by a later batch, nor twice in one.
	a5 := withReversal[0].ID
	if _, err := w.l.BatchRecord(admin, []ledger.EntryInput{{GrantID: a.ID, Type: "REVERSAL", ReversesID: a5, ValueDate: "2024-03-03"}}, "batch-6"); !errors.Is(err, apperr.ErrFailedPrecondition) {
		t.Fatalf("reversing a reversed entry in a batch: %v", err)
	}
	twice := must(w.l.BatchRecord(admin, []ledger.EntryInput{
		{GrantID: a.ID, Type: "DISBURSEMENT", Amount: "5.00", Currency: "USD", ValueDate: "2024-03-01", Reference: "A-5"}}, "batch-7"))
	if _, err := w.l.BatchRecord(admin, []ledger.EntryInput{
		{GrantID: a.ID, Type: "REVERSAL", ReversesID: twice[0].ID, ValueDate: "2024-03-03"},
		{GrantID: a.ID, Type: "REVERSAL", ReversesID: twice[0].ID, ValueDate: "2024-03-03"},
	}, "batch-8"); !errors.Is(err, apperr.ErrFailedPrecondition) {
		t.Fatalf("reversing one entry twice in a batch: %v", err)
	}
	must(w.l.BatchRecord(admin, []ledger.EntryInput{{GrantID: a.ID, Type: "REVERSAL", ReversesID: twice[0].ID, ValueDate: "2024-03-03"}}, "batch-9"))
	r := must(w.l.Reconcile(coord, a.ID, time.Time{}))
	eq(t, "A disbursed", r.Agreement.Disbursed, "200.00")
	checkReplay(t, w)
}

func TestRecordRetryAndReuseOfRequestID(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	g := w.grant("USD", "RETRY", "0")
	dn := w.donor(g)
	in := ledger.EntryInput{GrantID: g.ID, Type: "COMMITMENT", Amount: "100.00", Currency: "USD", ValueDate: "2024-02-01"}
	first := must(w.l.RecordTransaction(dn, in, "same"))
	again := must(w.l.RecordTransaction(dn, in, "same"))
	if again.ID != first.ID || !again.Amount.Equal(first.Amount) {
		t.Fatalf("retry returned %+v, want %+v", again, first)
	}
	in.Amount = "200.00"
	if _, err := w.l.RecordTransaction(dn, in, "same"); !errors.Is(err, apperr.ErrAlreadyExists) {
		t.Fatalf("same request id, other amount: %v", err)
	}
	r := must(w.l.Reconcile(coord, g.ID, time.Time{}))
	eq(t, "committed", r.Agreement.Committed, "100.00")
	checkReplay(t, w)
}

// What a create answers is what a read or a retry answers later.
func TestCreateAnswersWhatIsStored(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	in := ledger.GrantInput{RoadmapID: w.roadmap.ID, DonorOrgID: w.donors["USD"], RecipientOrgID: w.impl, Reference: "ST-1",
		Title: "Stored", Currency: "USD", Pledged: "10.00", PledgedCurrency: "USD", StartDate: "2024-01-01", EndDate: "2024-12-31"}
	donor := as(auth.Donor, w.donors["USD"])
	g := must(w.l.CreateGrant(donor, in, "st-1"))
	again := must(w.l.CreateGrant(donor, in, "st-1"))
	if g.CreatedAt.IsZero() || !g.CreatedAt.Equal(again.CreatedAt) {
		t.Errorf("created at %v, on retry %v", g.CreatedAt, again.CreatedAt)
	}
	m := must(w.l.CreateMilestone(coord, w.roadmap.ID, ledger.MilestoneInput{Code: "M-9", Title: "Survey", ActivityType: "SURVEY",
		Region: "  AF-KAN ", TargetUnit: " m2 ", FundingRequirement: "1.00", FundingCurrency: "USD"}, "m-9"))
	if m.Region != "AF-KAN" || m.TargetUnit != "m2" {
		t.Errorf("milestone stored region %q, unit %q; want them trimmed as validated", m.Region, m.TargetUnit)
	}
}

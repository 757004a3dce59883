package imports

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/imports/iati"
	"github.com/tranche-ledger/tranche/internal/isocodes"
	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/internal/org"
	"github.com/tranche-ledger/tranche/internal/roadmap"
)

// Placeholder parties for IATI transactions whose side names no
// organisation and whose activity does not either.
const (
	unreportedProvider = "Provider not reported in IATI"
	unreportedReceiver = "Receiver not reported in IATI"
)

// iatiSource is the activities of an import's files that can be imported,
// and the counting report over all of them.
type iatiSource struct {
	acts     []*iati.Activity                  // one copy of each activity: the one imported
	report   *iati.Report                      // over every copy, as published
	excluded map[*iati.Activity]map[int]string // transactions the counting rules leave out, by position: why
}

// parseIATI reads every file. A file that cannot be read is a problem naming
// it; an activity with bad fields is a problem per field (the import goes on
// without the activity only with SkipInvalid).
func parseIATI(req Request, rep *Report) (*iatiSource, bool) {
	src := &iatiSource{excluded: map[*iati.Activity]map[int]string{}}
	var probs []Problem
	fileFailed := false
	for i, f := range req.Files {
		file, err := iati.Parse(bytes.NewReader(f.Data))
		if err != nil {
			rep.Problems = append(rep.Problems, Problem{Record: "file " + f.Name, Message: err.Error()})
			fileFailed = true
			continue
		}
		bad := map[string]bool{}
		for _, ae := range file.Errors {
			bad[ae.Activity] = true
			for _, e := range ae.Errs {
				field := e.Field
				if e.Transaction > 0 {
					field = fmt.Sprintf("transaction[%d].%s", e.Transaction, e.Field)
				}
				msg := "invalid"
				if e.Err != nil {
					msg = e.Err.Error()
				}
				probs = append(probs, Problem{Record: "activity " + orUnnamed(ae.Activity, f.Name, e.Line), Field: field,
					Message: fmt.Sprintf("%s (line %d)", msg, e.Line)})
			}
		}
		n := 0
		for _, a := range file.Activities {
			if !bad[a.Identifier] {
				src.acts = append(src.acts, a)
				n++
			}
		}
		rep.Files[i].Records = n
	}
	if fileFailed {
		return nil, false
	}
	if len(probs) > 0 && !req.SkipInvalid {
		rep.Problems = append(rep.Problems, probs...)
		return nil, false
	}
	rep.Skipped = append(rep.Skipped, probs...)
	// The totals as published are over every copy; an activity in the
	// import twice is imported once, from its latest copy (the latest
	// @last-updated-datetime, the first on a tie: the counting rule of the
	// source layer), and the other copies' transactions are listed.
	src.report = iati.Summarise(src.acts)
	keep := map[string]*iati.Activity{}
	for _, a := range src.acts {
		if k, ok := keep[a.Identifier]; !ok || newerCopy(a, k) {
			keep[a.Identifier] = a
		}
	}
	var once []*iati.Activity
	for _, a := range src.acts {
		if keep[a.Identifier] != a {
			for _, t := range a.Transactions {
				rep.NotCounted = append(rep.NotCounted, Note{Record: fmt.Sprintf("activity %s transaction %d (an earlier copy)", a.Identifier, t.Position),
					Type: t.LedgerType, Amount: t.Amount, Currency: t.Currency,
					Reason: "duplicate-activity: the activity is in the import again with a later @last-updated-datetime; that copy is imported"})
			}
			continue
		}
		once = append(once, a)
	}
	src.acts = once
	for _, x := range iati.Summarise(once).Excluded {
		for _, a := range once {
			if a.Identifier == x.Activity {
				if src.excluded[a] == nil {
					src.excluded[a] = map[int]string{}
				}
				src.excluded[a][x.Position] = x.Note
			}
		}
	}
	for _, a := range src.acts {
		rep.Records += len(a.Transactions)
	}
	return src, true
}

func orUnnamed(id, file string, line int) string {
	if id != "" {
		return id
	}
	return fmt.Sprintf("without iati-identifier (%s line %d)", file, line)
}

// newerCopy tells whether activity copy a supersedes b: a later
// @last-updated-datetime (compared as times), else the earlier copy stays.
func newerCopy(a, b *iati.Activity) bool {
	return olderVersion(b.Provenance.RecordVersion, a.Provenance.RecordVersion)
}

// iatiRoadmap proposes the roadmap an IATI import creates when none is given:
// the recipient country most activities name, the activities' period, and the
// currency most transactions are in.
func iatiRoadmap(src *iatiSource, hint RoadmapHint) (roadmap.Input, error) {
	in := roadmap.Input{Country: hint.Country, Title: hint.Title}
	countries, currencies := map[string]int{}, map[string]int{}
	var first, last time.Time
	see := func(d time.Time) {
		if first.IsZero() || d.Before(first) {
			first = d
		}
		if d.After(last) {
			last = d
		}
	}
	for _, a := range src.acts {
		for _, c := range a.RecipientCountries {
			if a3, ok := isocodes.Alpha3(strings.ToUpper(c)); ok {
				countries[a3]++
			}
		}
		for _, d := range a.Dates {
			if t, err := day(d.Date); err == nil && plausible(t) {
				see(t)
			}
		}
		for _, t := range a.Transactions {
			currencies[t.Currency]++
			if d, err := day(t.ValueDate); err == nil && plausible(d) {
				see(d)
			}
		}
	}
	if in.Country == "" {
		in.Country = most(countries)
		if in.Country == "" {
			return in, errors.New("the activities name no recipient country: give the roadmap's country")
		}
	}
	in.ReportingCurrency = most(currencies)
	if in.ReportingCurrency == "" {
		in.ReportingCurrency = "USD"
	}
	if first.IsZero() {
		first, last = today(), today()
	}
	in.StartDate, in.EndDate = first, last
	if in.Title == "" {
		in.Title = fmt.Sprintf("IATI activities: %s %d–%d", in.Country, first.Year(), last.Year())
	}
	return in, nil
}

// most is the key with the highest count (the smallest key on a tie).
func most(m map[string]int) string {
	best := ""
	for k, n := range m {
		if best == "" || n > m[best] || (n == m[best] && k < best) {
			best = k
		}
	}
	return best
}

// planIATI maps activities onto organisations, grants and entries: one grant
// per activity and provider → receiver pair, one entry per journaled
// transaction (see the package doc).
func planIATI(src *iatiSource, milestones map[string]uuid.UUID, rep *Report) (*plan, error) {
	pl := newPlan(IATI)
	for _, t := range src.report.Raw {
		counted := decimal.Zero
		for _, c := range src.report.Counted {
			if c.Type == t.Type && c.Currency == t.Currency {
				counted = c.Amount
			}
		}
		rep.Totals = append(rep.Totals, Total{Name: fmt.Sprintf("%d %s: as published / counted", t.Type, t.TypeName),
			Currency: t.Currency, Source: t.Amount, Computed: counted, Matches: t.Amount.Equal(counted)})
	}
	rep.Notes = append(rep.Notes, src.report.Warnings...)
	for _, a := range src.acts {
		if err := planActivity(pl, src, a, iatiMilestone(a, milestones), rep); err != nil {
			return nil, err
		}
	}
	pl.settleKinds()
	return pl, nil
}

// iatiParties are a transaction's provider and receiver: as the transaction
// names them, else the activity's funding and implementing organisations,
// else the reporting organisation on the side that reports, else a
// placeholder. The fields taken from elsewhere are listed.
func iatiParties(a *iati.Activity, t *iati.Transaction) (provider, receiver org.Organization, inferred []string) {
	var funding, implementing iati.Org
	for _, p := range a.Participating {
		if p.Role == "Funding" && funding.Name == "" && funding.Ref == "" {
			funding = p
		}
		if p.Role == "Implementing" && implementing.Name == "" && implementing.Ref == "" {
			implementing = p
		}
	}
	pick := func(side string, own, activity iati.Org, reportsHere bool, placeholder string) org.Organization {
		switch {
		case named(own):
			return iatiOrg(own)
		case reportsHere && named(a.ReportingOrg):
			inferred = append(inferred, side+": the reporting organisation")
			return iatiOrg(a.ReportingOrg)
		case named(activity):
			inferred = append(inferred, side+": the activity's participating organisation")
			return iatiOrg(activity)
		}
		inferred = append(inferred, side+": not reported")
		return org.Organization{Name: placeholder}
	}
	outgoing := t.Direction != iati.Incoming
	provider = pick("donorOrgId", t.Provider, funding, outgoing, unreportedProvider)
	receiver = pick("recipientOrgId", t.Receiver, implementing, !outgoing, unreportedReceiver)
	return provider, receiver, inferred
}

func named(o iati.Org) bool { return o.Ref != "" || o.Name != "" }

// iatiOrg is the organisation an IATI element names: by its identifier when
// it is a well-formed one, else by name.
func iatiOrg(o iati.Org) org.Organization {
	out := org.Organization{Name: strings.TrimSpace(o.Name)}
	ref := strings.TrimSpace(o.Ref)
	if ref != "" && (org.Organization{Name: "x", Kind: "DONOR", IATIRef: ref}).Validate() == nil {
		out.IATIRef = ref
	}
	if out.Name == "" {
		out.Name = ref
	}
	if r := []rune(out.Name); len(r) > 300 {
		out.Name = string(r[:299]) + "…"
	}
	return out
}

// iatiReference is the grant reference of an activity's grant to one
// receiver: the iati-identifier, with the receiver when an activity pays
// several, cut to the ledger's 100 characters with a digest keeping it unique.
func iatiReference(id string, receiver org.Organization) string {
	ref := id + " → " + orgKey(receiver)
	if r := []rune(ref); len(r) > 100 {
		sum := sha256.Sum256([]byte(ref))
		ref = string(r[:83]) + "…" + hex.EncodeToString(sum[:])[:16]
	}
	return ref
}

// iatiPeriod is an activity's period: actual dates over planned ones, then
// widened to its transactions' dates. Activity dates outside the ledger's
// range (publishers write 1900-01-01 for "unknown") are left out and listed.
func iatiPeriod(a *iati.Activity) (start, end time.Time, ignored []string) {
	for _, kinds := range [][2]string{{"start-actual", "end-actual"}, {"start-planned", "end-planned"}} {
		for _, d := range a.Dates {
			t, err := day(d.Date)
			if err != nil {
				continue
			}
			if !plausible(t) {
				if d.Kind == kinds[0] || d.Kind == kinds[1] {
					ignored = append(ignored, d.Kind+" "+d.Date)
				}
				continue
			}
			if d.Kind == kinds[0] && start.IsZero() {
				start = t
			}
			if d.Kind == kinds[1] && end.IsZero() {
				end = t
			}
		}
	}
	for _, t := range a.Transactions {
		d, err := day(t.ValueDate)
		if err != nil || !plausible(d) {
			continue
		}
		if start.IsZero() || d.Before(start) {
			start = d
		}
		if end.IsZero() || d.After(end) {
			end = d
		}
	}
	if start.IsZero() {
		start = today()
	}
	if end.Before(start) {
		end = start
	}
	if end.After(start.AddDate(ledger.MaxGrantYears, 0, 0)) {
		end = start.AddDate(ledger.MaxGrantYears, 0, 0)
	}
	return start, end, ignored
}

// iatiMilestone is the roadmap milestone whose code is one of the
// activity's sector codes, when exactly one matches.
func iatiMilestone(a *iati.Activity, milestones map[string]uuid.UUID) uuid.UUID {
	found := uuid.Nil
	for _, s := range a.Sectors {
		if id, ok := milestones[strings.ToLower(strings.TrimSpace(s.Code))]; ok && s.Code != "" {
			if found != uuid.Nil && found != id {
				return uuid.Nil
			}
			found = id
		}
	}
	return found
}

// plausible tells whether a day is within the ledger's range of dates.
func plausible(d time.Time) bool {
	return !d.Before(apperr.Earliest) && !d.After(apperr.Latest)
}

// today is the current UTC day.
func today() time.Time {
	return time.Now().UTC().Truncate(24 * time.Hour)
}

// activityPlan is the running state of one activity's planning.
type activityPlan struct {
	a   *iati.Activity
	rec *planRecord
	ms  uuid.UUID
	// available is the commitment not yet disbursed per grant and
	// currency, to imply the commitment a disbursement needs.
	available map[corrKey]decimal.Decimal
	// positives are the entries a later negative value may correct.
	positives map[corrKey][]*planEntry
	corrected map[*planEntry]bool
}

// corrKey is one grant (position in the plan) and one currency; with a type
// it groups the entries a negative value may correct.
type corrKey struct {
	grant    int
	typ, cur string
}

// planActivity plans one activity as one record: a re-import compares and
// corrects the activity whole (its transactions depend on each other: a
// negative value corrects an earlier one, a disbursement may imply a
// commitment). Expenditures come second: an expenditure belongs to the
// grant its spender receives in this activity, which the other
// transactions name.
func planActivity(pl *plan, src *iatiSource, a *iati.Activity, ms uuid.UUID, rep *Report) error {
	ap := &activityPlan{a: a, ms: ms, available: map[corrKey]decimal.Decimal{},
		positives: map[corrKey][]*planEntry{}, corrected: map[*planEntry]bool{}}
	ap.rec = &planRecord{source: source{RecordID: a.Identifier, Version: a.Provenance.RecordVersion,
		Position: fmt.Sprintf("line %d", a.Provenance.Line), FileSHA256: a.Provenance.FileSHA256},
		label: "activity " + a.Identifier}
	pl.records = append(pl.records, ap.rec)
	// Corrections point at entries planned before them, so the slice must
	// not move: a transaction adds at most two entries.
	ap.rec.entries = make([]planEntry, 0, 3*len(a.Transactions))
	received := map[int]map[int]bool{} // recipient org → the activity's grants it receives
	start, end, ignored := iatiPeriod(a)
	title := a.Title
	var gInferred []string
	if len(ignored) > 0 {
		gInferred = append(gInferred, "startDate, endDate: from the other dates; activity-date outside 1990–2099 left out: "+strings.Join(ignored, ", "))
	}
	if title == "" {
		title = "IATI activity " + a.Identifier
		gInferred = append(gInferred, "title: the activity has none")
	}
	for pass := range 2 {
		for k := range a.Transactions {
			t := &a.Transactions[k]
			if (t.LedgerType == ledger.Expenditure) != (pass == 1) {
				continue
			}
			label := fmt.Sprintf("activity %s transaction %d", a.Identifier, t.Position)
			notCounted := func(why string) {
				rep.NotCounted = append(rep.NotCounted, Note{Record: label, Type: t.LedgerType, Reason: why, Amount: t.Amount, Currency: t.Currency})
			}
			if why, ok := src.excluded[a][t.Position]; ok {
				notCounted(why)
				continue
			}
			if !t.Journaled {
				notCounted(t.NotJournaledReason)
				continue
			}
			if t.Amount.IsZero() {
				notCounted("value 0: nothing to journal")
				continue
			}
			sv := map[string]string{}
			for f, v := range t.Provenance.Verbatim {
				sv[f] = v
			}
			provider, receiver, partyInferred := iatiParties(a, t)
			gi := -1
			if t.LedgerType == ledger.Expenditure {
				// The spender's grant in this activity, when it has one.
				if spender, ok := pl.orgIdx[orgKey(provider)]; ok && len(received[spender]) > 0 {
					gs := received[spender]
					if len(gs) > 1 {
						notCounted(fmt.Sprintf("expenditure of %s, which receives this activity's money under %d grants: IATI reports it for the activity, not per funder",
							provider.Name, len(gs)))
						continue
					}
					for g := range gs {
						gi = g
					}
				}
			}
			if gi < 0 {
				if orgKey(provider) == orgKey(receiver) {
					if t.LedgerType == ledger.Expenditure {
						notCounted(fmt.Sprintf("expenditure of %s with no receiver and no grant of the activity paying it", provider.Name))
						continue
					}
					// An organisation's own money into its activity.
					provider = org.Organization{Name: fitName(receiver.Name, " (own funds)"), Kind: "DONOR"}
					partyInferred = append(partyInferred, "donorOrgId: the receiver's own funds (the provider is the receiver)")
				}
				di := pl.org(provider, true, ap.rec.source, "kind: from the organisation's role in the activities")
				ri := pl.org(receiver, false, ap.rec.source, "kind: from the organisation's role in the activities")
				cur := a.DefaultCurrency
				if cur == "" {
					cur = t.Currency
				}
				gsv := map[string]string{}
				gi = pl.grant(planGrant{donor: di, recipient: ri, rec: ap.rec.source, inferred: append(slices.Clone(gInferred), partyInferred...),
					sourceValues: gsv, in: ledger.GrantInput{Reference: iatiReference(a.Identifier, receiver), Title: fit("title", title, 300, gsv),
						Currency: cur, Pledged: amount(decimal.Zero, cur), StartDate: start, EndDate: end}})
				if received[ri] == nil {
					received[ri] = map[int]bool{}
				}
				received[ri][gi] = true
			}
			if t.Rounded {
				rep.Rounded = append(rep.Rounded, Rounded{Record: label, Field: "value", Source: t.SourceValue, Stored: t.Amount.String()})
			}
			if err := ap.transaction(t, gi, label, sv); err != nil {
				return err
			}
		}
	}
	return nil
}

// transaction adds the entries of one journaled transaction to the
// activity's record.
func (ap *activityPlan) transaction(t *iati.Transaction, gi int, label string, sv map[string]string) error {
	a := ap.a
	vd, err := day(t.ValueDate)
	if err != nil {
		return invalid(label, "value-date", "%q is not a date", t.ValueDate)
	}
	if !plausible(vd) {
		return invalid(label, "value-date", "%s is outside %s to %s", t.ValueDate, apperr.Earliest.Format(time.DateOnly), apperr.Latest.Format(time.DateOnly))
	}
	inferred := slices.Clone(t.Provenance.Inferred)
	if ap.ms != uuid.Nil {
		inferred = append(inferred, "milestoneId: the milestone whose code is the activity's sector")
	}
	ref := ""
	if t.LedgerType == ledger.Expenditure {
		// An expenditure carries a document reference; IATI gives none, so
		// the transaction's own place stands for it.
		ref = fit("reference", a.Identifier+"#"+strconv.Itoa(t.Position), 200, sv)
		inferred = append(inferred, "reference: the activity and transaction position (IATI gives no document reference)")
	}
	note := fit("note", strings.TrimSpace(fmt.Sprintf("IATI %s transaction %d (%s): %s", a.Identifier, t.Position, t.TypeName, t.Description)), 2000, sv)
	pos := fmt.Sprintf("transaction %d, line %d", t.Position, t.Provenance.Line)
	add := func(in ledger.EntryInput, inferred []string) *planEntry {
		ap.rec.entries = append(ap.rec.entries, planEntry{grant: gi, label: label, position: pos, in: in, inferred: inferred, sourceValues: sv})
		return &ap.rec.entries[len(ap.rec.entries)-1]
	}
	e := ledger.EntryInput{Type: t.LedgerType, Amount: amount(t.Amount, t.Currency), ValueDate: vd, Reference: ref,
		Note: note, MilestoneID: ap.ms}
	avail := corrKey{grant: gi, cur: t.Currency}
	if t.Amount.IsNegative() && t.LedgerType != ledger.Pledge && t.LedgerType != ledger.Commitment {
		// IATI's correction of an earlier disbursement, receipt or
		// expenditure (money returned, an overstatement withdrawn) becomes
		// what the ledger does: a REVERSAL of the latest earlier entry of the
		// same grant, type and currency at least as large, and a new entry
		// for what remains of it.
		abs := t.Amount.Neg()
		list := ap.positives[corrKey{gi, t.LedgerType, t.Currency}]
		var target *planEntry
		for i := len(list) - 1; i >= 0; i-- {
			if !ap.corrected[list[i]] && list[i].in.Amount.Value.GreaterThanOrEqual(abs) {
				target = list[i]
				break
			}
		}
		if target == nil {
			return invalid(label, "value", "a negative %s (%s %s) corrects no earlier %s of the activity at least as large: the ledger corrects by reversing a whole entry",
				t.TypeName, t.Amount, t.Currency, strings.ToLower(t.TypeName))
		}
		ap.corrected[target] = true
		why := fmt.Sprintf("type: REVERSAL of an earlier %s of %s %s and a new entry for the remainder (IATI reports the correction as a negative value)",
			strings.ToLower(t.LedgerType), target.in.Amount.Value, t.Currency)
		rev := add(ledger.EntryInput{Type: ledger.Reversal, ValueDate: vd, Note: note}, addInferred(slices.Clone(inferred), why))
		rev.reverses = target
		if rest := target.in.Amount.Value.Sub(abs); rest.IsPositive() {
			again := target.in
			again.Amount = amount(rest, t.Currency)
			again.ValueDate, again.Note = vd, note
			ap.keep(add(again, addInferred(slices.Clone(inferred), why, "amount: the corrected entry's amount less the correction")))
		}
		if t.LedgerType == ledger.Disbursement {
			ap.available[avail] = ap.available[avail].Add(abs)
		}
		return nil
	}
	switch t.LedgerType {
	case ledger.Commitment:
		ap.available[avail] = ap.available[avail].Add(t.Amount)
	case ledger.Disbursement:
		// IATI files often report disbursements without the commitment
		// behind them; the journal needs one first. Commitments are counted
		// per currency; a disbursement in a currency the grant has no
		// commitment in, while it has some in another, implies nothing (the
		// ledger converts and checks): money is never committed twice.
		short := t.Amount.Sub(ap.available[avail])
		if ap.available[avail].IsZero() && ap.committedElsewhere(gi, t.Currency) {
			short = decimal.Zero
		}
		if short.IsPositive() {
			c := e
			c.Type, c.Amount = ledger.Commitment, amount(short, t.Currency)
			add(c, addInferred(slices.Clone(inferred), "type: COMMITMENT implied by a disbursement the activity reports no commitment for"))
			ap.available[avail] = ap.available[avail].Add(short)
		}
		ap.available[avail] = ap.available[avail].Sub(t.Amount)
	}
	ap.keep(add(e, inferred))
	return nil
}

// keep notes a positive disbursement, receipt or expenditure as an entry a
// later negative value may correct.
func (ap *activityPlan) keep(e *planEntry) {
	switch e.in.Type {
	case ledger.Disbursement, ledger.Receipt, ledger.Expenditure:
		if e.in.Amount.Value.IsPositive() {
			k := corrKey{e.grant, e.in.Type, e.in.Amount.Currency}
			ap.positives[k] = append(ap.positives[k], e)
		}
	}
}

// expected is what the counted totals become in the ledger, by ledger type
// and currency ("COMMITMENT EUR"): the journaled IATI types mapped.
func (src *iatiSource) expected() map[string]decimal.Decimal {
	out := map[string]decimal.Decimal{}
	for _, t := range src.report.Counted {
		if typ := iati.LedgerType(t.Type); typ != "" {
			k := typ + " " + t.Currency
			out[k] = out[k].Add(t.Amount)
		}
	}
	return out
}

// committedElsewhere tells whether the grant has commitment available in a
// currency other than cur.
func (ap *activityPlan) committedElsewhere(gi int, cur string) bool {
	for k, v := range ap.available {
		if k.grant == gi && k.cur != cur && v.IsPositive() {
			return true
		}
	}
	return false
}

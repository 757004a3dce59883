package imports

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/internal/money"
	"github.com/tranche-ledger/tranche/internal/org"
)

// A plan is what a source's records become, before anything is written:
// organisations, grants and journal entries, each entry tied to the source
// record it came from. FTS and IATI build one; write applies it.
type plan struct {
	kind    string
	orgs    []planOrg
	orgIdx  map[string]int // orgKey → position
	grants  []planGrant
	grantIx map[string]int // donor org key + "\x00" + reference → position
	// records in source order; each holds its entries.
	records []*planRecord
}

type planOrg struct {
	org.Organization
	funds, receives bool
	rec             source // the record it was first named in
	inferred        []string
}

type planGrant struct {
	donor, recipient int // positions in orgs
	in               ledger.GrantInput
	rec              source
	inferred         []string
	sourceValues     map[string]string
}

// planRecord is one source record (an FTS flow, an IATI activity: the unit
// a re-import compares and corrects) and the entries it becomes.
type planRecord struct {
	source
	label   string // how the report names it ("flow 204322", "activity X")
	entries []planEntry
}

type planEntry struct {
	grant int // position in the plan's grants
	// label and position name the entry's own place in the source where it
	// is finer than its record's (an IATI transaction); "" is the record's.
	label, position string
	in              ledger.EntryInput // GrantID filled when the grant exists
	inferred        []string
	sourceValues    map[string]string
	// reverses is the entry of this import a REVERSAL cancels (a source's
	// correction by negative value); it is recorded after every other entry,
	// once that one has its id.
	reverses *planEntry
	id       string // the recorded entry's id
}

// source names a record in its file.
type source struct {
	RecordID, Version, Position string
	FileSHA256                  string // hex
}

func newPlan(kind string) *plan {
	return &plan{kind: kind, orgIdx: map[string]int{}, grantIx: map[string]int{}}
}

// orgKey identifies an organisation of a source: by FTS id, by IATI
// identifier, else by name.
func orgKey(o org.Organization) string {
	switch {
	case o.FTSOrgID != "":
		return "fts:" + o.FTSOrgID
	case o.IATIRef != "":
		return "iati:" + o.IATIRef
	}
	return "name:" + strings.ToLower(strings.TrimSpace(o.Name))
}

// org adds (or finds) an organisation named by a record, in the role it plays.
func (p *plan) org(o org.Organization, funds bool, rec source, inferred ...string) int {
	k := orgKey(o)
	i, ok := p.orgIdx[k]
	if !ok {
		i = len(p.orgs)
		p.orgIdx[k] = i
		p.orgs = append(p.orgs, planOrg{Organization: o, rec: rec, inferred: inferred})
	}
	if funds {
		p.orgs[i].funds = true
	} else {
		p.orgs[i].receives = true
	}
	return i
}

// grant adds (or finds) the grant of a donor under a reference.
func (p *plan) grant(g planGrant) int {
	k := orgKey(p.orgs[g.donor].Organization) + "\x00" + g.in.Reference
	if i, ok := p.grantIx[k]; ok {
		pg := &p.grants[i]
		// A grant spans its records' dates.
		if g.in.StartDate.Before(pg.in.StartDate) {
			pg.in.StartDate = g.in.StartDate
		}
		if g.in.EndDate.After(pg.in.EndDate) {
			pg.in.EndDate = g.in.EndDate
		}
		return i
	}
	p.grantIx[k] = len(p.grants)
	p.grants = append(p.grants, g)
	return len(p.grants) - 1
}

// settleKinds gives each new organisation the kind its roles need: one that
// both funds and receives in the source is a pooled fund (it passes money
// on); a funder a donor; a recipient an implementer. A kind the source names
// (FTS "Pooled fund") is kept where it allows the roles.
func (p *plan) settleKinds() {
	for i := range p.orgs {
		o := &p.orgs[i]
		switch {
		case o.Kind != "" && (!o.funds || org.CanFund(o.Kind)) && (!o.receives || org.CanReceive(o.Kind)):
		case o.funds && o.receives:
			o.Kind = "POOLED_FUND"
		case o.funds:
			o.Kind = "DONOR"
		default:
			o.Kind = "IMPLEMENTER"
		}
	}
}

// contentHash is the hash of what a record becomes from its source: each
// entry's grant (donor, recipient, reference) and the entry, so a re-import
// tells an unchanged record from a changed one whatever the source's version
// says. The milestone is left out: it comes from the roadmap, not the
// source, and a milestone added later must not make an unchanged file a
// correction.
func (p *plan) contentHash(r *planRecord) []byte {
	type entry struct {
		Donor, Recipient, Grant                                  string
		Type, Amount, Currency, ValueDate, Reference, Note, Rate string
		Reverses                                                 int
	}
	pos := map[*planEntry]int{}
	for i := range r.entries {
		pos[&r.entries[i]] = i
	}
	var c []entry
	for i := range r.entries {
		e := &r.entries[i]
		g := p.grants[e.grant]
		x := entry{Donor: orgKey(p.orgs[g.donor].Organization), Recipient: orgKey(p.orgs[g.recipient].Organization),
			Grant: g.in.Reference, Type: e.in.Type, Amount: e.in.Amount.Value.String(), Currency: e.in.Amount.Currency,
			ValueDate: e.in.ValueDate.Format(time.DateOnly), Reference: e.in.Reference, Note: e.in.Note, Reverses: -1}
		if e.in.FxRate != nil {
			x.Rate = e.in.FxRate.String()
		}
		if e.reverses != nil {
			x.Reverses = pos[e.reverses]
		}
		c = append(c, x)
	}
	b, _ := json.Marshal(c) // plain strings and numbers: cannot fail
	h := sha256.Sum256(b)
	return h[:]
}

// fit cuts text to a field's limit (in characters), keeping the source text
// in sourceValues when it was cut.
func fit(field, s string, limit int, sourceValues map[string]string) string {
	if r := []rune(s); len(r) > limit {
		sourceValues[field] = s
		return string(r[:limit-1]) + "…"
	}
	return s
}

// day parses a YYYY-MM-DD date.
func day(s string) (time.Time, error) {
	return time.Parse(time.DateOnly, s)
}

// amount is a money.Amount of a value already rounded to its currency.
func amount(v decimal.Decimal, cur string) money.Amount {
	return money.Amount{Value: v, Currency: cur}
}

// addInferred appends a field name once.
func addInferred(list []string, names ...string) []string {
	for _, n := range names {
		if !slices.Contains(list, n) {
			list = append(list, n)
		}
	}
	return list
}

// recordLabel names a record for the report.
func recordLabel(kind, id string) string {
	switch kind {
	case FTS:
		return "flow " + id
	case IATI:
		return "activity " + id
	}
	return fmt.Sprintf("%s %s", kind, id)
}

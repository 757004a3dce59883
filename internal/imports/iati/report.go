package iati

import (
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/shopspring/decimal"
)

// File is a whole parsed file with its report.
type File struct {
	SHA256     string
	Activities []*Activity // every activity read, including those with errors
	Errors     []*ActivityError
	Report     *Report
}

// Parse reads a whole IATI file. A *SyntaxError (malformed or non-IATI file)
// is returned as the error; field errors of single activities are gathered in
// File.Errors (the activities stay in File.Activities, marked by the error) so
// the caller can refuse the file or skip them. The report counts only
// activities without errors.
func Parse(r io.Reader) (*File, error) {
	rd := NewReader(r)
	f := &File{}
	bad := map[*Activity]bool{}
	for {
		a, err := rd.Next()
		if err == io.EOF {
			break
		}
		var ae *ActivityError
		if errors.As(err, &ae) {
			f.Errors = append(f.Errors, ae)
			bad[a] = true
		} else if err != nil {
			return nil, err
		}
		f.Activities = append(f.Activities, a)
	}
	f.SHA256 = rd.SHA256()
	var good []*Activity
	for _, a := range f.Activities {
		a.Provenance.FileSHA256 = f.SHA256
		for i := range a.Transactions {
			a.Transactions[i].Provenance.FileSHA256 = f.SHA256
		}
		if !bad[a] {
			good = append(good, a)
		}
	}
	f.Report = Summarise(good)
	return f, nil
}

// Total is the sum of one transaction type in one currency.
type Total struct {
	Type     int // IATI 2.0x code
	TypeName string
	Currency string
	Amount   decimal.Decimal
	Count    int
}

// Pair is a parent activity and one of its components, both in the import.
type Pair struct {
	Parent, Component string
	Via               string // which related-activity declared it
}

// Link is a transaction naming another activity as provider or receiver.
type Link struct {
	Activity string
	Position int
	Type     int
	Field    string // provider-activity-id or receiver-activity-id
	Other    string // the activity named
	Self     bool   // names its own activity
	InImport bool   // the named activity is in this import
}

// Ref names one transaction with a note.
type Ref struct {
	Activity string
	Position int
	Type     int
	Currency string
	Amount   decimal.Decimal
	Source   string // source value text
	Note     string
}

// Report is the import report of the source layer.
type Report struct {
	Activities, Transactions int
	Raw                      []Total // every transaction as published (values rounded to minor units)
	Counted                  []Total // after the counting rules
	Pairs                    []Pair
	Links                    []Link
	Excluded                 []Ref // transactions left out of Counted, Note = rule and reason
	Rounded                  []Ref // values rounded to minor units, Source = the published text
	Corrections              []Ref // negative values
	NotJournaled             []Ref // types with no ledger meaning, Note = reason
	Warnings                 []string
}

// Rule names.
const (
	RuleParentComponent = "parent-component"
	RuleProviderLink    = "provider-link"
	RuleDuplicate       = "duplicate-activity"
)

type key struct {
	t   int
	cur string
}

// Summarise applies the counting rules (see doc.go) to activities read from
// one import and totals them per transaction type and currency.
func Summarise(acts []*Activity) *Report {
	rep := &Report{Activities: len(acts)}
	// byID holds the copy of each activity that counts: the one with the
	// latest @last-updated-datetime, the first on a tie.
	byID := map[string]*Activity{}
	for _, a := range acts {
		if old, dup := byID[a.Identifier]; dup {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("activity %s appears more than once; only the latest copy is counted", a.Identifier))
			if a.Provenance.RecordVersion <= old.Provenance.RecordVersion {
				continue
			}
		}
		byID[a.Identifier] = a
	}

	// Parent/component pairs, declared from either side.
	type pk struct{ p, c string }
	via := map[pk]string{}
	var order []pk
	add := func(p, c, how string) {
		k := pk{p, c}
		if old, ok := via[k]; ok {
			if old != how {
				via[k] = old + "; " + how
			}
			return
		}
		via[k] = how
		order = append(order, k)
	}
	for _, a := range acts {
		for _, r := range a.Related {
			if r.Ref == a.Identifier || byID[r.Ref] == nil {
				continue
			}
			switch r.Type {
			case 2:
				add(a.Identifier, r.Ref, "parent's related-activity type 2")
			case 1:
				add(r.Ref, a.Identifier, "component's related-activity type 1")
			}
		}
	}
	componentTypes := map[string]map[int]bool{} // parent → types its components report
	for _, k := range order {
		rep.Pairs = append(rep.Pairs, Pair{Parent: k.p, Component: k.c, Via: via[k]})
		p, c := byID[k.p], byID[k.c]
		if p.Hierarchy >= c.Hierarchy {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("parent %s (hierarchy %d) is not above its component %s (hierarchy %d)", k.p, p.Hierarchy, k.c, c.Hierarchy))
		}
		if componentTypes[k.p] == nil {
			componentTypes[k.p] = map[int]bool{}
		}
		for _, t := range c.Transactions {
			componentTypes[k.p][t.Type] = true
		}
	}

	raw, counted := map[key]*Total{}, map[key]*Total{}
	sum := func(m map[key]*Total, t *Transaction) {
		k := key{t.Type, t.Currency}
		if m[k] == nil {
			m[k] = &Total{Type: t.Type, TypeName: t.TypeName, Currency: t.Currency}
		}
		m[k].Amount = m[k].Amount.Add(t.Amount)
		m[k].Count++
	}
	for _, a := range acts {
		for i := range a.Transactions {
			t := &a.Transactions[i]
			rep.Transactions++
			ref := Ref{Activity: a.Identifier, Position: t.Position, Type: t.Type, Currency: t.Currency, Amount: t.Amount, Source: t.SourceValue}
			for _, x := range []struct {
				f, id string
			}{{"provider-activity-id", t.Provider.ActivityID}, {"receiver-activity-id", t.Receiver.ActivityID}} {
				if x.id != "" {
					rep.Links = append(rep.Links, Link{Activity: a.Identifier, Position: t.Position, Type: t.Type, Field: x.f, Other: x.id, Self: x.id == a.Identifier, InImport: byID[x.id] != nil})
				}
			}
			if t.Rounded {
				rep.Rounded = append(rep.Rounded, ref)
			}
			if t.Correction {
				r := ref
				r.Note = "negative value: a correction of earlier " + t.TypeName + " transactions"
				rep.Corrections = append(rep.Corrections, r)
			}
			if !t.Journaled {
				r := ref
				r.Note = t.NotJournaledReason
				rep.NotJournaled = append(rep.NotJournaled, r)
			}
			sum(raw, t)
			switch {
			case byID[a.Identifier] != a:
				r := ref
				r.Note = fmt.Sprintf("%s: activity %s appears again in this import with a later or equal @last-updated-datetime; only that copy is counted", RuleDuplicate, a.Identifier)
				rep.Excluded = append(rep.Excluded, r)
			case componentTypes[a.Identifier][t.Type]:
				r := ref
				r.Note = fmt.Sprintf("%s: %s is a parent whose components in this import report their own %s transactions; counted at component level", RuleParentComponent, a.Identifier, t.TypeName)
				rep.Excluded = append(rep.Excluded, r)
			case t.Direction == Incoming && t.Provider.ActivityID != "" && t.Provider.ActivityID != a.Identifier && byID[t.Provider.ActivityID] != nil:
				r := ref
				r.Note = fmt.Sprintf("%s: incoming from activity %s in this import; counted once, as that activity's outgoing transactions", RuleProviderLink, t.Provider.ActivityID)
				rep.Excluded = append(rep.Excluded, r)
			default:
				sum(counted, t)
			}
		}
	}
	rep.Raw, rep.Counted = sorted(raw), sorted(counted)
	return rep
}

func sorted(m map[key]*Total) []Total {
	out := make([]Total, 0, len(m))
	for _, t := range m {
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Type != out[j].Type {
			return out[i].Type < out[j].Type
		}
		return out[i].Currency < out[j].Currency
	})
	return out
}

package fts

// Report is what an import of FTS pages tells its user, before anything is
// written: the source's totals beside the import's, every variance, rounded
// value, inferred field, repeated refCode and problem.
type Report struct {
	Files             []ReportFile
	Flows             int
	Source            SourceTotals
	Totals            Totals
	TotalsMatch       bool
	TotalsError       string // why the totals do not match, "" when they do
	Variances         []Variance
	Rounded           map[string][]Rounded // flow id → rounded values
	Inferred          map[string][]string  // flow id → fields inferred
	Notes             []string             // import and flow notes
	RepeatedRefs      []RefCodeGroup
	Grants            []Grant
	Problems          []Problem
	Classes           []Classification // parallel to the import's Flows
	PartiesFromParent []string         // flow ids whose donor or recipient came from the parked parent
}

// ReportFile names a page and its digest.
type ReportFile struct {
	Name   string
	SHA256 string
	Page   int
	Flows  int
}

// Analyse classifies an import's flows and gathers the report.
func Analyse(imp *Import) Report {
	cls := Classify(imp.Flows)
	r := Report{
		Flows:        len(imp.Flows),
		Source:       imp.Source,
		Totals:       ComputeTotals(imp.Flows, cls),
		Variances:    Variances(imp.Flows),
		Rounded:      map[string][]Rounded{},
		Inferred:     map[string][]string{},
		Notes:        append([]string(nil), imp.Notes...),
		RepeatedRefs: RepeatedRefCodes(imp.Flows, cls),
		Grants:       Grants(imp.Flows, cls),
		Problems:     imp.Problems,
		Classes:      cls,
	}
	for _, p := range imp.Pages {
		r.Files = append(r.Files, ReportFile{Name: p.FileName, SHA256: p.SHA256, Page: p.Number, Flows: len(p.Flows)})
	}
	if err := r.Totals.Check(imp.Source); err != nil {
		r.TotalsError = err.Error()
	} else {
		r.TotalsMatch = true
	}
	for i, f := range imp.Flows {
		if len(f.Rounded) > 0 {
			r.Rounded[f.ID] = f.Rounded
		}
		if len(f.Inferred) > 0 {
			r.Inferred[f.ID] = f.Inferred
		}
		for _, n := range f.Notes {
			r.Notes = append(r.Notes, "flow "+f.ID+": "+n)
		}
		if cls[i].DonorFrom == "parent" || cls[i].RecipientFrom == "parent" {
			r.PartiesFromParent = append(r.PartiesFromParent, f.ID)
		}
	}
	return r
}

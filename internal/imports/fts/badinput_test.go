package fts

import (
	"strings"
	"testing"
)

// goodFlow is a small valid flow in the API's shape; tests replace parts of it.
const goodFlow = `{"id": "900001", "versionId": 2, "amountUSD": 1136364, "originalAmount": 1000000,
 "originalCurrency": "EUR", "exchangeRate": 0.88, "status": "paid", "flowType": "Standard",
 "parentFlowId": null, "childFlowIds": null, "date": "2020-05-01T00:00:00Z",
 "decisionDate": "2020-04-20T00:00:00Z", "description": "Mine clearance, Helmand", "refCode": "MA-1",
 "boundary": "incoming", "onBoundary": "single",
 "sourceObjects": [{"type": "Organization", "id": "2933", "name": "Donor", "behavior": "single", "organizationTypes": ["Government"]}],
 "destinationObjects": [{"type": "Organization", "id": "4406", "name": "HALO Trust", "behavior": "single"},
   {"type": "Project", "id": "77", "name": "P", "behavior": "single"}]}`

func page(flows ...string) []byte {
	return []byte(`{"status": "ok", "data": {"incoming": {"flowCount": 1, "fundingTotal": 1136364, "pledgeTotal": 0},
 "outgoing": {"flowCount": 0, "fundingTotal": 0, "pledgeTotal": 0}, "internal": {"flowCount": 0},
 "flows": [` + strings.Join(flows, ",") + `]}, "meta": {"count": ` + itoa(len(flows)) + `}}`)
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	s := ""
	for ; n > 0; n /= 10 {
		s = string(rune('0'+n%10)) + s
	}
	return s
}

// with replaces one "key": value pair of goodFlow (old must occur once).
func with(t *testing.T, old, new string) string {
	t.Helper()
	if strings.Count(goodFlow, old) != 1 {
		t.Fatalf("fixture: %q occurs %d times", old, strings.Count(goodFlow, old))
	}
	return strings.Replace(goodFlow, old, new, 1)
}

func TestGoodFlow(t *testing.T) {
	t.Parallel()
	p, err := ParsePage("good.json", page(goodFlow), 1)
	if err != nil || len(p.Problems) != 0 || len(p.Flows) != 1 {
		t.Fatalf("err %v problems %v flows %d", err, p.Problems, len(p.Flows))
	}
	f := p.Flows[0]
	if f.ComputedUSD.String() != "1136363.64" || f.Variance().String() != "0.36" || f.Version != 2 ||
		len(f.Destination.Projects) != 1 || f.Destination.Organizations[0].Name != "HALO Trust" {
		t.Errorf("flow %+v", f)
	}
	tot := ComputeTotals(p.Flows, Classify(p.Flows))
	if err := tot.Check(p.Source); err != nil {
		t.Error(err)
	}
}

func TestBadFlows(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, old, new string
		want           string // substring of the problem
	}{
		{"amountUSD string", `"amountUSD": 1136364`, `"amountUSD": "abc"`, `flow 900001: amountUSD: want a number, got string "abc"`},
		{"amountUSD missing", `"amountUSD": 1136364,`, ``, `flow 900001: amountUSD: missing`},
		{"amountUSD null", `"amountUSD": 1136364`, `"amountUSD": null`, `flow 900001: amountUSD: missing`},
		{"amountUSD object", `"amountUSD": 1136364`, `"amountUSD": {}`, `amountUSD: want a number, got object`},
		{"amountUSD 1e400", `"amountUSD": 1136364`, `"amountUSD": 1e400`, `flow 900001: amountUSD: "1e400" is not a plain decimal`},
		{"amountUSD 40 digits", `"amountUSD": 1136364`, `"amountUSD": ` + strings.Repeat("9", 40), `amountUSD: "9999`},
		{"unknown status", `"status": "paid"`, `"status": "promised"`, `flow 900001: status: unknown status "promised"`},
		{"status number", `"status": "paid"`, `"status": 3`, `flow 900001: status: want a string, got number`},
		{"unknown flowType", `"flowType": "Standard"`, `"flowType": "Loan"`, `flowType: unknown flow type "Loan"`},
		{"unknown boundary", `"boundary": "incoming"`, `"boundary": "sideways"`, `boundary: unknown boundary "sideways"`},
		{"unknown onBoundary", `"onBoundary": "single"`, `"onBoundary": "half"`, `onBoundary: unknown value "half"`},
		{"currency not ISO", `"originalCurrency": "EUR"`, `"originalCurrency": "XYZ"`, `flow 900001: originalCurrency: "XYZ" is not an ISO 4217 code`},
		{"currency lower case", `"originalCurrency": "EUR"`, `"originalCurrency": "eur"`, `originalCurrency: "eur" is not an ISO 4217 code`},
		{"amount without currency", `"originalCurrency": "EUR",`, ``, `originalCurrency: missing, but originalAmount 1000000 is given`},
		{"zero rate", `"exchangeRate": 0.88`, `"exchangeRate": 0`, `exchangeRate: 0: must be positive`},
		{"negative rate", `"exchangeRate": 0.88`, `"exchangeRate": -0.88`, `exchangeRate: -0.88: must be positive`},
		{"NUL in description", `"description": "Mine clearance, Helmand"`, `"description": "Mine\u0000clearance"`, `flow 900001: description: contains a NUL character`},
		{"NUL in refCode", `"refCode": "MA-1"`, `"refCode": "MA\u0000"`, `refCode: contains a NUL`},
		{"huge description", `"description": "Mine clearance, Helmand"`, `"description": "` + strings.Repeat("x", maxDescription+1) + `"`, `description: 65537 bytes, more than 65536`},
		{"lone surrogate", `"description": "Mine clearance, Helmand"`, `"description": "\ud800"`, `description: not valid UTF-8`},
		{"bad date", `"date": "2020-05-01T00:00:00Z"`, `"date": "01/05/2020"`, `flow 900001: date: "01/05/2020" is not an RFC 3339`},
		{"date missing", `"date": "2020-05-01T00:00:00Z",`, ``, `flow 900001: date: missing`},
		{"parent is self", `"parentFlowId": null`, `"parentFlowId": 900001`, `parentFlowId: the flow names itself`},
		{"parent bool", `"parentFlowId": null`, `"parentFlowId": true`, `parentFlowId: want an id (string or integer), got boolean`},
		{"children not array", `"childFlowIds": null`, `"childFlowIds": "1,2"`, `childFlowIds: want an array of flow ids, got string`},
		{"child id negative", `"childFlowIds": null`, `"childFlowIds": [1, -2]`, `childFlowIds[1]: id "-2": want digits only`},
		{"objects not array", `"sourceObjects": [`, `"sourceObjects": "none", "x": [`, `sourceObjects: want an array of objects, got string`},
		{"object without type", `{"type": "Project", "id": "77", `, `{"id": "77", `, `destinationObjects[1].type: missing`},
		{"object id float", `{"type": "Project", "id": "77", `, `{"type": "Project", "id": 7.5, `, `destinationObjects[1].id: id "7.5": want digits only`},
		{"absurd rate", `"exchangeRate": 0.88`, `"exchangeRate": 0.000000000000000001`, `flow 900001: exchangeRate: 1000000 EUR at 0.000000000000000001: converts to`},
		{"number too long", `"exchangeRate": 0.88`, `"exchangeRate": 0.` + strings.Repeat("1", 60), `exchangeRate: number of 62 characters, more than 40`},
		{"versionId float", `"versionId": 2`, `"versionId": 2.5`, `versionId: want a non-negative integer, got 2.5`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := ParsePage("bad.json", page(with(t, tc.old, tc.new)), 1)
			if err != nil {
				t.Fatalf("file error %v; want a flow problem", err)
			}
			if len(p.Flows) != 0 {
				t.Errorf("bad flow kept: %+v", p.Flows[0])
			}
			var msgs []string
			for _, pr := range p.Problems {
				msgs = append(msgs, pr.Error())
			}
			if !strings.Contains(strings.Join(msgs, "\n"), tc.want) {
				t.Errorf("problems %q; want one containing %q", msgs, tc.want)
			}
			imp, err := Parse(File{Name: "bad.json", Data: page(with(t, tc.old, tc.new))})
			if err != nil || imp.Err() == nil {
				t.Errorf("import of a bad flow: err %v, Err() %v", err, imp.Err())
			}
		})
	}
}

func TestFlowWithoutID(t *testing.T) {
	t.Parallel()
	p, err := ParsePage("noid.json", page(goodFlow, with(t, `"id": "900001", `, ``), `[1]`), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Flows) != 1 || len(p.Problems) != 2 {
		t.Fatalf("flows %d problems %v", len(p.Flows), p.Problems)
	}
	if got := p.Problems[0].Error(); got != "noid.json: data.flows[1]: id: missing" {
		t.Errorf("problem %q", got)
	}
	if got := p.Problems[1].Error(); got != "noid.json: data.flows[2]: want a JSON object, got array" {
		t.Errorf("problem %q", got)
	}
}

func TestRoundedAmounts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, old, new                  string
		field, source, value, amountUSD string
		amount                          string
	}{
		{"USD half-even down", `"amountUSD": 1136364`, `"amountUSD": 1136364.125`, "amountUSD", "1136364.125", "1136364.12", "1136364.12", "1000000"},
		{"USD half-even up", `"amountUSD": 1136364`, `"amountUSD": 1136364.135`, "amountUSD", "1136364.135", "1136364.14", "1136364.14", "1000000"},
		{"EUR float artefact", `"originalAmount": 1000000`, `"originalAmount": 999999.99999999`, "originalAmount", "999999.99999999", "1000000", "1136364", "1000000"},
		{"JPY half-even", `"originalCurrency": "EUR"`, `"originalCurrency": "JPY"`, "", "", "", "1136364", "1000000"},
		{"KWD three decimals", `"originalAmount": 1000000`, `"originalAmount": 1000.0005`, "originalAmount", "1000.0005", "1000", "1136364", "1000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := with(t, tc.old, tc.new)
			if strings.HasPrefix(tc.name, "KWD") {
				src = strings.Replace(src, `"EUR"`, `"KWD"`, 1)
			}
			p, err := ParsePage("r.json", page(src), 1)
			if err != nil || len(p.Problems) != 0 || len(p.Flows) != 1 {
				t.Fatalf("err %v problems %v", err, p.Problems)
			}
			f := p.Flows[0]
			if f.AmountUSD.String() != tc.amountUSD || f.Amount.String() != tc.amount {
				t.Errorf("amountUSD %s amount %s; want %s %s", f.AmountUSD, f.Amount, tc.amountUSD, tc.amount)
			}
			if tc.field == "" {
				if len(f.Rounded) != 0 {
					t.Errorf("rounded %v", f.Rounded)
				}
				return
			}
			if len(f.Rounded) != 1 || f.Rounded[0].Field != tc.field || f.Rounded[0].Source != tc.source || f.Rounded[0].Value.String() != tc.value {
				t.Errorf("rounded %+v; want %s %s → %s", f.Rounded, tc.field, tc.source, tc.value)
			}
		})
	}
	// JPY 2.5 rounds half-even to 2.
	p, _ := ParsePage("j.json", page(strings.Replace(with(t, `"originalAmount": 1000000`, `"originalAmount": 2.5`), `"EUR"`, `"JPY"`, 1)), 1)
	if len(p.Flows) != 1 || p.Flows[0].OriginalAmount.String() != "2" || p.Flows[0].Rounded[0].Source != "2.5" {
		t.Errorf("JPY 2.5: %+v %v", p.Flows, p.Problems)
	}
	// -0 is zero, not an error.
	p, _ = ParsePage("z.json", page(with(t, `"amountUSD": 1136364`, `"amountUSD": -0`)), 1)
	if len(p.Flows) != 1 || !p.Flows[0].AmountUSD.IsZero() {
		t.Errorf("-0: %+v %v", p.Flows, p.Problems)
	}
}

func TestBadFiles(t *testing.T) {
	t.Parallel()
	good := page(goodFlow)
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"truncated", good[:len(good)/2], "bad.json: truncated or malformed JSON at end of file (line"},
		{"empty", nil, "truncated or malformed JSON at end of file"},
		{"NUL byte", append(append([]byte{}, good[:10]...), append([]byte{0}, good[10:]...)...), "bad.json: NUL byte at offset 10"},
		{"invalid UTF-8", append([]byte{0xff}, good...), "not valid UTF-8"},
		{"not JSON", []byte("<flows/>"), "malformed JSON at line 1, column 1"},
		{"trailing garbage", append(append([]byte{}, good...), []byte(" {}")...), "malformed JSON"},
		{"array", []byte("[]"), "want"},
		{"no flows", []byte(`{"status": "ok", "data": {}}`), "no data.flows array"},
		{"flows not array", []byte(`{"data": {"flows": {}}}`), "data.flows"},
		{"status error", []byte(`{"status": "error", "data": {"flows": []}}`), `status: "error"`},
		{"funding total string", []byte(`{"data": {"incoming": {"fundingTotal": "x"}, "flows": []}}`), "data.incoming"},
		{"funding total 1e400", []byte(`{"data": {"incoming": {"fundingTotal": 1e400}, "flows": []}}`), "data.incoming.fundingTotal"},
		{"meta count negative", []byte(`{"data": {"flows": []}, "meta": {"count": -1}}`), "meta.count"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParsePage("bad.json", tc.data, 1)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v; want it to contain %q", err, tc.want)
			}
			if _, err := Parse(File{Name: "bad.json", Data: tc.data}); err == nil {
				t.Error("Parse accepted it")
			}
		})
	}
}

func TestRealPageTruncated(t *testing.T) {
	t.Parallel()
	real := readReal(t)
	b := real[0].Data[:len(real[0].Data)-1000]
	_, err := ParsePage(real[0].Name, b, 1)
	if err == nil || !strings.Contains(err.Error(), "afghanistan-2020-page-1.json: truncated") {
		t.Errorf("err %v", err)
	}
}

func FuzzParsePage(f *testing.F) {
	f.Add(page(goodFlow))
	f.Add(page(goodFlow, goodFlow))
	f.Add([]byte(`{"data": {"flows": [{"id": 1}]}}`))
	f.Add([]byte(`{"data": {"flows": [{"id": "1", "amountUSD": 1e400, "childFlowIds": [1, "2", null]}]}}`))
	f.Add([]byte(`{"data": {"incoming": {"fundingTotal": -0}, "flows": [null, [], "x"]}, "meta": {"count": 1}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePage("fuzz.json", b, 1)
		if err != nil {
			if p != nil {
				t.Fatal("page and error")
			}
			return
		}
		for _, fl := range p.Flows {
			if fl.ID == "" || fl.Provenance.FlowID != fl.ID || fl.Currency == "" || fl.EntryType == "" {
				t.Fatalf("accepted flow missing essentials: %+v", fl)
			}
			if fl.HasComputed && !fl.ExchangeRate.IsPositive() {
				t.Fatalf("computed with rate %s", fl.ExchangeRate)
			}
		}
		for _, pr := range p.Problems {
			if pr.Message == "" {
				t.Fatal("problem without message")
			}
		}
		cls := Classify(p.Flows)
		_ = ComputeTotals(p.Flows, cls).Check(p.Source)
		_ = RepeatedRefCodes(p.Flows, cls)
		_ = Grants(p.Flows, cls)
		_ = Variances(p.Flows)
	})
}

func TestRepeatedFlowInOnePage(t *testing.T) {
	t.Parallel()
	imp, err := Parse(File{Name: "same.json", Data: page(goodFlow, goodFlow)})
	if err != nil || len(imp.Flows) != 1 || len(imp.Notes) != 2 || !strings.Contains(imp.Notes[0], "repeated unchanged") {
		t.Fatalf("same content twice: err %v flows %d notes %v", err, len(imp.Flows), imp.Notes)
	}
	_, err = Parse(File{Name: "diff.json", Data: page(goodFlow, with(t, `"refCode": "MA-1"`, `"refCode": "MA-2"`))})
	if err == nil || !strings.Contains(err.Error(), "flow 900001: on page 1 (diff.json) and page 1 (diff.json) with different content") {
		t.Errorf("different content: %v", err)
	}
}

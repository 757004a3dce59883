package console

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
	"github.com/tranche-ledger/tranche/internal/auth"
)

// ---- sign-in ----

func (h *handler) signinForm(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "signin", &view{Title: "Sign in"})
}

// signin accepts a token pasted into the form: a token the service knows
// goes into the session cookie; any other is the form again, 401.
func (h *handler) signin(w http.ResponseWriter, r *http.Request) {
	// A pasted token often brings a line break, or the header's scheme.
	tok := strings.TrimSpace(r.PostFormValue("token"))
	if len(tok) > 7 && strings.EqualFold(tok[:7], "bearer ") {
		tok = strings.TrimSpace(tok[7:])
	}
	if tok == "" {
		h.render(w, r, http.StatusUnauthorized, "signin", &view{Title: "Sign in", Error: "Paste your API token."})
		return
	}
	if _, err := h.opts.Authenticate(r.Context(), tok); err != nil {
		if !isUnauthenticated(err) && status.Code(err) != codes.Unauthenticated {
			h.log.ErrorContext(r.Context(), "console sign-in failed", "err", err.Error())
			h.render(w, r, http.StatusServiceUnavailable, "signin", &view{Title: "Sign in",
				Error: "The token could not be checked just now; try again."})
			return
		}
		h.log.InfoContext(r.Context(), "console sign-in refused")
		h.render(w, r, http.StatusUnauthorized, "signin", &view{Title: "Sign in",
			Error: "This token is unknown or revoked."})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: tok, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: overTLS(r)})
	// A new session gets a new form token: one set before sign-in (by
	// whoever used the browser, or planted) does not carry over.
	clearCookie(w, r, CSRFCookie)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (h *handler) signout(w http.ResponseWriter, r *http.Request) {
	clearCookie(w, r, SessionCookie)
	clearCookie(w, r, CSRFCookie)
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}

// ---- roadmaps ----

type roadmapsData struct {
	Roadmaps []*pb.Roadmap
	Next     string
}

func (h *handler) roadmapList(w http.ResponseWriter, r *http.Request, s *session) error {
	resp, err := h.roadmaps.ListRoadmaps(s.ctx, &pb.ListRoadmapsRequest{PageSize: 100, PageToken: r.URL.Query().Get("page")})
	if err != nil {
		return err
	}
	h.render(w, r, http.StatusOK, "roadmaps", &view{Title: "Roadmaps", Nav: "roadmaps", session: s,
		Data: roadmapsData{Roadmaps: resp.Roadmaps, Next: pageLink("/", resp.NextPageToken)}})
	return nil
}

func pageLink(path, token string) string {
	if token == "" {
		return ""
	}
	return path + "?page=" + url.QueryEscape(token)
}

// parallel runs fns at once and returns the first error.
func parallel(fns ...func() error) error {
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Go(func() { errs[i] = fn() })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// first returns the first error of a joined error (the status of an RPC
// error is lost when errors are joined).
func first(err error) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if e != nil {
				return e
			}
		}
	}
	return err
}

type overviewData struct {
	Roadmap   *pb.Roadmap
	Coverage  *pb.GetCoverageResponse
	Rows      []coverageRow
	Totals    coverageRow
	Chart     chart
	Grants    []grantRow
	MoreGrant bool
}

type coverageRow struct {
	C      *pb.MilestoneCoverage
	Cells  []cell
	Donors []string
}

type grantRow struct {
	G                *pb.Grant
	Donor, Recipient string
}

var coverageFields = []string{"requirement", "allocated", "committed", "disbursed", "spent", "gap"}

func coverageCells(c *pb.MilestoneCoverage) []cell {
	ms := []*pb.Money{c.GetFundingRequirement(), c.GetAllocated(), c.GetCommitted(), c.GetDisbursed(), c.GetSpent(), c.GetGap()}
	out := make([]cell, len(ms))
	for i, m := range ms {
		out[i] = cell{Field: coverageFields[i], M: m}
	}
	return out
}

// orgNames lists organisations once (a few pages at most) for their names.
func (h *handler) orgNames(ctx context.Context) (map[string]string, error) {
	names := map[string]string{}
	tok := ""
	for range 10 {
		resp, err := h.orgs.ListOrganizations(ctx, &pb.ListOrganizationsRequest{PageSize: 500, PageToken: tok})
		if err != nil {
			return nil, err
		}
		for _, o := range resp.Organizations {
			names[o.Id] = o.Name
		}
		if tok = resp.NextPageToken; tok == "" {
			break
		}
	}
	return names, nil
}

// overview: four RPCs at once, whatever the number of milestones and grants.
func (h *handler) overview(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	var (
		rm    *pb.GetRoadmapResponse
		cov   *pb.GetCoverageResponse
		gr    *pb.ListGrantsResponse
		names map[string]string
	)
	err := parallel(
		func() (err error) {
			rm, err = h.roadmaps.GetRoadmap(s.ctx, &pb.GetRoadmapRequest{RoadmapId: id})
			return
		},
		func() (err error) {
			cov, err = h.roadmaps.GetCoverage(s.ctx, &pb.GetCoverageRequest{RoadmapId: id})
			return
		},
		func() (err error) {
			gr, err = h.grants.ListGrants(s.ctx, &pb.ListGrantsRequest{RoadmapId: id, PageSize: 500})
			return
		},
		func() (err error) { names, err = h.orgNames(s.ctx); return },
	)
	if err != nil {
		return first(err)
	}
	name := func(id string) string {
		if n, ok := names[id]; ok {
			return n
		}
		return id
	}
	donorsOf := map[string][]string{}
	d := overviewData{Roadmap: rm.Roadmap, Coverage: cov, MoreGrant: gr.NextPageToken != ""}
	for _, g := range gr.Grants {
		d.Grants = append(d.Grants, grantRow{G: g, Donor: name(g.DonorOrgId), Recipient: name(g.RecipientOrgId)})
		for _, a := range g.Allocations {
			if n := name(g.DonorOrgId); !slices.Contains(donorsOf[a.MilestoneId], n) {
				donorsOf[a.MilestoneId] = append(donorsOf[a.MilestoneId], n)
			}
		}
	}
	for _, c := range cov.Milestones {
		ds := donorsOf[c.MilestoneId]
		slices.Sort(ds)
		d.Rows = append(d.Rows, coverageRow{C: c, Cells: coverageCells(c), Donors: ds})
	}
	if cov.Totals != nil {
		d.Totals = coverageRow{C: cov.Totals, Cells: coverageCells(cov.Totals)}
	}
	d.Chart = coverageChart(cov)
	h.render(w, r, http.StatusOK, "overview", &view{Title: rm.Roadmap.Title, Nav: "roadmaps", session: s, Data: d})
	return nil
}

// ---- flags ----

var (
	flagKinds = []string{"DUPLICATE_TRANSACTION", "DUPLICATE_EXPENDITURE", "OVERFUNDED_MILESTONE", "OVERLAPPING_GRANTS",
		"RECEIPT_MISMATCH", "PROCUREMENT_STALLED", "PROCUREMENT_LATE", "MILESTONE_AT_RISK", "IDLE_FUNDS"}
	flagSeverities = []string{"HIGH", "MEDIUM", "LOW"}
	flagStatuses   = []string{"OPEN", "ACKNOWLEDGED", "DISMISSED", "RESOLVED"}
	reviewActions  = []string{"ACKNOWLEDGE", "DISMISS", "REOPEN"}
)

type flagsData struct {
	Roadmap                   *pb.Roadmap
	Kind, Severity, Status    string
	Kinds, Severities, States []string
	Actions                   []string
	Flags                     []flagRow
	Next                      string
	Reviewed                  *pb.Flag
}

type flagRow struct {
	F        *pb.Flag
	Evidence string
}

func evidenceJSON(f *pb.Flag) string {
	if f.Evidence == nil {
		return ""
	}
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(f.Evidence)
	if err != nil {
		return ""
	}
	var v any // re-indented by encoding/json: protojson's spacing is randomised
	if json.Unmarshal(b, &v) == nil {
		if out, err := json.MarshalIndent(v, "", "  "); err == nil {
			return string(out)
		}
	}
	return string(b)
}

func (h *handler) flagBoard(w http.ResponseWriter, r *http.Request, s *session) error {
	id, q := r.PathValue("id"), r.URL.Query()
	d := flagsData{Kind: q.Get("kind"), Severity: q.Get("severity"), Status: q.Get("status"),
		Kinds: flagKinds, Severities: flagSeverities, States: flagStatuses, Actions: reviewActions}
	var (
		rm       *pb.GetRoadmapResponse
		list     *pb.ListFlagsResponse
		reviewed *pb.GetFlagResponse
	)
	fns := []func() error{
		func() (err error) {
			rm, err = h.roadmaps.GetRoadmap(s.ctx, &pb.GetRoadmapRequest{RoadmapId: id})
			return
		},
		func() (err error) {
			list, err = h.flags.ListFlags(s.ctx, &pb.ListFlagsRequest{RoadmapId: id, Kind: d.Kind, Severity: d.Severity,
				Status: d.Status, PageSize: 200, PageToken: q.Get("page")})
			return
		},
	}
	if rid := q.Get("reviewed"); rid != "" {
		fns = append(fns, func() error {
			var err error
			if reviewed, err = h.flags.GetFlag(s.ctx, &pb.GetFlagRequest{FlagId: rid}); err != nil {
				reviewed = nil // the notice is left out; the board still shows
			}
			return nil
		})
	}
	if err := parallel(fns...); err != nil {
		return first(err)
	}
	d.Roadmap = rm.Roadmap
	for _, f := range list.Flags {
		d.Flags = append(d.Flags, flagRow{F: f, Evidence: evidenceJSON(f)})
	}
	if list.NextPageToken != "" {
		next := url.Values{"page": {list.NextPageToken}}
		for _, k := range []string{"kind", "severity", "status"} {
			if v := q.Get(k); v != "" {
				next.Set(k, v)
			}
		}
		d.Next = r.URL.Path + "?" + next.Encode()
	}
	v := &view{Title: "Flags: " + rm.Roadmap.Title, Nav: "roadmaps", session: s, Data: &d}
	if reviewed != nil && reviewed.Flag.GetRoadmapId() == id {
		d.Reviewed = reviewed.Flag
	}
	h.render(w, r, http.StatusOK, "flags", v)
	return nil
}

// review sends a review to the service and goes back to the board (303),
// which shows the flag's new state.
func (h *handler) review(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	resp, err := h.flags.ReviewFlag(s.ctx, &pb.ReviewFlagRequest{FlagId: id, Action: r.PostFormValue("action"),
		Note: r.PostFormValue("note"), RequestId: uuid.NewString()})
	if err != nil {
		return err
	}
	back := url.Values{"reviewed": {resp.Flag.Id}}
	for _, k := range []string{"kind", "severity", "status"} {
		if v := r.PostFormValue(k); v != "" {
			back.Set(k, v)
		}
	}
	http.Redirect(w, r, "/roadmaps/"+url.PathEscape(resp.Flag.RoadmapId)+"/flags?"+back.Encode()+"#flag-"+resp.Flag.Id, http.StatusSeeOther)
	return nil
}

// ---- grant ----

type grantData struct {
	Grant              *pb.Grant
	Donor, Recipient   string
	Reporting          string
	Recon              *pb.GetReconciliationResponse
	ReconRows          []reconRow
	Journal            []*pb.Transaction
	Next               string
	Items              []itemRow
	MoreItems          bool
	MoreMatches        bool
	Milestones         map[string]string
	ProvenanceInferred string
}

type reconRow struct {
	Label                string
	Agreement, Reporting cell
}

type itemRow struct {
	I            *pb.ProcurementItem
	Stages       []stageRow
	CurrentDwell int
	Stalled      bool
}

type stageRow struct {
	Stage, EnteredOn string
	Days             int
	Current          bool
}

var terminalStages = []string{"DELIVERED", "ACCEPTED", "CANCELLED"}

// dwell gives each stage its days (to the next stage, or to today for the
// current one while open) and the current stage's.
func dwell(it *pb.ProcurementItem, today time.Time) ([]stageRow, int) {
	var out []stageRow
	cur := 0
	for i, st := range it.Stages {
		row := stageRow{Stage: st.Stage, EnteredOn: st.EnteredOn, Days: -1}
		from, err := time.Parse(time.DateOnly, st.EnteredOn)
		if err == nil {
			switch {
			case i+1 < len(it.Stages):
				if to, err := time.Parse(time.DateOnly, it.Stages[i+1].EnteredOn); err == nil {
					row.Days = int(to.Sub(from).Hours() / 24)
				}
			case !slices.Contains(terminalStages, st.Stage):
				row.Days = int(today.Sub(from).Hours() / 24)
				row.Current, cur = true, row.Days
			default:
				row.Current = true
			}
		}
		out = append(out, row)
	}
	return out, cur
}

func (h *handler) today() time.Time {
	t := h.opts.Now().UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

var reconFields = []struct{ field, label string }{
	{"pledged", "Pledged"}, {"committed", "Committed"}, {"disbursed", "Disbursed"}, {"received", "Received"},
	{"spent", "Spent"}, {"undisbursedCommitment", "Undisbursed commitment"}, {"unspentBalance", "Unspent balance"},
}

func balances(b *pb.Balances) []*pb.Money {
	return []*pb.Money{b.GetPledged(), b.GetCommitted(), b.GetDisbursed(), b.GetReceived(), b.GetSpent(),
		b.GetUndisbursedCommitment(), b.GetUnspentBalance()}
}

// grantPage: GetGrant first (a grant the caller may not read is a 404 before
// anything else is asked), then eight RPCs at once, whatever the journal's length.
func (h *handler) grantPage(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	if _, err := uuid.Parse(id); err != nil {
		return pageError(codes.NotFound, "no such grant")
	}
	g, err := h.grants.GetGrant(s.ctx, &pb.GetGrantRequest{GrantId: id})
	if err != nil {
		return err
	}
	d := grantData{Grant: g.Grant, Donor: g.Grant.DonorOrgId, Recipient: g.Grant.RecipientOrgId, Milestones: map[string]string{}}
	var (
		rm      *pb.GetRoadmapResponse
		rec     *pb.GetReconciliationResponse
		txs     *pb.ListTransactionsResponse
		items   *pb.ListProcurementItemsResponse
		ms      *pb.ListMilestonesResponse
		stalled = map[string]bool{}
	)
	orgName := func(id string, into *string) func() error {
		return func() error {
			if o, err := h.orgs.GetOrganization(s.ctx, &pb.GetOrganizationRequest{Id: id}); err == nil {
				*into = o.Organization.Name
			}
			return nil // the id stands in for a name the caller may not read
		}
	}
	err = parallel(
		func() (err error) {
			rm, err = h.roadmaps.GetRoadmap(s.ctx, &pb.GetRoadmapRequest{RoadmapId: g.Grant.RoadmapId})
			return
		},
		func() (err error) {
			rec, err = h.grants.GetReconciliation(s.ctx, &pb.GetReconciliationRequest{GrantId: id, PageSize: 200})
			return
		},
		func() (err error) {
			txs, err = h.grants.ListTransactions(s.ctx, &pb.ListTransactionsRequest{GrantId: id, PageSize: 100,
				PageToken: r.URL.Query().Get("page")})
			return
		},
		func() (err error) {
			items, err = h.procurement.ListProcurementItems(s.ctx, &pb.ListProcurementItemsRequest{GrantId: id, PageSize: 500})
			return
		},
		func() (err error) {
			ms, err = h.roadmaps.ListMilestones(s.ctx, &pb.ListMilestonesRequest{RoadmapId: g.Grant.RoadmapId})
			return
		},
		orgName(g.Grant.DonorOrgId, &d.Donor),
		orgName(g.Grant.RecipientOrgId, &d.Recipient),
		h.stalledItems(s.ctx, &pb.ListFlagsRequest{GrantId: id}, stalled),
	)
	if err != nil {
		return first(err)
	}
	d.Reporting = rm.Roadmap.ReportingCurrency
	d.Recon = rec
	d.MoreMatches = rec.NextPageToken != ""
	ag, rp := balances(rec.Agreement), balances(rec.Reporting)
	for i, f := range reconFields {
		d.ReconRows = append(d.ReconRows, reconRow{Label: f.label,
			Agreement: cell{Field: f.field, Side: "agreement", M: ag[i]}, Reporting: cell{Field: f.field, Side: "reporting", M: rp[i]}})
	}
	d.Journal = txs.Transactions
	d.Next = pageLink(r.URL.Path, txs.NextPageToken)
	for _, m := range ms.Milestones {
		d.Milestones[m.Id] = m.Code
	}
	today := h.today()
	for _, it := range items.ProcurementItems {
		st, cur := dwell(it, today)
		d.Items = append(d.Items, itemRow{I: it, Stages: st, CurrentDwell: cur, Stalled: stalled[it.Id]})
	}
	d.MoreItems = items.NextPageToken != ""
	if p := g.Grant.Provenance; p != nil {
		d.ProvenanceInferred = joinComma(p.Inferred)
	}
	h.render(w, r, http.StatusOK, "grant", &view{Title: "Grant " + g.Grant.Reference, Nav: "roadmaps", session: s, Data: d})
	return nil
}

func joinComma(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ", "
		}
		out += x
	}
	return out
}

// ---- procurement pipeline ----

var stageOrder = []string{"REQUISITIONED", "TENDERED", "EVALUATED", "AWARDED", "CONTRACTED", "DELIVERED", "ACCEPTED", "CANCELLED"}

type pipelineData struct {
	Roadmap *pb.Roadmap
	Stages  []stageGroup
	Late    int
	Stalled int
	More    bool
}

type stageGroup struct {
	Stage string
	Items []itemRow
}

func (h *handler) pipeline(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	var (
		rm      *pb.GetRoadmapResponse
		items   *pb.ListProcurementItemsResponse
		stalled = map[string]bool{}
	)
	err := parallel(
		func() (err error) {
			rm, err = h.roadmaps.GetRoadmap(s.ctx, &pb.GetRoadmapRequest{RoadmapId: id})
			return
		},
		func() (err error) {
			items, err = h.procurement.ListProcurementItems(s.ctx, &pb.ListProcurementItemsRequest{RoadmapId: id, PageSize: 500})
			return
		},
		h.stalledItems(s.ctx, &pb.ListFlagsRequest{RoadmapId: id}, stalled),
	)
	if err != nil {
		return first(err)
	}
	d := pipelineData{Roadmap: rm.Roadmap, More: items.NextPageToken != ""}
	today := h.today()
	byStage := map[string][]itemRow{}
	for _, it := range items.ProcurementItems {
		st, cur := dwell(it, today)
		row := itemRow{I: it, Stages: st, CurrentDwell: cur, Stalled: stalled[it.Id]}
		if it.Late {
			d.Late++
		}
		if row.Stalled {
			d.Stalled++
		}
		byStage[it.Stage] = append(byStage[it.Stage], row)
	}
	for _, st := range stageOrder {
		if len(byStage[st]) > 0 {
			d.Stages = append(d.Stages, stageGroup{Stage: st, Items: byStage[st]})
		}
	}
	h.render(w, r, http.StatusOK, "pipeline", &view{Title: "Procurement: " + rm.Roadmap.Title, Nav: "roadmaps", session: s, Data: d})
	return nil
}

// stalledItems marks in into the items the detection found stalled: the
// subjects of the PROCUREMENT_STALLED flags of req's scope not yet
// resolved or dismissed.
func (h *handler) stalledItems(ctx context.Context, req *pb.ListFlagsRequest, into map[string]bool) func() error {
	return func() error {
		req.Kind, req.PageSize = "PROCUREMENT_STALLED", 500
		fl, err := h.flags.ListFlags(ctx, req)
		if err != nil {
			return err
		}
		for _, f := range fl.Flags {
			if f.Status == "OPEN" || f.Status == "ACKNOWLEDGED" {
				for _, sub := range f.Subjects {
					if sub.Type == "procurement_item" {
						into[sub.Id] = true
					}
				}
			}
		}
		return nil
	}
}

// ---- audit ----

type auditData struct {
	Head      *pb.GetAuditHeadResponse
	Verify    *pb.VerifyAuditChainResponse
	ChainNote string
	Roadmaps  []*pb.Roadmap
	// Donors and Grants are the choices of the pack form: the donors a
	// pack may be narrowed to (a donor only itself) and the grants the
	// caller may read.
	Donors []*pb.Organization
	Grants []*pb.Grant
	OwnOrg string
}

// auditPage: the chain's head and verification (for the roles that may see
// them) and the pack form; five RPCs at once.
func (h *handler) auditPage(w http.ResponseWriter, r *http.Request, s *session) error {
	d := auditData{}
	if s.p.Role == auth.Donor {
		d.OwnOrg = s.p.OrgID
	}
	var headErr, verifyErr error
	var orgs []*pb.Organization
	err := parallel(
		func() error { d.Head, headErr = h.audit.GetAuditHead(s.ctx, &pb.GetAuditHeadRequest{}); return nil },
		func() error {
			d.Verify, verifyErr = h.audit.VerifyAuditChain(s.ctx, &pb.VerifyAuditChainRequest{})
			return nil
		},
		func() error {
			rs, err := h.roadmaps.ListRoadmaps(s.ctx, &pb.ListRoadmapsRequest{PageSize: 500})
			if err == nil {
				d.Roadmaps = rs.Roadmaps
			}
			return err
		},
		func() error {
			gs, err := h.grants.ListGrants(s.ctx, &pb.ListGrantsRequest{PageSize: 500})
			if err == nil {
				d.Grants = gs.Grants
			}
			return err
		},
		func() error {
			for _, kind := range []string{"DONOR", "POOLED_FUND"} {
				os, err := h.orgs.ListOrganizations(s.ctx, &pb.ListOrganizationsRequest{PageSize: 500, Kind: kind})
				if err != nil {
					return err
				}
				orgs = append(orgs, os.Organizations...)
			}
			return nil
		},
	)
	if err != nil {
		return first(err)
	}
	for _, o := range orgs {
		if d.OwnOrg == "" || o.Id == d.OwnOrg {
			d.Donors = append(d.Donors, o)
		}
	}
	slices.SortFunc(d.Donors, func(a, b *pb.Organization) int { return strings.Compare(a.Name, b.Name) })
	for _, e := range []error{headErr, verifyErr} {
		switch status.Code(e) {
		case codes.OK:
		case codes.PermissionDenied:
			d.ChainNote = "Your role does not verify the audit chain; auditors, coordinators and admins do."
			d.Head, d.Verify = nil, nil
		default:
			return e
		}
	}
	h.render(w, r, http.StatusOK, "audit", &view{Title: "Audit", Nav: "audit", session: s, Data: d})
	return nil
}

// packDownload answers the pack file itself, streamed from
// AuditPackService; a refusal (before the first piece) is an error page.
func (h *handler) packDownload(w http.ResponseWriter, r *http.Request, s *session) error {
	q := r.URL.Query()
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	stream, err := h.packs.DownloadAuditPack(ctx, &pb.DownloadAuditPackRequest{RoadmapId: q.Get("roadmapId"),
		DonorOrgId: q.Get("donorOrgId"), GrantId: q.Get("grantId"), AsOf: q.Get("asOf"), From: q.Get("from"), To: q.Get("to")})
	if err != nil {
		return err
	}
	msg, err := stream.Recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = status.Error(codes.Internal, "audit pack: empty answer")
		}
		return err
	}
	hd := w.Header()
	hd.Set("Content-Type", msg.GetContentType())
	hd.Set("Content-Disposition", `attachment; filename="`+headerSafe(msg.GetFileName())+`"`)
	hd.Set("Content-Length", strconv.FormatInt(msg.GetSize(), 10))
	w.WriteHeader(http.StatusOK)
	var written int64
	for {
		n, werr := w.Write(msg.GetData())
		written += int64(n)
		if werr != nil {
			return nil // the browser went away
		}
		msg, err = stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			h.log.ErrorContext(r.Context(), "console pack download cut short", "written", written, "err", err.Error())
			panic(http.ErrAbortHandler) // a short body against Content-Length, never a complete-looking file
		}
	}
	return nil
}

// headerSafe keeps a file name to the characters a quoted header parameter
// takes as they are.
func headerSafe(name string) string {
	out := []rune(name)
	for i, r := range out {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			out[i] = '_'
		}
	}
	return string(out)
}

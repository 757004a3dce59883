package server

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
	"github.com/tranche-ledger/tranche/internal/auth"
)

// procurementWorld is the harness's fixture (a donor funding an implementer
// under a roadmap) plus a second donor funding a second implementer under
// the same roadmap, and a milestone of another roadmap.
type procurementWorld struct {
	h                     *harness
	fx                    fixture
	admin                 context.Context
	otherDonor, otherNgo  string
	otherGrant, foreignMs string
	items                 pb.ProcurementServiceClient
	n                     int
}

func (w *procurementWorld) rid() string { w.n++; return fmt.Sprint("p-", w.n) }

func newProcurementWorld(t *testing.T) *procurementWorld {
	t.Helper()
	h := newHarness(t)
	admin := h.as(t, auth.Admin, "")
	w := &procurementWorld{h: h, admin: admin, fx: h.fixture(t, admin), items: pb.NewProcurementServiceClient(h.conn)}
	w.otherDonor, w.otherNgo = h.org(t, admin, "DONOR"), h.org(t, admin, "IMPLEMENTER")
	g, err := pb.NewGrantServiceClient(h.conn).CreateGrant(admin, &pb.CreateGrantRequest{RequestId: w.rid(), Grant: &pb.Grant{
		RoadmapId: w.fx.roadmapID, DonorOrgId: w.otherDonor, RecipientOrgId: w.otherNgo, Reference: "G-2", Title: "Other grant",
		Currency: "EUR", Pledged: &pb.Money{Amount: "0.00", Currency: "EUR"}, StartDate: "2024-01-01", EndDate: "2025-12-31"}})
	if err != nil {
		t.Fatal(err)
	}
	w.otherGrant = g.Grant.Id
	roadmaps := pb.NewRoadmapServiceClient(h.conn)
	rm, err := roadmaps.CreateRoadmap(admin, &pb.CreateRoadmapRequest{RequestId: w.rid(), Roadmap: &pb.Roadmap{Country: "KHM",
		Title: "Other strategy", StartDate: "2024-01-01", EndDate: "2026-12-31", ReportingCurrency: "USD"}})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := roadmaps.CreateMilestone(admin, &pb.CreateMilestoneRequest{RoadmapId: rm.Roadmap.Id, RequestId: w.rid(), Milestone: &pb.Milestone{
		Code: "K-1", Title: "Survey", ActivityType: "SURVEY", FundingRequirement: &pb.Money{Amount: "10.00", Currency: "USD"}}})
	if err != nil {
		t.Fatal(err)
	}
	w.foreignMs = ms.Milestone.Id
	return w
}

func (w *procurementWorld) item() *pb.ProcurementItem {
	return &pb.ProcurementItem{GrantId: w.fx.grantID, MilestoneId: w.fx.milestoneID, Description: "Mine detection dogs (4)",
		Category: "ANIMALS", Critical: true, EstimatedCost: &pb.Money{Amount: "36000.00", Currency: "EUR"},
		ExpectedDeliveryDate: "2024-10-01", RequisitionedOn: "2024-04-01"}
}

func (w *procurementWorld) create(t *testing.T, ctx context.Context, it *pb.ProcurementItem) *pb.ProcurementItem {
	t.Helper()
	r, err := w.items.CreateProcurementItem(ctx, &pb.CreateProcurementItemRequest{ProcurementItem: it, RequestId: w.rid()})
	if err != nil {
		t.Fatal(err)
	}
	return r.ProcurementItem
}

// written counts what a refused request must not add: items, stages,
// audit events and claimed request ids.
func (w *procurementWorld) written(t *testing.T) [4]int {
	t.Helper()
	var c [4]int
	if err := w.h.db.Owner.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM procurement_items),
		(SELECT count(*) FROM procurement_stages), (SELECT count(*) FROM audit_events),
		(SELECT count(*) FROM idempotency_keys)`).Scan(&c[0], &c[1], &c[2], &c[3]); err != nil {
		t.Fatal(err)
	}
	return c
}

// Every role against every procurement endpoint, over gRPC and over REST:
// implementers manage the items of grants they receive, coordinators and
// admins all; donors and auditors only read (donors their own grants'); an
// item the caller may not read is NOT_FOUND.
func TestEveryRoleAgainstEveryProcurementEndpoint(t *testing.T) {
	t.Parallel()
	w := newProcurementWorld(t)
	h := w.h
	it := w.create(t, w.admin, w.item())
	roles := []struct {
		name      string
		role      auth.Role
		org       string
		listed    int // items a plain list answers
		grpc, web string
	}{
		{"admin", auth.Admin, "", 1, "", ""},
		{"coordinator", auth.Coordinator, "", 1, "", ""},
		{"donor", auth.Donor, w.fx.donorOrgID, 1, "", ""},
		{"other donor", auth.Donor, w.otherDonor, 0, "", ""},
		{"implementer", auth.Implementer, w.fx.ngoOrgID, 1, "", ""},
		{"other implementer", auth.Implementer, w.otherNgo, 0, "", ""},
		{"auditor", auth.Auditor, "", 1, "", ""},
	}
	for i := range roles {
		roles[i].web = "Bearer " + h.secret(t, roles[i].role, roles[i].org)
	}
	const (
		OK = codes.OK
		PD = codes.PermissionDenied
		NF = codes.NotFound
	)
	// Each accepted advance moves the item one stage on.
	stages := []string{"TENDERED", "EVALUATED", "AWARDED", "CONTRACTED", "DELIVERED", "ACCEPTED"}
	next := 0
	stage := func() string { // past ACCEPTED nothing is accepted any more
		if next < len(stages) {
			return stages[next]
		}
		return "CANCELLED"
	}
	createBody := func() []byte {
		b, err := protojson.Marshal(&pb.CreateProcurementItemRequest{ProcurementItem: w.item(), RequestId: w.rid()})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	endpoints := []struct {
		name string
		want [7]codes.Code
		grpc func(ctx context.Context) error
		rest func(bearer string) restResponse
	}{
		{"CreateProcurementItem", [7]codes.Code{OK, OK, PD, PD, OK, NF, PD},
			func(ctx context.Context) error {
				_, err := w.items.CreateProcurementItem(ctx, &pb.CreateProcurementItemRequest{ProcurementItem: w.item(), RequestId: w.rid()})
				return err
			},
			func(bearer string) restResponse {
				return h.rest(t, "POST", "/v1/procurement-items", bearer, bytes.NewReader(createBody()))
			}},
		{"GetProcurementItem", [7]codes.Code{OK, OK, OK, NF, OK, NF, OK},
			func(ctx context.Context) error {
				_, err := w.items.GetProcurementItem(ctx, &pb.GetProcurementItemRequest{ItemId: it.Id})
				return err
			},
			func(bearer string) restResponse { return h.rest(t, "GET", "/v1/procurement-items/"+it.Id, bearer, nil) }},
		{"ListProcurementItems", [7]codes.Code{OK, OK, OK, OK, OK, OK, OK},
			func(ctx context.Context) error {
				_, err := w.items.ListProcurementItems(ctx, &pb.ListProcurementItemsRequest{})
				return err
			},
			func(bearer string) restResponse { return h.rest(t, "GET", "/v1/procurement-items", bearer, nil) }},
		{"AdvanceProcurementItem", [7]codes.Code{OK, OK, PD, PD, OK, NF, PD},
			func(ctx context.Context) error {
				_, err := w.items.AdvanceProcurementItem(ctx, &pb.AdvanceProcurementItemRequest{ItemId: it.Id, Stage: stage(),
					EnteredOn: "2024-05-01", Note: "by role", RequestId: w.rid()})
				if err == nil {
					next++
				}
				return err
			},
			func(bearer string) restResponse {
				r := h.rest(t, "POST", "/v1/procurement-items/"+it.Id+":advance", bearer, strings.NewReader(fmt.Sprintf(
					`{"stage": %q, "enteredOn": "2024-05-01", "note": "by role", "requestId": %q}`, stage(), w.rid())))
				if r.code == 200 {
					next++
				}
				return r
			}},
	}
	httpOf := map[codes.Code]int{OK: 200, PD: 403, NF: 404}
	for _, e := range endpoints {
		for i, r := range roles {
			ctx := h.as(t, r.role, r.org)
			if got := status.Code(e.grpc(ctx)); got != e.want[i] {
				t.Errorf("gRPC %s as %s: %v, want %v", e.name, r.name, got, e.want[i])
			}
			if got := e.rest(r.web); got.code != httpOf[e.want[i]] {
				t.Errorf("REST %s as %s: %d %s, want %d", e.name, r.name, got.code, got.raw, httpOf[e.want[i]])
			}
		}
	}
	// Lists are scoped to what each role reads; another donor's NOT_FOUND
	// says nothing of the item.
	for _, r := range roles {
		l, err := w.items.ListProcurementItems(h.as(t, r.role, r.org), &pb.ListProcurementItemsRequest{GrantId: w.fx.grantID, PageSize: 500})
		want := map[bool]int{true: 1 + 3*2, false: 0}[r.listed > 0] // the fixture's item and 3 creators × 2 transports
		if err != nil || len(l.ProcurementItems) != want {
			t.Errorf("%s lists %d items (%v), want %d", r.name, len(l.GetProcurementItems()), err, want)
		}
	}
	_, err := w.items.GetProcurementItem(h.as(t, auth.Donor, w.otherDonor), &pb.GetProcurementItemRequest{ItemId: it.Id})
	if msg := status.Convert(err).Message(); strings.Contains(msg, "dogs") || strings.Contains(msg, w.fx.grantID) || strings.Contains(msg, w.fx.donorOrgID) {
		t.Errorf("NOT_FOUND leaks the item: %q", msg)
	}
	// The item went through as many stages as advances were accepted: admin,
	// coordinator and implementer, on each transport.
	got, err := w.items.GetProcurementItem(w.admin, &pb.GetProcurementItemRequest{ItemId: it.Id})
	if err != nil || len(got.ProcurementItem.Stages) != 7 || got.ProcurementItem.Stage != "ACCEPTED" {
		t.Errorf("after the role checks: %v, %v", got.GetProcurementItem().GetStages(), err)
	}
}

// The REST surface speaks DESIGN's JSON: a create answers the item with its
// first stage, an advance its whole history, a list procurementItems[] and
// nextPageToken.
func TestProcurementOverREST(t *testing.T) {
	t.Parallel()
	w := newProcurementWorld(t)
	h := w.h
	bearer := "Bearer " + h.secret(t, auth.Implementer, w.fx.ngoOrgID)
	body := fmt.Sprintf(`{"procurementItem": {"grantId": %q, "milestoneId": %q, "description": "Armoured ambulance",
		"category": "VEHICLES", "critical": true, "estimatedCost": {"amount": "85000.00", "currency": "USD"},
		"expectedDeliveryDate": "2024-06-30", "requisitionedOn": "2024-02-01"}, "requestId": "veh-1"}`, w.fx.grantID, w.fx.milestoneID)
	r := h.rest(t, "POST", "/v1/procurement-items", bearer, strings.NewReader(body))
	it, _ := r.body["procurementItem"].(map[string]any)
	if r.code != 200 || it["stage"] != "REQUISITIONED" || it["category"] != "VEHICLES" || it["critical"] != true ||
		it["grantId"] != w.fx.grantID || it["milestoneId"] != w.fx.milestoneID || it["roadmapId"] != w.fx.roadmapID ||
		it["expectedDeliveryDate"] != "2024-06-30" || it["late"] != true ||
		fmt.Sprint(it["estimatedCost"]) != "map[amount:85000.00 currency:USD]" ||
		fmt.Sprint(it["stages"]) != "[map[enteredOn:2024-02-01 note: stage:REQUISITIONED]]" {
		t.Fatalf("create: %d %s", r.code, r.raw)
	}
	id, _ := it["id"].(string)
	// A retry answers the same item.
	if again := h.rest(t, "POST", "/v1/procurement-items", bearer, strings.NewReader(body)); again.code != 200 ||
		again.body["procurementItem"].(map[string]any)["id"] != id {
		t.Fatalf("retry: %d %s", again.code, again.raw)
	}
	r = h.rest(t, "POST", "/v1/procurement-items/"+id+":advance", bearer, strings.NewReader(
		// The body may repeat the path's id, in either case.
		`{"itemId": "`+strings.ToUpper(id)+`", "stage": "CONTRACTED", "enteredOn": "2024-03-15", "note": "framework contract", "requestId": "veh-2"}`))
	it, _ = r.body["procurementItem"].(map[string]any)
	if r.code != 200 || it["stage"] != "CONTRACTED" ||
		fmt.Sprint(it["stages"]) != "[map[enteredOn:2024-02-01 note: stage:REQUISITIONED] map[enteredOn:2024-03-15 note:framework contract stage:CONTRACTED]]" {
		t.Fatalf("advance: %d %s", r.code, r.raw)
	}
	r = h.rest(t, "POST", "/v1/procurement-items/"+id+":advance", bearer, strings.NewReader(`{"stage": "DELIVERED", "requestId": "veh-3"}`))
	if it, _ = r.body["procurementItem"].(map[string]any); r.code != 200 || it["late"] != false {
		t.Fatalf("delivered today: %d %s", r.code, r.raw)
	}
	w.create(t, w.admin, w.item())
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"", 2},
		{"?grantId=" + w.fx.grantID + "&stage=DELIVERED", 1},
		{"?roadmapId=" + w.fx.roadmapID + "&milestoneId=" + w.fx.milestoneID, 2},
		{"?late=true", 1}, // the dogs, expected 2024-10-01
		{"?stage=ACCEPTED", 0},
		// Ids in upper case, as every other list takes them.
		{"?grantId=" + strings.ToUpper(w.fx.grantID) + "&stage=DELIVERED", 1},
		{"?roadmapId=" + strings.ToUpper(w.fx.roadmapID) + "&milestoneId=" + strings.ToUpper(w.fx.milestoneID), 2},
	} {
		r := h.rest(t, "GET", "/v1/procurement-items"+tc.query, bearer, nil)
		list, _ := r.body["procurementItems"].([]any)
		if _, ok := r.body["nextPageToken"]; r.code != 200 || len(list) != tc.want || !ok {
			t.Errorf("GET %s: %d %s, want %d items", tc.query, r.code, r.raw, tc.want)
		}
	}
	up, err := w.items.ListProcurementItems(h.as(t, auth.Coordinator, ""), &pb.ListProcurementItemsRequest{
		RoadmapId: strings.ToUpper(w.fx.roadmapID), GrantId: strings.ToUpper(w.fx.grantID), MilestoneId: strings.ToUpper(w.fx.milestoneID)})
	if err != nil || len(up.ProcurementItems) != 2 {
		t.Errorf("gRPC list by upper-case ids: %d items, %v", len(up.GetProcurementItems()), err)
	}
	// Every write was audited once (a retry writes none): two creates, two
	// advances. The grant's donor and recipient see them, as they see the
	// grant's own events; another donor or implementer sees none.
	for _, tc := range []struct {
		role auth.Role
		org  string
		want int
	}{
		{auth.Auditor, "", 4},
		{auth.Coordinator, "", 4},
		{auth.Donor, w.fx.donorOrgID, 4},
		{auth.Implementer, w.fx.ngoOrgID, 4},
		{auth.Donor, w.otherDonor, 0},
		{auth.Implementer, w.otherNgo, 0},
	} {
		r := h.rest(t, "GET", "/v1/audit-events?entityType=procurement_item", "Bearer "+h.secret(t, tc.role, tc.org), nil)
		if events, _ := r.body["events"].([]any); r.code != 200 || len(events) != tc.want {
			t.Errorf("%s %s sees %d procurement events (%d), want %d", tc.role, tc.org, len(events), r.code, tc.want)
		}
	}
	// Pages of one.
	r = h.rest(t, "GET", "/v1/procurement-items?pageSize=1", bearer, nil)
	next, _ := r.body["nextPageToken"].(string)
	r2 := h.rest(t, "GET", "/v1/procurement-items?pageSize=1&pageToken="+next, bearer, nil)
	a, _ := r.body["procurementItems"].([]any)
	b, _ := r2.body["procurementItems"].([]any)
	if next == "" || len(a) != 1 || len(b) != 1 || a[0].(map[string]any)["id"] == b[0].(map[string]any)["id"] || r2.body["nextPageToken"] != "" {
		t.Errorf("paging: %s then %s", r.raw, r2.raw)
	}
}

// Bad input on every endpoint, over gRPC and REST, is INVALID_ARGUMENT
// naming the field, and writes nothing.
func TestProcurementBadInputNamesTheFieldAndWritesNothing(t *testing.T) {
	t.Parallel()
	w := newProcurementWorld(t)
	h := w.h
	// One coordinator token on both transports: its request ids are one scope.
	bearer := "Bearer " + h.secret(t, auth.Coordinator, "")
	coord := metadata.AppendToOutgoingContext(context.Background(), "authorization", bearer)
	it := w.create(t, coord, w.item())
	r, err := w.items.AdvanceProcurementItem(coord, &pb.AdvanceProcurementItemRequest{ItemId: it.Id, Stage: "EVALUATED",
		EnteredOn: "2024-05-10", RequestId: "adv-1"})
	if err != nil {
		t.Fatal(err)
	}
	tomorrow := time.Now().UTC().AddDate(0, 0, 1).Format(time.DateOnly)
	edit := func(f func(*pb.ProcurementItem)) *pb.CreateProcurementItemRequest {
		x := w.item()
		f(x)
		return &pb.CreateProcurementItemRequest{ProcurementItem: x, RequestId: w.rid()}
	}
	advance := func(stage, on string) *pb.AdvanceProcurementItemRequest {
		return &pb.AdvanceProcurementItemRequest{ItemId: it.Id, Stage: stage, EnteredOn: on, RequestId: w.rid()}
	}
	const (
		create = "/tranche.v1.ProcurementService/CreateProcurementItem"
		adv    = "/tranche.v1.ProcurementService/AdvanceProcurementItem"
	)
	advPath := "/v1/procurement-items/" + it.Id + ":advance"
	otherItem := w.create(t, coord, w.item())
	before := w.written(t)
	for _, tc := range []struct {
		name, method, path string
		req                proto.Message
		want               string
	}{
		{"unknown category", create, "/v1/procurement-items",
			edit(func(x *pb.ProcurementItem) { x.Category = "WEAPONS" }), "procurementItem.category"},
		{"milestone outside the grant's roadmap", create, "/v1/procurement-items",
			edit(func(x *pb.ProcurementItem) { x.MilestoneId = w.foreignMs }), "procurementItem.milestoneId"},
		{"NUL in description", create, "/v1/procurement-items",
			edit(func(x *pb.ProcurementItem) { x.Description = "dogs\x00" }), "procurementItem.description"},
		{"1 MB description", create, "/v1/procurement-items",
			edit(func(x *pb.ProcurementItem) { x.Description = strings.Repeat("d", 1<<20) }), "procurementItem.description"},
		{"absurd amount", create, "/v1/procurement-items",
			edit(func(x *pb.ProcurementItem) { x.EstimatedCost.Amount = "99999999999999999999.00" }), "procurementItem.estimatedCost.amount"},
		{"negative amount", create, "/v1/procurement-items",
			edit(func(x *pb.ProcurementItem) { x.EstimatedCost.Amount = "-5.00" }), "procurementItem.estimatedCost.amount"},
		{"cents of a yen", create, "/v1/procurement-items",
			edit(func(x *pb.ProcurementItem) { x.EstimatedCost = &pb.Money{Amount: "100.50", Currency: "JPY"} }), "procurementItem.estimatedCost.amount"},
		{"unknown currency", create, "/v1/procurement-items",
			edit(func(x *pb.ProcurementItem) { x.EstimatedCost.Currency = "XYZ" }), "procurementItem.estimatedCost.currency"},
		{"requisitioned tomorrow", create, "/v1/procurement-items",
			edit(func(x *pb.ProcurementItem) { x.RequisitionedOn, x.ExpectedDeliveryDate = tomorrow, "" }), "procurementItem.requisitionedOn"},
		{"requisitioned in 9999 (once, not also as future)", create, "/v1/procurement-items",
			edit(func(x *pb.ProcurementItem) { x.RequisitionedOn, x.ExpectedDeliveryDate = "9999-12-31", "" }), "procurementItem.requisitionedOn"},
		{"delivery before requisition", create, "/v1/procurement-items",
			edit(func(x *pb.ProcurementItem) { x.ExpectedDeliveryDate = "2024-03-31" }), "procurementItem.expectedDeliveryDate"},
		{"not a date", create, "/v1/procurement-items",
			edit(func(x *pb.ProcurementItem) { x.ExpectedDeliveryDate = "2024-02-30" }), "procurementItem.expectedDeliveryDate"},
		// Output-only fields are refused, not silently dropped.
		{"id set", create, "/v1/procurement-items", edit(func(x *pb.ProcurementItem) { x.Id = it.Id }), "procurementItem.id"},
		{"roadmap set", create, "/v1/procurement-items",
			edit(func(x *pb.ProcurementItem) { x.RoadmapId = w.fx.roadmapID }), "procurementItem.roadmapId"},
		{"stage set", create, "/v1/procurement-items", edit(func(x *pb.ProcurementItem) { x.Stage = "CONTRACTED" }), "procurementItem.stage"},
		{"stages set", create, "/v1/procurement-items", edit(func(x *pb.ProcurementItem) {
			x.Stages = []*pb.ProcurementStage{{Stage: "TENDERED", EnteredOn: "2024-04-02"}}
		}), "procurementItem.stages"},
		{"late set", create, "/v1/procurement-items", edit(func(x *pb.ProcurementItem) { x.Late = true }), "procurementItem.late"},
		{"recordedBy set", create, "/v1/procurement-items",
			edit(func(x *pb.ProcurementItem) { x.RecordedBy = "someone" }), "procurementItem.recordedBy"},
		{"recordedAt set", create, "/v1/procurement-items",
			edit(func(x *pb.ProcurementItem) { x.RecordedAt = timestamppb.Now() }), "procurementItem.recordedAt"},
		{"not a grant id", create, "/v1/procurement-items",
			edit(func(x *pb.ProcurementItem) { x.GrantId = "G-1" }), "procurementItem.grantId"},
		{"unknown stage", adv, advPath, advance("SHIPPED", "2024-05-11"), "stage"},
		{"going back", adv, advPath, advance("TENDERED", "2024-05-11"), "stage"},
		{"staying", adv, advPath, advance("EVALUATED", "2024-05-11"), "stage"},
		{"before the current stage's day", adv, advPath, advance("AWARDED", "2024-05-09"), "enteredOn"},
		{"in the future", adv, advPath, advance("AWARDED", tomorrow), "enteredOn"},
		{"not a date", adv, advPath, advance("AWARDED", "10/05/2024"), "enteredOn"},
		{"entered in 9999 (once, not also as future)", adv, advPath, advance("AWARDED", "9999-12-31"), "enteredOn"},
		{"cancelled without a note", adv, advPath, advance("CANCELLED", "2024-05-11"), "note"},
		{"cancelled with a blank note", adv, advPath, &pb.AdvanceProcurementItemRequest{ItemId: it.Id, Stage: "CANCELLED", Note: " \n",
			RequestId: w.rid()}, "note"},
		{"NUL in note", adv, advPath, &pb.AdvanceProcurementItemRequest{ItemId: it.Id, Stage: "AWARDED", Note: "\x00",
			RequestId: w.rid()}, "note"},
	} {
		err := h.conn.Invoke(coord, tc.method, tc.req, new(pb.CreateProcurementItemResponse))
		if got := violationFields(err); status.Code(err) != codes.InvalidArgument || !slicesEqual(got, []string{tc.want}) {
			t.Errorf("gRPC %s: %v, fields %q, want %s", tc.name, status.Code(err), got, tc.want)
		}
		body, err := protojson.Marshal(tc.req)
		if err != nil {
			t.Fatal(err)
		}
		r := h.rest(t, "POST", tc.path, bearer, bytes.NewReader(body))
		if got := fieldsOf(r); r.code != 400 || !slicesEqual(got, []string{tc.want}) || len(r.raw) > 8<<10 {
			t.Errorf("REST %s: %d, fields %q (%d bytes), want %s", tc.name, r.code, got, len(r.raw), tc.want)
		}
	}
	// What only JSON can get wrong, and the reads.
	for _, tc := range []struct {
		name, method, path, body string
		want                     string
	}{
		{"unknown field", "POST", "/v1/procurement-items",
			`{"procurementItem": {"grantId": "` + w.fx.grantID + `", "colour": "red"}, "requestId": "x"}`, "procurementItem.colour"},
		{"unknown advance field", "POST", advPath, `{"stage": "AWARDED", "stageDate": "2024-05-11", "requestId": "x"}`, "stageDate"},
		{"advance: body names another item", "POST", advPath, `{"itemId": "` + otherItem.Id + `", "stage": "AWARDED", "requestId": "x"}`, "itemId"},
		{"cost as a number", "POST", "/v1/procurement-items",
			`{"procurementItem": {"estimatedCost": {"amount": 1.5, "currency": "USD"}}, "requestId": "x"}`, "procurementItem.estimatedCost.amount"},
		{"critical as a string", "POST", "/v1/procurement-items", `{"procurementItem": {"critical": "yes"}, "requestId": "x"}`,
			"procurementItem.critical"},
		{"get: not an id", "GET", "/v1/procurement-items/dogs", "", "itemId"},
		{"list: unknown stage", "GET", "/v1/procurement-items?stage=SHIPPED", "", "stage"},
		{"list: not an id", "GET", "/v1/procurement-items?grantId=G-1", "", "grantId"},
		{"list: late", "GET", "/v1/procurement-items?late=perhaps", "", "late"},
		{"list: page token", "GET", "/v1/procurement-items?pageToken=%25%25", "", "pageToken"},
		{"list: unknown parameter", "GET", "/v1/procurement-items?status=OPEN", "", "status"},
	} {
		r := h.rest(t, tc.method, tc.path, bearer, strings.NewReader(tc.body))
		if got := fieldsOf(r); r.code != 400 || !slicesEqual(got, []string{tc.want}) {
			t.Errorf("REST %s: %d %s, want field %s", tc.name, r.code, r.raw, tc.want)
		}
	}
	for _, tc := range []struct {
		name string
		call func() error
		want string
	}{
		{"get: not an id", func() error {
			_, err := w.items.GetProcurementItem(coord, &pb.GetProcurementItemRequest{ItemId: "dogs"})
			return err
		}, "itemId"},
		{"list: unknown stage", func() error {
			_, err := w.items.ListProcurementItems(coord, &pb.ListProcurementItemsRequest{Stage: "SHIPPED"})
			return err
		}, "stage"},
		{"list: not an id", func() error {
			_, err := w.items.ListProcurementItems(coord, &pb.ListProcurementItemsRequest{MilestoneId: "M-1"})
			return err
		}, "milestoneId"},
	} {
		if err := tc.call(); status.Code(err) != codes.InvalidArgument || !slicesEqual(violationFields(err), []string{tc.want}) {
			t.Errorf("gRPC %s: %v, want a violation of %s", tc.name, err, tc.want)
		}
	}
	if after := w.written(t); after != before {
		t.Errorf("refused requests wrote (items, stages, events, request ids): %v → %v", before, after)
	}
	// A replay with the same payload answers the first answer; with another
	// payload it is refused; neither writes.
	again, err := w.items.AdvanceProcurementItem(coord, &pb.AdvanceProcurementItemRequest{ItemId: it.Id, Stage: "EVALUATED",
		EnteredOn: "2024-05-10", RequestId: "adv-1"})
	if err != nil || !proto.Equal(again, r) {
		t.Errorf("replay: %v, %v", again, err)
	}
	_, err = w.items.AdvanceProcurementItem(coord, &pb.AdvanceProcurementItemRequest{ItemId: it.Id, Stage: "AWARDED",
		EnteredOn: "2024-05-10", RequestId: "adv-1"})
	if status.Code(err) != codes.AlreadyExists {
		t.Errorf("adv-1 with another payload: %v", err)
	}
	rr := h.rest(t, "POST", advPath, bearer, strings.NewReader(`{"stage": "AWARDED", "enteredOn": "2024-05-10", "requestId": "adv-1"}`))
	if rr.code != 409 {
		t.Errorf("REST adv-1 with another payload: %d %s", rr.code, rr.raw)
	}
	first, err := w.items.CreateProcurementItem(coord, &pb.CreateProcurementItemRequest{ProcurementItem: w.item(), RequestId: "c-1"})
	if err != nil {
		t.Fatal(err)
	}
	before = w.written(t)
	body, _ := protojson.Marshal(&pb.CreateProcurementItemRequest{ProcurementItem: w.item(), RequestId: "c-1"})
	if rr := h.rest(t, "POST", "/v1/procurement-items", bearer, bytes.NewReader(body)); rr.code != 200 ||
		rr.body["procurementItem"].(map[string]any)["id"] != first.ProcurementItem.Id {
		t.Errorf("REST replay of c-1: %d %s", rr.code, rr.raw)
	}
	other := w.item()
	other.Critical = false
	if _, err := w.items.CreateProcurementItem(coord, &pb.CreateProcurementItemRequest{ProcurementItem: other, RequestId: "c-1"}); status.Code(err) != codes.AlreadyExists {
		t.Errorf("c-1 with another payload: %v", err)
	}
	if after := w.written(t); after != before {
		t.Errorf("replays wrote: %v → %v", before, after)
	}
}

// Concurrent advances from one stage over gRPC: exactly one is accepted,
// the others ABORTED or INVALID_ARGUMENT naming stage; never INTERNAL.
func TestConcurrentProcurementAdvancesOverGRPC(t *testing.T) {
	t.Parallel()
	w := newProcurementWorld(t)
	ngo := w.h.as(t, auth.Implementer, w.fx.ngoOrgID)
	it := w.create(t, ngo, w.item())
	const n = 6
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = w.items.AdvanceProcurementItem(ngo, &pb.AdvanceProcurementItemRequest{ItemId: it.Id, Stage: "AWARDED",
				EnteredOn: "2024-05-01", RequestId: fmt.Sprint("race-", i)})
		}()
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch status.Code(err) {
		case codes.OK:
			won++
		case codes.Aborted:
		case codes.InvalidArgument:
			if !slicesEqual(violationFields(err), []string{"stage"}) {
				t.Errorf("advance %d: %v", i, err)
			}
		default:
			t.Errorf("advance %d: %v", i, err)
		}
	}
	got, err := w.items.GetProcurementItem(ngo, &pb.GetProcurementItemRequest{ItemId: it.Id})
	if won != 1 || err != nil || len(got.ProcurementItem.Stages) != 2 {
		t.Fatalf("%d accepted; history %v, %v", won, got.GetProcurementItem().GetStages(), err)
	}
}

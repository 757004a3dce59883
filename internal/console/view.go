package console

import (
	"html/template"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
	"github.com/tranche-ledger/tranche/internal/auth"
)

// view is what every page template receives.
type view struct {
	// Title is the page's <title> and its one <h1>.
	Title string
	// Message is an error page's text; Notice a line of news (a review's
	// result); Error a form's refusal.
	Message, Notice, Error string
	CSRF                   string
	// Nav marks the current section in the navigation.
	Nav     string
	Data    any
	session *session
}

// Who is the signed-in principal, nil on the sign-in page.
func (v *view) Who() *auth.Principal {
	if v.session == nil {
		return nil
	}
	return &v.session.p
}

// CanReview tells whether the signed-in role may review flags.
func (v *view) CanReview() bool { return v.session != nil && v.session.CanReview() }

// cell is one amount cell of a table.
type cell struct {
	Field string
	// Side is the data-currency attribute (agreement or reporting); empty: none.
	Side string
	M    *pb.Money
}

var funcs = template.FuncMap{
	"ts": func(t *timestamppb.Timestamp) string {
		if t == nil || (t.Seconds == 0 && t.Nanos == 0) {
			return ""
		}
		return t.AsTime().UTC().Format(time.RFC3339)
	},
	"cell": func(field string, m *pb.Money) cell { return cell{Field: field, M: m} },
	"sidecell": func(field, side string, m *pb.Money) cell {
		return cell{Field: field, Side: side, M: m}
	},
	// short is an id's last 8 characters: the random part of a UUIDv7,
	// whose first characters are a timestamp shared by records made together.
	"short": func(id string) string {
		if len(id) > 8 {
			return "…" + id[len(id)-8:]
		}
		return id
	},
	"lower": strings.ToLower,
	"words": func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "_", " ") },
	"join":  strings.Join,
	"add":   func(a, b int) int { return a + b },
	// done names a review action as what happened: ACKNOWLEDGE → acknowledged.
	"done": func(action string) string {
		switch action {
		case "ACKNOWLEDGE":
			return "acknowledged"
		case "DISMISS":
			return "dismissed"
		case "REOPEN":
			return "reopened"
		}
		return strings.ToLower(action)
	},
}

var pageNames = []string{"signin", "error", "roadmaps", "overview", "flags", "grant", "pipeline", "audit"}

func parseTemplates() map[string]*template.Template {
	base := template.Must(template.New("").Funcs(funcs).ParseFS(templateFS, "templates/layout.html"))
	out := make(map[string]*template.Template, len(pageNames))
	for _, name := range pageNames {
		t := template.Must(base.Clone())
		out[name] = template.Must(t.ParseFS(templateFS, "templates/"+name+".html"))
	}
	return out
}

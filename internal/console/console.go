// Package console is the web console served at / on the HTTP listener: pages
// for people over what the API already offers, with the same roles and the
// same figures.
//
// Every page is rendered on the server with html/template (which escapes
// every value) and calls the gRPC services through the client connection it
// is given, the same path the REST gateway takes, passing the signed-in
// token as "authorization: Bearer …" metadata: every role check of the
// services applies, and the console never reads the database. The pages
// carry no script at all, so the Content-Security-Policy allows none.
//
// The token a person pastes once at /signin is kept in the tranche_session
// cookie (HttpOnly, SameSite=Strict, Secure over TLS); it never travels in a
// URL and is never logged. Every POST carries a CSRF token checked against
// the tranche_csrf cookie (double submit, compared in constant time).
package console

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/auth"
)

// Cookie names.
const (
	SessionCookie = "tranche_session"
	CSRFCookie    = "tranche_csrf"
)

// CSP is the Content-Security-Policy of every response: no script at all,
// styles only from the console's own stylesheet.
const CSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Options configures the console.
type Options struct {
	// Authenticate resolves a token to the principal it stands for (the
	// HTTP edge's check, token.Store.Authenticate): the console uses it to
	// accept a token at sign-in and to show who is signed in and which forms
	// their role may use. Everything else is decided by the services.
	// Required.
	Authenticate func(ctx context.Context, token string) (auth.Principal, error)
	// Log receives the console's errors; nil: discarded. No token is ever
	// written to it.
	Log *slog.Logger
	// Now is today's clock for dwell days; nil: time.Now.
	Now func() time.Time
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/console.css
var stylesheet []byte

var stylesheetETag = func() string {
	sum := sha256.Sum256(stylesheet)
	return `"` + hex.EncodeToString(sum[:8]) + `"`
}()

type handler struct {
	opts  Options
	log   *slog.Logger
	pages map[string]*template.Template

	roadmaps    pb.RoadmapServiceClient
	grants      pb.GrantServiceClient
	orgs        pb.OrganizationServiceClient
	flags       pb.FlagServiceClient
	procurement pb.ProcurementServiceClient
	audit       pb.AuditServiceClient
	packs       pb.AuditPackServiceClient
}

// New returns the console's handler over conn, to be mounted at /.
func New(conn *grpc.ClientConn, opts Options) http.Handler {
	h := newHandler(opts)
	h.roadmaps = pb.NewRoadmapServiceClient(conn)
	h.grants = pb.NewGrantServiceClient(conn)
	h.orgs = pb.NewOrganizationServiceClient(conn)
	h.flags = pb.NewFlagServiceClient(conn)
	h.procurement = pb.NewProcurementServiceClient(conn)
	h.audit = pb.NewAuditServiceClient(conn)
	h.packs = pb.NewAuditPackServiceClient(conn)
	return h.routes()
}

func newHandler(opts Options) *handler {
	if opts.Authenticate == nil {
		panic("console.New: Options.Authenticate is required")
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &handler{opts: opts, log: opts.Log, pages: parseTemplates()}
}

func (h *handler) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /static/console.css", serveStylesheet)
	mux.HandleFunc("GET /signin", h.signinForm)
	mux.HandleFunc("POST /signin", h.csrf(h.signin))
	mux.HandleFunc("POST /signout", h.csrf(h.signout))
	mux.HandleFunc("GET /{$}", h.page(h.roadmapList))
	mux.HandleFunc("GET /roadmaps/{id}", h.page(h.overview))
	mux.HandleFunc("GET /roadmaps/{id}/flags", h.page(h.flagBoard))
	mux.HandleFunc("GET /roadmaps/{id}/procurement", h.page(h.pipeline))
	mux.HandleFunc("POST /flags/{id}/review", h.csrf(h.page(h.review)))
	mux.HandleFunc("GET /grants/{id}", h.page(h.grantPage))
	mux.HandleFunc("GET /audit", h.page(h.auditPage))
	mux.HandleFunc("GET /audit/pack", h.page(h.packDownload))
	// Another method on a page's path: 405 naming the one it takes.
	for path, allow := range map[string]string{"/static/console.css": "GET, HEAD", "/signin": "GET, HEAD, POST", "/signout": "POST",
		"/roadmaps/{id}": "GET, HEAD", "/roadmaps/{id}/flags": "GET, HEAD", "/roadmaps/{id}/procurement": "GET, HEAD",
		"/flags/{id}/review": "POST", "/grants/{id}": "GET, HEAD", "/audit": "GET, HEAD", "/audit/pack": "GET, HEAD"} {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			h.render(w, r, http.StatusMethodNotAllowed, "error", &view{Title: "Not allowed",
				Message: "This page takes " + allow + " only."})
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		v := &view{Title: "Not found", Message: "There is no page here."}
		if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" {
			if p, err := h.opts.Authenticate(r.Context(), c.Value); err == nil {
				v.session = &session{p: p, csrf: h.csrfToken(w, r), ctx: r.Context()}
			}
		}
		h.render(w, r, http.StatusNotFound, "error", v)
	})
	return secure(mux)
}

// secure sets the headers every response carries.
func secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", CSP)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		if r.URL.Path != "/static/console.css" {
			hd.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

func serveStylesheet(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	// Revalidated, not re-sent: a 304 costs a slow connection nothing.
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("ETag", stylesheetETag)
	if r.Header.Get("If-None-Match") == stylesheetETag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Write(stylesheet)
}

// session is a signed-in request: the principal and a context carrying the
// token to the services.
type session struct {
	p    auth.Principal
	ctx  context.Context
	csrf string
}

// CanReview tells whether the role may review flags (the service decides;
// this only hides forms it would refuse).
func (s *session) CanReview() bool { return s.p.Can(auth.Coordinator) }

// pageFunc renders one page of a signed-in session.
type pageFunc func(w http.ResponseWriter, r *http.Request, s *session) error

// page signs the request in from its cookie (or sends it to /signin) and
// maps a service's error to an error page.
func (h *handler) page(fn pageFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(SessionCookie)
		if err != nil || c.Value == "" {
			http.Redirect(w, r, "/signin", http.StatusSeeOther)
			return
		}
		p, err := h.opts.Authenticate(r.Context(), c.Value)
		if err != nil {
			if status.Code(err) == codes.Unauthenticated || isUnauthenticated(err) {
				clearCookie(w, r, SessionCookie)
				http.Redirect(w, r, "/signin", http.StatusSeeOther)
				return
			}
			h.fail(w, r, nil, err)
			return
		}
		// A page's RPCs end with it, and at the latest after pageTimeout:
		// a stalled database answers a "took too long" page, not a hang.
		ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
		defer cancel()
		s := &session{p: p, csrf: h.csrfToken(w, r),
			ctx: metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.Value)}
		if name, ok := badText(r); !ok {
			h.fail(w, r, s, status.Errorf(codes.InvalidArgument, "%s: must be valid UTF-8 without NUL", name))
			return
		}
		if err := fn(w, r, s); err != nil {
			h.fail(w, r, s, err)
		}
	}
}

func isUnauthenticated(err error) bool { return errors.Is(err, apperr.ErrUnauthenticated) }

// pageTimeout bounds the RPCs of one page.
const pageTimeout = 30 * time.Second

// badText finds a path segment, query or form value that is not valid
// UTF-8 or holds NUL: the services refuse such text, and the gRPC client
// would refuse to send it with an internal error, so it is a bad request
// here. It names the first one.
func badText(r *http.Request) (string, bool) {
	ok := func(v string) bool { return utf8.ValidString(v) && !strings.ContainsRune(v, 0) }
	if !ok(r.URL.Path) {
		return "path", false
	}
	for k, vs := range r.URL.Query() {
		for _, v := range vs {
			if !ok(k) || !ok(v) {
				return "query parameter " + strings.ToValidUTF8(k, "?"), false
			}
		}
	}
	if r.Method == http.MethodPost {
		for k, vs := range r.PostForm {
			for _, v := range vs {
				if !ok(k) || !ok(v) {
					return "form field " + strings.ToValidUTF8(k, "?"), false
				}
			}
		}
	}
	return "", true
}

// fail answers an error of a page: NOT_FOUND and PERMISSION_DENIED on a GET
// are the same 404, so a page never tells that a record it may not show
// exists; other statuses give their own code and text.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	st, _ := status.FromError(err)
	v := &view{Title: "Error", Message: st.Message()}
	// The fields a refusal names, as the API gives them.
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			var parts []string
			for _, fv := range br.GetFieldViolations() {
				parts = append(parts, fv.GetField()+": "+fv.GetDescription())
			}
			if len(parts) > 0 {
				v.Message = strings.Join(parts, "; ")
			}
		}
	}
	code := http.StatusInternalServerError
	switch st.Code() {
	case codes.NotFound:
		code, v.Title, v.Message = http.StatusNotFound, "Not found", "There is nothing here that you may see."
	case codes.PermissionDenied:
		if r.Method == http.MethodGet {
			code, v.Title, v.Message = http.StatusNotFound, "Not found", "There is nothing here that you may see."
		} else {
			code, v.Title = http.StatusForbidden, "Not allowed"
		}
	case codes.InvalidArgument, codes.OutOfRange:
		code, v.Title = http.StatusBadRequest, "Not accepted"
	case codes.FailedPrecondition, codes.AlreadyExists, codes.Aborted:
		code, v.Title = http.StatusConflict, "Not accepted"
	case codes.Unauthenticated:
		clearCookie(w, r, SessionCookie)
		http.Redirect(w, r, "/signin", http.StatusSeeOther)
		return
	case codes.ResourceExhausted, codes.Unavailable:
		code, v.Title = http.StatusServiceUnavailable, "Busy"
	case codes.Canceled, codes.DeadlineExceeded:
		code, v.Title = http.StatusGatewayTimeout, "Took too long"
	default:
		if _, ok := status.FromError(err); !ok || st.Code() == codes.Unknown {
			v.Message = "Something went wrong on the server."
		}
	}
	if r.Context().Err() != nil {
		// The browser went away: nothing to answer, nothing wrong here.
		return
	}
	if code >= 500 {
		h.log.ErrorContext(r.Context(), "console page failed", "method", r.Method, "path", r.URL.Path,
			"code", st.Code().String(), "err", err.Error())
	}
	if s != nil {
		v.session = s
	}
	h.render(w, r, code, "error", v)
}

// pageError is an error the console itself answers with a code.
func pageError(c codes.Code, msg string) error { return status.Error(c, msg) }

// csrf refuses a POST whose csrf field does not equal its tranche_csrf
// cookie, before anything else reads the form.
func (h *handler) csrf(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				h.render(w, r, http.StatusRequestEntityTooLarge, "error", &view{Title: "Too long",
					Message: "The form was refused: it is longer than 64 KiB."})
				return
			}
			h.render(w, r, http.StatusBadRequest, "error", &view{Title: "Not accepted", Message: "The form could not be read."})
			return
		}
		c, err := r.Cookie(CSRFCookie)
		field := r.PostFormValue("csrf")
		if err != nil || len(c.Value) < 32 || field == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(field)) != 1 {
			h.render(w, r, http.StatusForbidden, "error", &view{Title: "Refused",
				Message: "The form was refused: its security token is missing or stale. Go back, reload the page and try again."})
			return
		}
		next(w, r)
	}
}

// csrfToken returns the request's CSRF token, setting the cookie if the
// browser has none yet.
func (h *handler) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(CSRFCookie); err == nil && len(c.Value) >= 32 {
		return c.Value
	}
	var b [32]byte
	rand.Read(b[:])
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	http.SetCookie(w, &http.Cookie{Name: CSRFCookie, Value: tok, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: overTLS(r)})
	return tok
}

// overTLS tells whether the browser reached the console over TLS: directly,
// or through a proxy that ended TLS and says so (X-Forwarded-Proto: https;
// tranche serve has no TLS of its own). Trusting the header can only make
// a cookie stricter: a Secure cookie is one a browser sends over TLS alone.
func overTLS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func clearCookie(w http.ResponseWriter, r *http.Request, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: overTLS(r)})
}

// render executes a page template into a buffer first, so a failure midway
// is an error page, not half a page.
func (h *handler) render(w http.ResponseWriter, r *http.Request, code int, name string, v *view) {
	if v.session == nil {
		v.CSRF = h.csrfToken(w, r)
	} else {
		v.CSRF = v.session.csrf
	}
	var buf bytes.Buffer
	if err := h.pages[name].ExecuteTemplate(&buf, "layout", v); err != nil {
		h.log.ErrorContext(r.Context(), "console template failed", "page", name, "err", err.Error())
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

package server

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/google/uuid"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

// maxBodyBytes bounds a REST request body. The largest legitimate request
// (10 000 FX rates, or a batch of 1 000 entries) is well under 2 MiB.
const maxBodyBytes = 4 << 20

// edge guards the gateway: it refuses a request without a valid bearer token,
// or with a body over maxBodyBytes, before anything reads the body, so an
// anonymous or oversized upload costs neither memory nor decoding. The gRPC
// interceptors still authenticate and authorise every call behind it.
func (s *Server) edge(gw *runtime.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// One request id for the edge's refusals and, through the header, for
		// the gRPC call behind it (the interceptor echoes it).
		rid := r.Header.Get("X-Request-Id")
		if rid == "" || len(rid) > 100 {
			rid = uuid.NewString()
			r.Header.Set("X-Request-Id", rid)
		}
		refuse := func(err error) {
			_, out := runtime.MarshalerForRequest(gw, r)
			runtime.HTTPError(r.Context(), gw, out, w, r, err)
			s.log.InfoContext(r.Context(), "http refused", "method", r.Method, "path", r.URL.Path,
				"request_id", rid, "err", err.Error())
		}
		values := r.Header.Values("Authorization")
		if len(values) == 0 {
			refuse(status.Error(codes.Unauthenticated, errMissingToken))
			return
		}
		secret, ok := bearerToken(values[0])
		if !ok {
			refuse(status.Error(codes.Unauthenticated, errNotBearer))
			return
		}
		p, err := s.tokens.Authenticate(r.Context(), secret)
		if err != nil {
			refuse(err)
			return
		}
		limit := int64(maxBodyBytes)
		if r.Method == http.MethodPost && r.URL.Path == importPath {
			// An import's files are large: its body may be too, but only
			// for a caller who may import, refused before the body is read.
			if err := mayImport(p); err != nil {
				refuse(toStatus(r.Context(), s.log, err))
				return
			}
			limit = importBodyBytes
		}
		if r.ContentLength > limit {
			refuse(&http.MaxBytesError{Limit: limit})
			return
		}
		// A chunked body has no length up front: it is cut off at the limit.
		r.Body = &requestBody{ReadCloser: http.MaxBytesReader(w, r.Body, limit)}
		gw.ServeHTTP(w, r)
	})
}

// requestBody is a REST request's body. It keeps the error that ends reading
// or decoding it, because the generated gateway code flattens that error into
// a message string before the error handler sees it.
type requestBody struct {
	io.ReadCloser
	fault error
	// path holds the request's path parameters (proto field paths to
	// values), for the decoder to refuse a body naming others (restinput.go).
	path map[string]string
}

func (b *requestBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) && b.fault == nil {
		b.fault = err
	}
	return n, err
}

// gatewayOptions configures how the gateway decodes requests and answers
// errors: every error it answers goes through httpStatus (errors.go).
func (s *Server) gatewayOptions(routes *routeProbe) []runtime.ServeMuxOption {
	opts := []runtime.ServeMuxOption{
		// Answers are marshalled as grpc-gateway's default marshaler does;
		// request bodies are decoded strictly (restinput.go).
		runtime.WithMarshalerOption(runtime.MIMEWildcard, strictJSON{&runtime.HTTPBodyMarshaler{
			Marshaler: &runtime.JSONPb{MarshalOptions: protojson.MarshalOptions{EmitUnpopulated: true}},
		}}),
		runtime.WithErrorHandler(s.gatewayError),
		// A POST with a form body is not a GET: grpc-gateway would otherwise
		// route it to the GET of the same path, ignoring the body.
		runtime.WithDisablePathLengthFallback(),
		// A known path with a method it does not take is 405 with the methods
		// it does take (grpc-gateway answers 501 and lists none).
		runtime.WithRoutingErrorHandler(func(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, code int) {
			if code != http.StatusMethodNotAllowed {
				runtime.DefaultRoutingErrorHandler(ctx, mux, m, w, r, code)
				return
			}
			allow := strings.Join(routes.allowed(r), ", ")
			w.Header().Set("Allow", allow)
			runtime.HTTPError(ctx, mux, m, w, r, &runtime.HTTPStatusError{HTTPStatus: code,
				Err: status.Errorf(codes.Unimplemented, "method %s is not allowed here; allowed: %s", r.Method, allow)})
		}),
	}
	// The query parser is a process-wide variable in grpc-gateway: set it
	// once, not while another server's gateway is reading it.
	setQueryParser.Do(func() { opts = append(opts, runtime.SetQueryParameterParser(strictQuery{})) })
	return opts
}

var setQueryParser sync.Once

// gatewayError answers every error of the gateway, through httpStatus.
func (s *Server) gatewayError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	// A request refused before its gRPC call has no request id from the
	// interceptor: answer with the one the edge chose.
	md, ok := runtime.ServerMetadataFromContext(ctx)
	reached := ok && len(md.HeaderMD.Get("x-request-id")) > 0
	rid := r.Header.Get("X-Request-Id")
	if !reached {
		w.Header().Set("X-Request-Id", rid)
	}
	err = httpStatus(ctx, s.log, r, err)
	var custom *runtime.HTTPStatusError
	if code := status.Code(err); !reached && !errors.As(err, &custom) && (code == codes.Internal || code == codes.Unknown) {
		// The gateway failed on its own side of the call (building or
		// marshalling the request): no interceptor saw it, so it is logged
		// here, in full, and answered like any internal error.
		s.log.ErrorContext(ctx, "http internal error", "method", r.Method, "path", r.URL.Path, "request_id", rid, "err", err.Error())
		err = status.Errorf(codes.Internal, "internal error (request id %s)", rid)
	}
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
}

// registerFunc adds one service's REST routes to a gateway mux.
type registerFunc func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error

// routeProbe tells which methods the gateway routes for a path: a second mux
// with the same routes whose handlers only note that they matched. It is
// consulted only for a 405, which must list the allowed methods (RFC 9110).
type routeProbe struct {
	mux *runtime.ServeMux
}

type probeHit struct{}

func newRouteProbe(ctx context.Context, conn *grpc.ClientConn, registers []registerFunc) (*routeProbe, error) {
	mux := runtime.NewServeMux(
		runtime.WithMiddlewares(func(runtime.HandlerFunc) runtime.HandlerFunc {
			return func(_ http.ResponseWriter, r *http.Request, _ map[string]string) {
				if hit, ok := r.Context().Value(probeHit{}).(*bool); ok {
					*hit = true
				}
			}
		}),
		runtime.WithRoutingErrorHandler(func(context.Context, *runtime.ServeMux, runtime.Marshaler, http.ResponseWriter, *http.Request, int) {}),
	)
	for _, register := range registers {
		if err := register(ctx, mux, conn); err != nil {
			return nil, err
		}
	}
	return &routeProbe{mux: mux}, nil
}

func (p *routeProbe) allowed(r *http.Request) []string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		hit := false
		probe := (&http.Request{Method: m, URL: r.URL, Header: http.Header{}}).
			WithContext(context.WithValue(r.Context(), probeHit{}, &hit))
		p.mux.ServeHTTP(discardResponse{}, probe)
		if hit {
			out = append(out, m)
		}
	}
	return out
}

type discardResponse struct{}

func (discardResponse) Header() http.Header         { return http.Header{} }
func (discardResponse) Write(b []byte) (int, error) { return len(b), nil }
func (discardResponse) WriteHeader(int)             {}

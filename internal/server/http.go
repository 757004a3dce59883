package server

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/google/uuid"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
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
		if _, err := s.tokens.Authenticate(r.Context(), secret); err != nil {
			refuse(err)
			return
		}
		if r.ContentLength > maxBodyBytes {
			refuse(&http.MaxBytesError{Limit: maxBodyBytes})
			return
		}
		// A chunked body has no length up front: it is cut off at the limit.
		r.Body = &requestBody{ReadCloser: http.MaxBytesReader(w, r.Body, maxBodyBytes)}
		gw.ServeHTTP(w, r)
	})
}

// requestBody is a REST request's body. It keeps the error that ends reading
// or decoding it, because the generated gateway code flattens that error into
// a message string before the error handler sees it.
type requestBody struct {
	io.ReadCloser
	fault error
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
func (s *Server) gatewayOptions() []runtime.ServeMuxOption {
	return []runtime.ServeMuxOption{
		// Answers are marshalled as grpc-gateway's default marshaler does;
		// request bodies are decoded strictly (restinput.go).
		runtime.WithMarshalerOption(runtime.MIMEWildcard, strictJSON{&runtime.HTTPBodyMarshaler{
			Marshaler: &runtime.JSONPb{MarshalOptions: protojson.MarshalOptions{EmitUnpopulated: true}},
		}}),
		// A process-wide setting in grpc-gateway; every tranche mux sets the same.
		runtime.SetQueryParameterParser(strictQuery{}),
		runtime.WithErrorHandler(func(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
			// A request refused before its gRPC call has no request id from
			// the interceptor: answer with the one the edge chose.
			if md, ok := runtime.ServerMetadataFromContext(ctx); !ok || len(md.HeaderMD.Get("x-request-id")) == 0 {
				w.Header().Set("X-Request-Id", r.Header.Get("X-Request-Id"))
			}
			runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, httpStatus(ctx, s.log, r, err))
		}),
	}
}

package server

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"google.golang.org/grpc/tap"

	"buf.build/go/protovalidate"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/token"
)

type (
	requestIDKey struct{}
	callerKey    struct{}
)

func requestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// public methods need no token: health checks and reflection (the schema is
// public anyway at /openapi.json).
func public(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.v1.") || strings.HasPrefix(method, "/grpc.reflection.")
}

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tranche_grpc_requests_total", Help: "RPCs handled, by method and status code.",
		}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tranche_grpc_request_duration_seconds", Help: "RPC latency by method.",
			Buckets: []float64{.001, .0025, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"method"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// interceptor chains recovery → logging (with metrics) → authentication →
// text check and validation for unary calls; stream is the same for server
// streams.
type interceptor struct {
	log       *slog.Logger
	tokens    *token.Store
	validator protovalidate.Validator
	metrics   *metrics
}

func (ic *interceptor) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	ctx, finish := ic.begin(ctx, info.FullMethod)
	defer func() { finish(err) }()
	defer func() {
		if r := recover(); r != nil {
			ic.log.ErrorContext(ctx, "panic", "method", info.FullMethod, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			resp, err = nil, status.Errorf(codes.Internal, "internal error (request id %s)", requestIDFrom(ctx))
		}
	}()
	ctx, err = ic.authenticate(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	if err := checkMethod(ctx, info.FullMethod, req); err != nil {
		return nil, toStatus(ctx, ic.log, err)
	}
	if m, ok := req.(proto.Message); ok {
		if err := checkRequest(ic.validator, m); err != nil {
			return nil, toStatus(ctx, ic.log, err)
		}
	}
	resp, err = handler(ctx, req)
	return resp, toStatus(ctx, ic.log, err)
}

type wrappedStream struct {
	grpc.ServerStream
	ctx       context.Context
	validator protovalidate.Validator
	log       *slog.Logger
	method    string
}

func (w *wrappedStream) Context() context.Context { return w.ctx }

func (w *wrappedStream) RecvMsg(m any) error {
	if err := w.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if err := checkMethod(w.ctx, w.method, m); err != nil {
		return toStatus(w.ctx, w.log, err)
	}
	if pm, ok := m.(proto.Message); ok {
		if err := checkRequest(w.validator, pm); err != nil {
			return toStatus(w.ctx, w.log, err)
		}
	}
	return nil
}

func (ic *interceptor) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	ctx, finish := ic.begin(ss.Context(), info.FullMethod)
	defer func() { finish(err) }()
	defer func() {
		if r := recover(); r != nil {
			ic.log.ErrorContext(ctx, "panic", "method", info.FullMethod, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = status.Errorf(codes.Internal, "internal error (request id %s)", requestIDFrom(ctx))
		}
	}()
	ctx, err = ic.authenticate(ctx, info.FullMethod)
	if err != nil {
		return err
	}
	err = handler(srv, &wrappedStream{ServerStream: ss, ctx: ctx, validator: ic.validator, log: ic.log, method: info.FullMethod})
	return toStatus(ctx, ic.log, err)
}

// checkRequest refuses bad text in any string field (textcheck.go), then
// checks the message's validation rules.
func checkRequest(v protovalidate.Validator, m proto.Message) error {
	if err := checkText(m); err != nil {
		return err
	}
	return v.Validate(m)
}

// begin assigns the request id (the caller's x-request-id, or a new one),
// sends it back as a header, and returns a function that logs and counts the
// call when it ends.
func (ic *interceptor) begin(ctx context.Context, method string) (context.Context, func(error)) {
	start := time.Now()
	rid := ""
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("x-request-id"); len(v) > 0 && len(v[0]) <= 100 {
			rid = v[0]
		}
	}
	if rid == "" {
		rid = uuid.NewString()
	}
	ctx = context.WithValue(ctx, requestIDKey{}, rid)
	who := new(auth.Principal) // filled in by authenticate, for the log line
	ctx = context.WithValue(ctx, callerKey{}, who)
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-request-id", rid))
	return ctx, func(err error) {
		code := status.Code(err)
		d := time.Since(start)
		ic.metrics.requests.WithLabelValues(method, code.String()).Inc()
		ic.metrics.duration.WithLabelValues(method).Observe(d.Seconds())
		level := slog.LevelInfo
		if code == codes.Internal || code == codes.Unknown {
			level = slog.LevelError
		}
		if public(method) {
			level = slog.LevelDebug
		}
		ic.log.Log(ctx, level, "rpc", "method", method, "code", code.String(), "duration_ms", float64(d.Microseconds())/1000,
			"request_id", rid, "role", string(who.Role), "token_id", who.TokenID)
	}
}

// tappedKey holds the principal the tap resolved, so the interceptor does
// not look the token up again.
type tappedKey struct{}

// tap runs before gRPC reads a request message: a call without a valid
// token, or an import by a role that may not import, is refused before its
// (up to 65 MiB) message is received and decoded.
func (ic *interceptor) tap(ctx context.Context, info *tap.Info) (context.Context, error) {
	if public(info.FullMethodName) {
		return ctx, nil
	}
	p, err := ic.principal(ctx, info.Header)
	if err != nil {
		return ctx, err
	}
	if info.FullMethodName == importMethod && !p.Can(auth.Coordinator) {
		return ctx, status.Errorf(codes.PermissionDenied, "role %s may not import", p.Role)
	}
	return context.WithValue(ctx, tappedKey{}, p), nil
}

// principal resolves the bearer token of the call's metadata.
func (ic *interceptor) principal(ctx context.Context, md metadata.MD) (auth.Principal, error) {
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return auth.Principal{}, status.Error(codes.Unauthenticated, errMissingToken)
	}
	secret, ok := bearerToken(vals[0])
	if !ok {
		return auth.Principal{}, status.Error(codes.Unauthenticated, errNotBearer)
	}
	p, err := ic.tokens.Authenticate(ctx, secret)
	if err != nil {
		return auth.Principal{}, toStatus(ctx, ic.log, err)
	}
	return p, nil
}

// authenticate resolves the bearer token into the principal (the tap's,
// when it ran) and records the call for the audit trail.
func (ic *interceptor) authenticate(ctx context.Context, method string) (context.Context, error) {
	if public(method) {
		return ctx, nil
	}
	p, ok := ctx.Value(tappedKey{}).(auth.Principal)
	if !ok {
		md, _ := metadata.FromIncomingContext(ctx)
		var err error
		if p, err = ic.principal(ctx, md); err != nil {
			return ctx, err
		}
	}
	ctx = auth.WithPrincipal(ctx, p)
	if who, ok := ctx.Value(callerKey{}).(*auth.Principal); ok {
		*who = p
	}
	return audit.WithCall(ctx, audit.Call{Method: method, RequestID: requestIDFrom(ctx)}), nil
}

const (
	errMissingToken = "missing bearer token (Authorization: Bearer <token>)"
	errNotBearer    = "authorization must be a bearer token"
)

// bearerToken returns the token of an Authorization value "Bearer <token>".
// The scheme is case-insensitive (RFC 7235), so "bearer" is accepted too.
func bearerToken(authorization string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(authorization), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

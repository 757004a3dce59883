// Package server exposes the domains over gRPC and, through grpc-gateway, as
// REST/JSON. It translates between protos and domain types; the domains hold
// the rules. The gateway reaches the gRPC server through a real client
// connection, so authentication, validation and logging apply to REST too.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"buf.build/go/protovalidate"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/tranche-ledger/tranche/api"
	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/console"
	"github.com/tranche-ledger/tranche/internal/detect"
	"github.com/tranche-ledger/tranche/internal/fx"
	"github.com/tranche-ledger/tranche/internal/imports"
	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/internal/org"
	"github.com/tranche-ledger/tranche/internal/postgres"
	"github.com/tranche-ledger/tranche/internal/procurement"
	"github.com/tranche-ledger/tranche/internal/roadmap"
	"github.com/tranche-ledger/tranche/internal/token"
	"github.com/tranche-ledger/tranche/reports"
)

// Config says where to listen.
type Config struct {
	GRPCAddr string
	HTTPAddr string
	// ShutdownTimeout bounds how long in-flight requests may drain.
	ShutdownTimeout time.Duration
	// DetectInterval is how often the server runs detection over every
	// roadmap in the background; 0 turns background detection off.
	DetectInterval time.Duration
}

// Server is the gRPC server, the REST gateway and the background work of one
// tranche process.
type Server struct {
	cfg    Config
	log    *slog.Logger
	pool   *pgxpool.Pool
	sealer *audit.Sealer
	grpc   *grpc.Server
	health *health.Server
	ready  atomic.Bool
	reg    *prometheus.Registry
	tokens *token.Store // the HTTP edge refuses bad tokens before reading a body
	detect *detect.Store
	// console is the web console mounted at / (internal/console); nil: none,
	// and the gateway answers every path.
	console http.Handler
}

// Stores are the domains the server exposes, built once by the caller
// (cmd/tranche), and the pool that readiness checks and the audit sealer use.
type Stores struct {
	Pool          *pgxpool.Pool
	Tokens        *token.Store
	Organizations *org.Store
	Roadmaps      *roadmap.Store
	Ledger        *ledger.Store
	FX            *fx.Store
	Audit         *audit.Store
	Procurement   *procurement.Store
	Detect        *detect.Store
}

// New wires the services over the stores.
func New(cfg Config, st Stores, log *slog.Logger) (*Server, error) {
	pool, tokens := st.Pool, st.Tokens
	v, err := protovalidate.New()
	if err != nil {
		return nil, fmt.Errorf("building validator: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ic := &interceptor{log: log, tokens: tokens, validator: v, metrics: newMetrics(reg)}
	s := &Server{
		cfg: cfg, log: log, pool: pool, sealer: st.Audit.Sealer(), reg: reg, tokens: tokens, detect: st.Detect,
		grpc: grpc.NewServer(
			grpc.ChainUnaryInterceptor(ic.unary),
			grpc.ChainStreamInterceptor(ic.stream),
			// CreateImport's files may be this large; checkMethod holds
			// every other method to maxMessageBytes.
			grpc.MaxRecvMsgSize(importMessageBytes),
			// Tokens are checked before a message is read (ic.tap), so an
			// unauthenticated caller never makes the server receive one.
			grpc.InTapHandle(ic.tap),
			grpc.ForceServerCodecV2(textCodec{}), // bad UTF-8 reaches the text check
		),
		health: health.NewServer(),
	}
	s.sealer.Log = log
	pb.RegisterOrganizationServiceServer(s.grpc, &organizationService{orgs: st.Organizations})
	pb.RegisterAuditServiceServer(s.grpc, &auditService{audit: st.Audit})
	pb.RegisterRoadmapServiceServer(s.grpc, &roadmapService{roadmaps: st.Roadmaps, funding: st.Ledger})
	pb.RegisterGrantServiceServer(s.grpc, &grantService{l: st.Ledger, pool: pool})
	pb.RegisterFxRateServiceServer(s.grpc, &fxService{fx: st.FX})
	pb.RegisterProcurementServiceServer(s.grpc, &procurementService{items: st.Procurement})
	pb.RegisterFlagServiceServer(s.grpc, &flagService{flags: st.Detect})
	pb.RegisterAuditPackServiceServer(s.grpc, &packService{src: reports.Source{DB: pool, Audit: st.Audit}, grants: st.Ledger,
		slots: make(chan struct{}, packBuilds)})
	pb.RegisterImportServiceServer(s.grpc, &importService{imports: imports.New(pool)})
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	s.setReady(false, "starting")
	return s, nil
}

func (s *Server) setReady(ok bool, why string) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if ok {
		st = healthpb.HealthCheckResponse_SERVING
	}
	if s.ready.Swap(ok) != ok || !ok {
		s.log.Debug("readiness", "ready", ok, "reason", why)
	}
	s.health.SetServingStatus("", st)
	for name := range s.grpc.GetServiceInfo() {
		s.health.SetServingStatus(name, st)
	}
}

// watchReadiness reports ready only while the database answers and carries
// every migration this binary knows.
func (s *Server) watchReadiness(ctx context.Context) {
	check := func() {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := postgres.SchemaReady(cctx, s.pool); err != nil {
			s.setReady(false, err.Error())
			return
		}
		s.setReady(true, "")
	}
	check()
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			check()
		}
	}
}

// Run listens on both addresses and serves until ctx ends, then drains
// in-flight requests (up to ShutdownTimeout) and returns. ready, if non-nil,
// receives the actual listen addresses once both listeners are open.
func (s *Server) Run(ctx context.Context, ready func(grpcAddr, httpAddr string)) error {
	// Every return closes what was opened so far: a failed start leaves no
	// port bound. Serve and Shutdown close the listeners too; a second Close
	// is harmless.
	gl, err := net.Listen("tcp", s.cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("gRPC listener: %w", err)
	}
	defer gl.Close()
	hl, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("HTTP listener: %w", err)
	}
	defer hl.Close()
	conn, err := grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return fmt.Errorf("gateway connection: %w", err)
	}
	defer conn.Close()
	gw, err := s.gateway(ctx, conn)
	if err != nil {
		return err
	}
	// The console calls the services through the gateway's connection, so
	// every role check applies to its pages as to the API.
	s.console = console.New(conn, console.Options{Authenticate: s.tokens.Authenticate, Log: s.log})
	httpSrv := &http.Server{Handler: s.httpHandler(gw), ReadHeaderTimeout: 10 * time.Second}

	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	sealerDone := make(chan struct{})
	go func() { s.sealer.Run(bg); close(sealerDone) }()
	go s.watchReadiness(bg)
	detectDone := make(chan struct{})
	if s.cfg.DetectInterval > 0 && s.detect != nil {
		go func() { detectInBackground(bg, s.detect, s.cfg.DetectInterval, s.log); close(detectDone) }()
	} else {
		close(detectDone)
	}

	errc := make(chan error, 2)
	go func() { errc <- s.grpc.Serve(gl) }()
	go func() { errc <- httpSrv.Serve(hl) }()
	s.log.Info("serving", "grpc", gl.Addr().String(), "http", hl.Addr().String())
	if ready != nil {
		ready(gl.Addr().String(), hl.Addr().String())
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	s.log.Info("shutting down: draining in-flight requests")
	stopBG()
	s.setReady(false, "shutting down")
	timeout := s.cfg.ShutdownTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_ = httpSrv.Shutdown(sctx)
	stopped := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-sctx.Done():
		s.grpc.Stop()
	}
	<-sealerDone
	<-detectDone
	if runErr != nil && !errors.Is(runErr, http.ErrServerClosed) && !errors.Is(runErr, grpc.ErrServerStopped) {
		return runErr
	}
	return nil
}

// gatewayServices are the services served over REST.
var gatewayServices = []registerFunc{
	pb.RegisterOrganizationServiceHandler,
	pb.RegisterAuditServiceHandler,
	pb.RegisterRoadmapServiceHandler,
	pb.RegisterGrantServiceHandler,
	pb.RegisterFxRateServiceHandler,
	pb.RegisterProcurementServiceHandler,
	pb.RegisterFlagServiceHandler,
	pb.RegisterAuditPackServiceHandler, // its route is replaced by packDownload
	pb.RegisterImportServiceHandler,    // its export route is replaced by iatiExport
}

func (s *Server) gateway(ctx context.Context, conn *grpc.ClientConn) (*runtime.ServeMux, error) {
	routes, err := newRouteProbe(ctx, conn, gatewayServices)
	if err != nil {
		return nil, fmt.Errorf("registering gateway: %w", err)
	}
	var mux *runtime.ServeMux
	mux = runtime.NewServeMux(append(s.gatewayOptions(routes), runtime.WithMiddlewares(s.restParams(&mux)),
		runtime.WithIncomingHeaderMatcher(func(key string) (string, bool) {
			if strings.EqualFold(key, "X-Request-Id") {
				return "x-request-id", true
			}
			return runtime.DefaultHeaderMatcher(key)
		}),
		runtime.WithOutgoingHeaderMatcher(func(key string) (string, bool) {
			if key == "x-request-id" {
				return "X-Request-Id", true
			}
			return "", false
		}),
	)...)
	for _, register := range gatewayServices {
		if err := register(ctx, mux, conn); err != nil {
			return nil, fmt.Errorf("registering gateway: %w", err)
		}
	}
	// Registered last, so it takes the generated route's place: the pack
	// travels as the file itself, not as JSON-framed chunks.
	if err := mux.HandlePath(http.MethodGet, packPath, s.packDownload(mux, conn)); err != nil {
		return nil, fmt.Errorf("registering gateway: %w", err)
	}
	if err := mux.HandlePath(http.MethodGet, iatiExportPath, s.iatiExport(mux, conn)); err != nil {
		return nil, fmt.Errorf("registering gateway: %w", err)
	}
	return mux, nil
}

func (s *Server) httpHandler(gw *runtime.ServeMux) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if !s.ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, `{"status":"NOT_SERVING"}`)
			return
		}
		fmt.Fprintln(w, `{"status":"SERVING"}`)
	})
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(api.OpenAPI)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	if s.console == nil {
		mux.Handle("/", s.edge(gw))
		return mux
	}
	// The API keeps /v1/; every other path is the console's.
	mux.Handle("/v1/", s.edge(gw))
	mux.Handle("/", s.console)
	return mux
}

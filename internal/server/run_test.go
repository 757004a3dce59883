package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tranche-ledger/tranche/internal/testdb"
)

// freeAddr is a loopback address nobody listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// Whether Run fails to start or stops, it leaves no port bound.
func TestRunReleasesListeners(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name     string
		httpAddr string // "": a free one
		wantErr  string // "": Run serves until stopped
	}{
		{"HTTP address in use", busy.Addr().String(), "HTTP listener"},
		{"HTTP address with an unknown port", "127.0.0.1:no-such-port", "HTTP listener"},
		{"normal stop", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			grpcAddr, httpAddr := freeAddr(t), tc.httpAddr
			if httpAddr == "" {
				httpAddr = freeAddr(t)
			}
			srv, err := New(Config{GRPCAddr: grpcAddr, HTTPAddr: httpAddr, ShutdownTimeout: 5 * time.Second},
				testStores(db.App), slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			ctx, stop := context.WithCancel(context.Background())
			defer stop()
			serving := make(chan struct{})
			done := make(chan error, 1)
			go func() { done <- srv.Run(ctx, func(string, string) { close(serving) }) }()
			select {
			case <-serving:
				if tc.wantErr != "" {
					t.Fatal("Run served, want a failed start")
				}
				stop()
				if err := <-done; err != nil {
					t.Fatalf("Run after stop: %v", err)
				}
			case err := <-done:
				if tc.wantErr == "" || err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Run: %v, want an error about %q", err, tc.wantErr)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("Run neither served nor failed")
			}
			for _, addr := range []string{grpcAddr, httpAddr} {
				if addr == busy.Addr().String() || strings.Contains(addr, "no-such-port") {
					continue
				}
				l, err := net.Listen("tcp", addr)
				if err != nil {
					t.Fatalf("%s still bound after Run returned: %v", addr, err)
				}
				l.Close()
			}
		})
	}
}

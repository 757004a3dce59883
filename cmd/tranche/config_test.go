package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// load resolves a command's configuration the way the commands do, without a
// database.
func load(serve bool, env map[string]string, args ...string) (Config, error) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return parseCommand(fs, registerConfig(fs, serve), args, env)
}

func defaults() Config {
	return Config{
		DataDir: "./tranche-data", LogLevel: slog.LevelInfo,
		GRPCAddr: "127.0.0.1:9090", HTTPAddr: "127.0.0.1:8080",
		TokenCacheTTL: 5 * time.Second, ShutdownTimeout: 30 * time.Second, MaxConns: 32,
		DetectInterval: time.Hour,
	}
}

func TestConfigPrecedence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		serve bool
		env   map[string]string
		args  []string
		want  func(*Config)
	}{
		{name: "defaults", serve: true},
		{name: "environment over default", serve: true,
			env: map[string]string{"TRANCHE_MAX_CONNS": "8", "TRANCHE_TOKEN_CACHE_TTL": "1m", "TRANCHE_LOG_LEVEL": "debug",
				"TRANCHE_GRPC_ADDR": ":9191", "TRANCHE_HTTP_ADDR": "0.0.0.0:8181", "TRANCHE_DATA_DIR": "/var/lib/tranche",
				"TRANCHE_SHUTDOWN_TIMEOUT": "5s"},
			want: func(c *Config) {
				c.MaxConns, c.TokenCacheTTL, c.LogLevel = 8, time.Minute, slog.LevelDebug
				c.GRPCAddr, c.HTTPAddr, c.DataDir, c.ShutdownTimeout = ":9191", "0.0.0.0:8181", "/var/lib/tranche", 5*time.Second
			}},
		{name: "flag over environment", serve: true,
			env:  map[string]string{"TRANCHE_MAX_CONNS": "8", "TRANCHE_LOG_LEVEL": "debug", "DATABASE_URL": "postgres://a@db/x"},
			args: []string{"--max-conns", "16", "--log-level=warn", "--database-url", "postgres://b@db/y"},
			want: func(c *Config) { c.MaxConns, c.LogLevel, c.DatabaseURL = 16, slog.LevelWarn, "postgres://b@db/y" }},
		{name: "an empty flag still wins", serve: true,
			env:  map[string]string{"DATABASE_URL": "postgres://a@db/x"},
			args: []string{"--database-url="}},
		{name: "an empty variable is unset", serve: true,
			env: map[string]string{"TRANCHE_GRPC_ADDR": "", "TRANCHE_MAX_CONNS": "", "DATABASE_URL": ""}},
		{name: "a malformed variable overridden by its flag is not used", serve: true,
			env:  map[string]string{"TRANCHE_TOKEN_CACHE_TTL": "soon"},
			args: []string{"--token-cache-ttl", "0"},
			want: func(c *Config) { c.TokenCacheTTL = 0 }},
		{name: "external database with its migration owner", serve: true,
			env: map[string]string{"DATABASE_URL": "postgres://svc@db/tranche", "MIGRATE_DATABASE_URL": "postgres://owner@db/tranche"},
			want: func(c *Config) {
				c.DatabaseURL, c.MigrateDatabaseURL = "postgres://svc@db/tranche", "postgres://owner@db/tranche"
			}},
		{name: "background detection off", serve: true,
			env:  map[string]string{"TRANCHE_DETECT_INTERVAL": "0"},
			want: func(c *Config) { c.DetectInterval = 0 }},
		{name: "detection interval by flag", serve: true,
			env:  map[string]string{"TRANCHE_DETECT_INTERVAL": "0"},
			args: []string{"--detect-interval", "15m"},
			want: func(c *Config) { c.DetectInterval = 15 * time.Minute }},
		{name: "other commands ignore serve's settings",
			env: map[string]string{"TRANCHE_MAX_CONNS": "lots", "TRANCHE_DATA_DIR": "/srv/t",
				"TRANCHE_DETECT_CONFIG": "/nonexistent.json", "TRANCHE_DETECT_INTERVAL": "often"},
			want: func(c *Config) { c.DataDir = "/srv/t" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := load(tc.serve, tc.env, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			want := defaults()
			if tc.want != nil {
				tc.want(&want)
			}
			if got != want {
				t.Fatalf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestConfigRefusesMalformedValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want []string // each must appear in the message
	}{
		{"cache TTL without a unit", map[string]string{"TRANCHE_TOKEN_CACHE_TTL": "5"}, nil,
			[]string{"--token-cache-ttl (env TRANCHE_TOKEN_CACHE_TTL)", `"5" is not a duration`}},
		{"unknown log level", map[string]string{"TRANCHE_LOG_LEVEL": "verbose"}, nil,
			[]string{"--log-level (env TRANCHE_LOG_LEVEL)", `"verbose"`}},
		{"max conns not a number", map[string]string{"TRANCHE_MAX_CONNS": "lots"}, nil,
			[]string{"--max-conns (env TRANCHE_MAX_CONNS)", `"lots" is not a whole number`}},
		{"no connections", nil, []string{"--max-conns", "0"},
			[]string{"--max-conns (env TRANCHE_MAX_CONNS)", "got 0"}},
		{"negative connections", map[string]string{"TRANCHE_MAX_CONNS": "-4"}, nil,
			[]string{"--max-conns (env TRANCHE_MAX_CONNS)", "got -4"}},
		{"too many connections", nil, []string{"--max-conns=100000"},
			[]string{"--max-conns (env TRANCHE_MAX_CONNS)", "got 100000"}},
		{"negative cache TTL", nil, []string{"--token-cache-ttl", "-1s"},
			[]string{"--token-cache-ttl (env TRANCHE_TOKEN_CACHE_TTL)", "got -1s"}},
		{"cache TTL longer than an hour", map[string]string{"TRANCHE_TOKEN_CACHE_TTL": "2h"}, nil,
			[]string{"--token-cache-ttl (env TRANCHE_TOKEN_CACHE_TTL)", "got 2h0m0s"}},
		{"negative shutdown timeout", map[string]string{"TRANCHE_SHUTDOWN_TIMEOUT": "-5s"}, nil,
			[]string{"--shutdown-timeout (env TRANCHE_SHUTDOWN_TIMEOUT)", "got -5s"}},
		{"zero shutdown timeout", nil, []string{"--shutdown-timeout=0s"},
			[]string{"--shutdown-timeout (env TRANCHE_SHUTDOWN_TIMEOUT)", "got 0s"}},
		{"empty HTTP address", nil, []string{"--http-addr", ""},
			[]string{"--http-addr (env TRANCHE_HTTP_ADDR)", "must not be empty"}},
		{"blank gRPC address", map[string]string{"TRANCHE_GRPC_ADDR": "  "}, nil,
			[]string{"--grpc-addr (env TRANCHE_GRPC_ADDR)", "must not be empty"}},
		{"address without a port", map[string]string{"TRANCHE_GRPC_ADDR": "localhost"}, nil,
			[]string{"--grpc-addr (env TRANCHE_GRPC_ADDR)", `"localhost" is not host:port`}},
		{"port out of range", nil, []string{"--http-addr", "127.0.0.1:99999"},
			[]string{"--http-addr (env TRANCHE_HTTP_ADDR)", "0 to 65535"}},
		{"both listeners on one address", nil, []string{"--http-addr", "127.0.0.1:9090"},
			[]string{"--http-addr (env TRANCHE_HTTP_ADDR)", "also the gRPC address"}},
		{"empty data directory", nil, []string{"--data-dir="},
			[]string{"--data-dir (env TRANCHE_DATA_DIR)", "must not be empty"}},
		{"malformed database URL", map[string]string{"DATABASE_URL": "postgres://db:port/x"}, nil,
			[]string{"--database-url (env DATABASE_URL)", "not a PostgreSQL URL"}},
		{"migration owner without a database URL", map[string]string{"MIGRATE_DATABASE_URL": "postgres://owner@db/x"}, nil,
			[]string{"--migrate-database-url (env MIGRATE_DATABASE_URL)", "needs a database URL"}},
		{"detection interval without a unit", map[string]string{"TRANCHE_DETECT_INTERVAL": "60"}, nil,
			[]string{"--detect-interval (env TRANCHE_DETECT_INTERVAL)", `"60" is not a duration`}},
		{"negative detection interval", nil, []string{"--detect-interval", "-1h"},
			[]string{"--detect-interval (env TRANCHE_DETECT_INTERVAL)", "got -1h0m0s"}},
		{"detection every second", nil, []string{"--detect-interval", "1s"},
			[]string{"--detect-interval (env TRANCHE_DETECT_INTERVAL)", "0 (off) or from 10s"}},
		{"detection thresholds file missing", map[string]string{"TRANCHE_DETECT_CONFIG": "/nonexistent/thresholds.json"}, nil,
			[]string{"--detect-config (env TRANCHE_DETECT_CONFIG)", "/nonexistent/thresholds.json", "no such file"}},
		{"every problem at once", map[string]string{"TRANCHE_LOG_LEVEL": "loud", "TRANCHE_TOKEN_CACHE_TTL": "1 minute"}, nil,
			[]string{"TRANCHE_LOG_LEVEL", "TRANCHE_TOKEN_CACHE_TTL"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := load(true, tc.env, tc.args...)
			var ee exitError
			if !errors.As(err, &ee) || ee.code != 2 {
				t.Fatalf("got %v, want a usage error (exit status 2)", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestConfigVerify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(*Config)
		flag   string // named in the refusal; empty: accepted
	}{
		{"defaults", func(*Config) {}, ""},
		{"no token cache", func(c *Config) { c.TokenCacheTTL = 0 }, ""},
		{"both listeners on free ports", func(c *Config) { c.GRPCAddr, c.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0" }, ""},
		{"every interface", func(c *Config) { c.GRPCAddr = ":9090"; c.HTTPAddr = ":8080" }, ""},
		{"an external database needs no data directory", func(c *Config) { c.DataDir, c.DatabaseURL = "", "postgres://svc@db/t" }, ""},
		{"negative cache TTL", func(c *Config) { c.TokenCacheTTL = -time.Second }, "--token-cache-ttl"},
		{"negative shutdown timeout", func(c *Config) { c.ShutdownTimeout = -time.Second }, "--shutdown-timeout"},
		{"no connections", func(c *Config) { c.MaxConns = 0 }, "--max-conns"},
		{"empty gRPC address", func(c *Config) { c.GRPCAddr = "" }, "--grpc-addr"},
		{"named port", func(c *Config) { c.HTTPAddr = "localhost:http" }, "--http-addr"},
		{"no database at all", func(c *Config) { c.DataDir = "" }, "--data-dir"},
		{"no background detection", func(c *Config) { c.DetectInterval = 0 }, ""},
		{"detection every minute", func(c *Config) { c.DetectInterval = time.Minute }, ""},
		{"detection every 5 seconds", func(c *Config) { c.DetectInterval = 5 * time.Second }, "--detect-interval"},
		{"detection every month", func(c *Config) { c.DetectInterval = 30 * 24 * time.Hour }, "--detect-interval"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := defaults()
			tc.change(&c)
			err := c.Verify()
			switch {
			case tc.flag == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.flag != "" && (err == nil || !strings.Contains(err.Error(), tc.flag)):
				t.Fatalf("got %v, want a refusal naming %s", err, tc.flag)
			}
		})
	}
}

// A malformed setting stops every command before it touches a database.
func TestRunRefusesMalformedConfiguration(t *testing.T) {
	t.Parallel()
	env := []string{"TRANCHE_LOG_LEVEL=chatty", "TRANCHE_DATA_DIR=/nonexistent/never-created"}
	for _, args := range [][]string{{"serve"}, {"migrate"}, {"verify"}, {"token", "list"}} {
		err := run(context.Background(), args, env, io.Discard)
		var ee exitError
		if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), "TRANCHE_LOG_LEVEL") {
			t.Errorf("%v: got %v, want exit status 2 naming TRANCHE_LOG_LEVEL", args, err)
		}
	}
}

// The thresholds file is read and verified with the rest of the
// configuration: a problem stops serve at once, naming the flag, the file
// and the field.
func TestDetectConfigFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := file("good.json", `{"duplicateWindowDays": 3, "stageDwellDays": {"TENDERED": 45}}`)
	c, err := load(true, map[string]string{"TRANCHE_DETECT_CONFIG": good})
	if err != nil {
		t.Fatal(err)
	}
	th, err := c.thresholds()
	if err != nil {
		t.Fatal(err)
	}
	if th.DuplicateWindowDays != 3 || th.StageDwellDays["TENDERED"] != 45 || th.StageDwellDays["CONTRACTED"] != 120 || th.ReceiptWindowDays != 30 {
		t.Fatalf("thresholds %+v: want the file's values over the defaults", th)
	}
	if c, err := load(true, nil); err != nil || c.DetectConfig != "" {
		t.Fatalf("no file: %+v, %v", c, err)
	} else if th, _ := c.thresholds(); th.DuplicateWindowDays != 7 {
		t.Fatalf("no file: thresholds %+v, want the defaults", th)
	}
	for _, tc := range []struct {
		name, body string
		want       []string
	}{
		{"unknown field", `{"duplicateWindow": 3}`, []string{"duplicateWindow"}},
		{"wrong type", `{"idleMonths": "six"}`, []string{"idleMonths"}},
		{"out of range", `{"duplicateWindowDays": -1}`, []string{"duplicateWindowDays", "got -1"}},
		{"share above 1", `{"idleShare": "1.5"}`, []string{"idleShare"}},
		{"unknown stage", `{"stageDwellDays": {"SHIPPED": 10}}`, []string{"stageDwellDays.SHIPPED"}},
		{"not JSON", `duplicateWindowDays = 3`, []string{"invalid character"}},
	} {
		p := file(strings.ReplaceAll(tc.name, " ", "-")+".json", tc.body)
		_, err := load(true, nil, "--detect-config", p)
		var ee exitError
		if !errors.As(err, &ee) || ee.code != 2 {
			t.Errorf("%s: got %v, want a usage error", tc.name, err)
			continue
		}
		for _, w := range append([]string{"--detect-config (env TRANCHE_DETECT_CONFIG)", p}, tc.want...) {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: message %q does not say %q", tc.name, err, w)
			}
		}
	}
}

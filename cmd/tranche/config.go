package main

import (
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/detect"
)

// Config is the configuration of a tranche command: the database selection
// every command shares and, for serve, the listeners and limits. Each setting
// is taken from its flag, else its environment variable (an empty variable
// counts as unset), else its default.
type Config struct {
	DataDir            string
	DatabaseURL        string
	MigrateDatabaseURL string
	LogLevel           slog.Level

	// serve only; other commands keep the defaults.
	GRPCAddr        string
	HTTPAddr        string
	TokenCacheTTL   time.Duration
	ShutdownTimeout time.Duration
	MaxConns        int
	// DetectConfig is the JSON file of detection thresholds (empty: the
	// defaults); DetectInterval how often serve runs detection (0: never).
	DetectConfig   string
	DetectInterval time.Duration
	// SigningKey is the ed25519 private key file (PEM PKCS#8) serve signs
	// audit-chain heads with, and whose public half verify checks heads
	// against; empty: heads are unsigned. serve and verify only.
	SigningKey string
}

// Limits Verify holds settings to.
const (
	maxTokenCacheTTL   = time.Hour // a revocation must not wait longer
	maxShutdownTimeout = time.Hour
	maxMaxConns        = 10000
	minDetectInterval  = 10 * time.Second // a run per roadmap costs seconds at scale
	maxDetectInterval  = 7 * 24 * time.Hour
)

// setting is one configurable value. Its text is parsed by parse; a value
// that does not parse is refused with the flag and variable named.
type setting struct {
	flag, env, def, usage string
	serveOnly             bool
	parse                 func(c *Config, v string) error
}

// name is how messages refer to a setting: both ways of giving it.
func (s setting) name() string { return "--" + s.flag + " (env " + s.env + ")" }

var settings = []setting{
	{flag: "data-dir", env: "TRANCHE_DATA_DIR", def: "./tranche-data",
		usage: "embedded PostgreSQL data directory, used when no database URL is set",
		parse: func(c *Config, v string) error { c.DataDir = v; return nil }},
	{flag: "database-url", env: "DATABASE_URL",
		usage: "PostgreSQL URL the service connects with; empty: the embedded cluster",
		parse: func(c *Config, v string) error { c.DatabaseURL = v; return nil }},
	{flag: "migrate-database-url", env: "MIGRATE_DATABASE_URL",
		usage: "PostgreSQL URL of the schema owner, for migrations; empty: the database URL",
		parse: func(c *Config, v string) error { c.MigrateDatabaseURL = v; return nil }},
	{flag: "log-level", env: "TRANCHE_LOG_LEVEL", def: "info",
		usage: "debug, info, warn or error",
		parse: func(c *Config, v string) error {
			if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
				return fmt.Errorf("%q is not a log level (debug, info, warn, error)", v)
			}
			return nil
		}},
	{flag: "grpc-addr", env: "TRANCHE_GRPC_ADDR", def: "127.0.0.1:9090", serveOnly: true,
		usage: "gRPC listen address (host:port; port 0 picks a free one)",
		parse: func(c *Config, v string) error { c.GRPCAddr = v; return nil }},
	{flag: "http-addr", env: "TRANCHE_HTTP_ADDR", def: "127.0.0.1:8080", serveOnly: true,
		usage: "REST/HTTP listen address (host:port; port 0 picks a free one)",
		parse: func(c *Config, v string) error { c.HTTPAddr = v; return nil }},
	{flag: "token-cache-ttl", env: "TRANCHE_TOKEN_CACHE_TTL", def: "5s", serveOnly: true,
		usage: "how long a valid token is trusted without a database lookup; a revocation takes effect within it (0 disables the cache)",
		parse: func(c *Config, v string) error { return parseDuration(&c.TokenCacheTTL, v) }},
	{flag: "shutdown-timeout", env: "TRANCHE_SHUTDOWN_TIMEOUT", def: "30s", serveOnly: true,
		usage: "how long in-flight requests may finish after a stop signal",
		parse: func(c *Config, v string) error { return parseDuration(&c.ShutdownTimeout, v) }},
	{flag: "max-conns", env: "TRANCHE_MAX_CONNS", def: "32", serveOnly: true,
		usage: "maximum database connections of this process",
		parse: func(c *Config, v string) error {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return fmt.Errorf("%q is not a whole number", v)
			}
			c.MaxConns = n
			return nil
		}},
	{flag: "detect-config", env: "TRANCHE_DETECT_CONFIG", serveOnly: true,
		usage: "JSON file of detection thresholds, over the defaults (see the README); empty: the defaults",
		parse: func(c *Config, v string) error {
			c.DetectConfig = v
			_, err := c.thresholds()
			return err
		}},
	{flag: "detect-interval", env: "TRANCHE_DETECT_INTERVAL", def: "1h", serveOnly: true,
		usage: "how often serve runs detection over every roadmap in the background (0 turns it off)",
		parse: func(c *Config, v string) error { return parseDuration(&c.DetectInterval, v) }},
	{flag: "signing-key", env: "TRANCHE_SIGNING_KEY", serveOnly: true,
		usage: "ed25519 private key file (PEM PKCS#8, mode 0600; tranche keys generate) that signs audit-chain heads; empty: heads are unsigned",
		parse: func(c *Config, v string) error { c.SigningKey = v; return nil }},
}

// thresholds reads the detection thresholds file, if any, over the
// defaults; a problem names the file and the field.
func (c Config) thresholds() (detect.Config, error) {
	if c.DetectConfig == "" {
		return detect.DefaultConfig(), nil
	}
	f, err := os.Open(c.DetectConfig)
	if err != nil {
		return detect.Config{}, err
	}
	defer f.Close()
	cfg, err := detect.LoadConfig(f)
	if err != nil {
		return detect.Config{}, fmt.Errorf("%s: %w", c.DetectConfig, err)
	}
	return cfg, nil
}

func parseDuration(d *time.Duration, v string) error {
	p, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil {
		return fmt.Errorf("%q is not a duration (a number with a unit: 500ms, 5s, 2m)", v)
	}
	*d = p
	return nil
}

// configFlags are the settings registered on one command's flag set.
type configFlags struct {
	fs     *flag.FlagSet
	values map[string]*string // by flag name
}

// registerConfig adds the command's settings to fs: the shared ones, and
// serve's own when serve is true.
func registerConfig(fs *flag.FlagSet, serve bool) *configFlags {
	f := &configFlags{fs: fs, values: map[string]*string{}}
	for _, s := range settings {
		if s.serveOnly && !serve {
			continue
		}
		f.values[s.flag] = fs.String(s.flag, s.def, s.usage+" (env "+s.env+")")
	}
	return f
}

// include registers one of serve's settings on another command (verify
// takes --signing-key).
func (f *configFlags) include(name string) *configFlags {
	for _, s := range settings {
		if s.flag == name {
			f.values[s.flag] = f.fs.String(s.flag, s.def, s.usage+" (env "+s.env+")")
			return f
		}
	}
	panic("unknown setting " + name)
}

// signingKey loads the signing key; nil when none is configured.
func (c Config) signingKey() (ed25519.PrivateKey, error) {
	if c.SigningKey == "" {
		return nil, nil
	}
	return audit.LoadPrivateKey(c.SigningKey)
}

// resolve builds the Config once fs has parsed the command line: for each
// setting its flag if given, else its environment variable, else its default.
// Every value that does not parse or that Verify refuses is reported, each
// naming its flag and environment variable.
func (f *configFlags) resolve(env map[string]string) (Config, error) {
	explicit := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { explicit[fl.Name] = true })
	var c Config
	var errs []error
	for _, s := range settings {
		v := s.def
		if p, ok := f.values[s.flag]; ok {
			switch ev := env[s.env]; {
			case explicit[s.flag]:
				v = *p
			case ev != "":
				v = ev
			}
		}
		if err := s.parse(&c, v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.name(), err))
		}
	}
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	if err := c.Verify(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Verify refuses a configuration the process could not run with, or could
// only run with by surprising its operator, listing every problem with the
// flag and environment variable that set it.
func (c Config) Verify() error {
	var errs []error
	bad := func(flagName, format string, args ...any) {
		for _, s := range settings {
			if s.flag == flagName {
				errs = append(errs, fmt.Errorf("%s: %s", s.name(), fmt.Sprintf(format, args...)))
				return
			}
		}
		panic("unknown setting " + flagName)
	}
	if c.DatabaseURL == "" && strings.TrimSpace(c.DataDir) == "" {
		bad("data-dir", "must not be empty when no database URL is set")
	}
	if c.DatabaseURL != "" {
		if _, err := pgconn.ParseConfig(c.DatabaseURL); err != nil {
			bad("database-url", "not a PostgreSQL URL or connection string: %v", err)
		}
	}
	if c.MigrateDatabaseURL != "" {
		if c.DatabaseURL == "" {
			bad("migrate-database-url", "needs a database URL too (the embedded cluster migrates as its own superuser)")
		} else if _, err := pgconn.ParseConfig(c.MigrateDatabaseURL); err != nil {
			bad("migrate-database-url", "not a PostgreSQL URL or connection string: %v", err)
		}
	}
	for _, a := range []struct{ flag, addr string }{{"grpc-addr", c.GRPCAddr}, {"http-addr", c.HTTPAddr}} {
		if err := checkListenAddr(a.addr); err != nil {
			bad(a.flag, "%v", err)
		}
	}
	if c.GRPCAddr == c.HTTPAddr && checkListenAddr(c.GRPCAddr) == nil && !strings.HasSuffix(c.GRPCAddr, ":0") {
		bad("http-addr", "%q is also the gRPC address", c.HTTPAddr)
	}
	if c.TokenCacheTTL < 0 || c.TokenCacheTTL > maxTokenCacheTTL {
		bad("token-cache-ttl", "must be from 0 (no cache) to %v, got %v", maxTokenCacheTTL, c.TokenCacheTTL)
	}
	if c.ShutdownTimeout <= 0 || c.ShutdownTimeout > maxShutdownTimeout {
		bad("shutdown-timeout", "must be more than 0 and at most %v, got %v", maxShutdownTimeout, c.ShutdownTimeout)
	}
	if c.MaxConns < 1 || c.MaxConns > maxMaxConns {
		bad("max-conns", "must be from 1 to %d, got %d", maxMaxConns, c.MaxConns)
	}
	if c.DetectInterval != 0 && (c.DetectInterval < minDetectInterval || c.DetectInterval > maxDetectInterval) {
		bad("detect-interval", "must be 0 (off) or from %v to %v, got %v", minDetectInterval, maxDetectInterval, c.DetectInterval)
	}
	if _, err := c.signingKey(); err != nil {
		bad("signing-key", "%v", err)
	}
	return errors.Join(errs...)
}

// checkListenAddr accepts host:port with a numeric port (0 picks a free one);
// an empty host listens on every interface, as net.Listen does.
func checkListenAddr(addr string) error {
	if strings.TrimSpace(addr) == "" {
		return errors.New("must not be empty (host:port)")
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%q: the port must be a number from 0 to 65535", addr)
	}
	return nil
}

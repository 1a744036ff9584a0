package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/blindex/blindex/index"
	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/keys/awskms"
	"github.com/blindex/blindex/server"
	"github.com/blindex/blindex/store"
)

const serveUsage = `Usage: blindex serve --data DIR [flags]
       blindex serve --store postgres://... [flags]

Serves the instances of DIR (or of the PostgreSQL database of --store) over
HTTP (JSON API: see the server package's documentation and
api/openapi.yaml) until interrupted (SIGINT, SIGTERM), then shuts down
gracefully: in-flight requests finish, keys are zeroed. Give the database
password in $PGPASSWORD or ~/.pgpass, not in the --store URL: command lines
are visible to every local user.

Administrator tokens come from --admin-token-file (one token per line, '#'
comments) and from $BLINDEX_ADMIN_TOKEN; there is no flag holding a token
itself, since command lines are visible to every local user. Without any
administrator token the server listens on a loopback address only and every
local client is an administrator.

BYOK configurations use AWS KMS through the standard AWS configuration chain
(environment, shared config and credentials files, profiles,
AWS_ENDPOINT_URL_KMS); --kms-endpoint overrides the endpoint.

Flags:
`

// runServe is the `blindex serve` command.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), serveUsage)
		fs.PrintDefaults()
	}
	var (
		data         = fs.String("data", "", "data directory (required unless --store is given)")
		storeURL     = fs.String("store", "", "a store in a PostgreSQL-compatible database, in place of --data: postgres://user@host:port/database?sslmode=... (password in $PGPASSWORD or ~/.pgpass)")
		addr         = fs.String("addr", "127.0.0.1:8080", "address to listen on (host:port)")
		home         = fs.String("home", "", "key home: local provider key and instance secrets, outside --data (default $BLINDEX_HOME, else ~/.blindex)")
		tokenFile    = fs.String("admin-token-file", "", "file with administrator bearer tokens, one per line")
		tlsCert      = fs.String("tls-cert", "", "TLS certificate file (PEM); with --tls-key, serve HTTPS")
		tlsKey       = fs.String("tls-key", "", "TLS private key file (PEM)")
		lease        = fs.Duration("lease", keys.DefaultLease, "revocation bound: how long an unwrapped key is used before re-validation (minimum 1s)")
		retry        = fs.Duration("retry-interval", 0, "how often a degraded or locked key is retried (default min(lease/4, 30s))")
		kmsEndpoint  = fs.String("kms-endpoint", "", "AWS KMS endpoint URL override (default: the AWS configuration chain)")
		kmsTimeout   = fs.Duration("kms-timeout", 0, "timeout of one KMS request attempt (default 5s)")
		auditPath    = fs.String("audit-log", "-", "where key provider calls are audited, one JSON line each: a file, or - for standard error")
		maxOpen      = fs.Int("max-open", 1000, "instances open at once (keys unwrapped); the least recently used is closed beyond it")
		cacheMiB     = fs.Int64("cache-mib", 256, "MiB of decrypted pages and posting lists cached, shared by every instance")
		reqTimeout   = fs.Duration("request-timeout", 30*time.Second, "time limit of one request")
		maxBody      = fs.Int64("max-body-bytes", 1<<20, "largest JSON request body (administrator and search requests)")
		maxDoc       = fs.Int64("max-document-bytes", 1<<20, "largest document")
		maxBulk      = fs.Int64("max-bulk-bytes", 32<<20, "largest bulk request body")
		maxItems     = fs.Int("max-bulk-items", 1000, "most actions in one bulk request")
		maxQuery     = fs.Int("max-query-bytes", 8<<10, "longest query (query string, or the JSON of the query)")
		maxClauses   = fs.Int("max-clauses", 256, "most clauses in a query")
		maxExpensive = fs.Int("max-expensive-clauses", 8, "most wildcard, regexp, prefix, fuzzy and range clauses in a query")
		maxTerms     = fs.Int("max-term-searchers", 20000, "most terms one search may expand to")
		maxExpansion = fs.Int64("max-expansion-entries", index.DefaultMaxExpansionEntries, "most term dictionary entries one search may examine while expanding its wildcard, regexp, prefix, fuzzy and range clauses")
		maxInFlight  = fs.Int("max-in-flight", 512, "most API requests served at once")
		shutdown     = fs.Duration("shutdown-timeout", 30*time.Second, "how long to wait for in-flight requests at shutdown")
		logLevel     = fs.String("log-level", "info", "log level: debug (one line per request), info, warn, error")
		policyFile   = fs.String("policy", "", "the BYOK availability policy `FILE` (JSON; see 'blindex policy show'); default: the shipped policy")
		ownerTTL     = fs.Duration("owner-ttl", 0, "with --store: the lease of a node's ownership of an instance's writes; a killed node's instances are taken over once it passes (default 15s, minimum 1s)")
		advertise    = fs.String("advertise", "", "with --store: the base URL other nodes forward writes to this node at, e.g. http://10.0.0.5:8080 (default: http(s):// and --addr, unless --addr is a wildcard address)")
		minFreeMB    = fs.Int("min-free-mb", store.DefaultMinFreeBytes>>20, "free space, in MiB, the store keeps on the data directory's disk: below it writes answer 507 storage_full and resume once space is freed; 0 disables the reserve")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "blindex serve: unexpected arguments %q\n", fs.Args())
		return exitUsage
	}
	if (*data == "") == (*storeURL == "") {
		fmt.Fprintln(stderr, "blindex serve: give --data DIR or --store postgres://... (one of them)")
		return exitUsage
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "blindex serve: --log-level %q: use debug, info, warn or error\n", *logLevel)
		return exitUsage
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	// Before any key is read: no core dump may hold the keys and plaintext
	// the server keeps in memory.
	if err := disableCoreDumps(); err != nil {
		fmt.Fprintf(stderr, "blindex serve: cannot disable core dumps: %v\n", err)
		return exitUsage
	}

	pol, err := (&commonFlags{policy: *policyFile}).loadPolicy()
	if err != nil {
		return report(stderr, "serve", err)
	}

	tokens, warn, err := serveAdminTokens(*tokenFile)
	if err != nil {
		fmt.Fprintf(stderr, "blindex serve: %v\n", err)
		return exitUsage
	}
	if warn != "" {
		log.Warn(warn)
	}

	var audit *keys.AuditLog
	switch *auditPath {
	case "-":
		audit = keys.NewAuditLog(stderr)
	case "":
	default:
		f, err := os.OpenFile(*auditPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			fmt.Fprintf(stderr, "blindex serve: --audit-log: %v\n", err)
			return exitUsage
		}
		defer f.Close()
		audit = keys.NewAuditLog(f)
	}

	if *minFreeMB < 0 {
		fmt.Fprintln(stderr, "blindex serve: --min-free-mb must not be negative")
		return exitUsage
	}
	minFree := int64(*minFreeMB) << 20
	if minFree == 0 {
		minFree = -1
	}
	srv, err := server.Open(ctx, server.Config{
		Data:          *data,
		Store:         *storeURL,
		Pebble:        store.PebbleOptions{MinFreeBytes: minFree},
		Home:          *home,
		AdminTokens:   tokens,
		TLSCertFile:   *tlsCert,
		TLSKeyFile:    *tlsKey,
		Lease:         *lease,
		RetryInterval: *retry,
		MaxOpen:       *maxOpen,
		CacheBytes:    *cacheMiB << 20,
		KMS:           awskms.Options{Endpoint: *kmsEndpoint, Timeout: *kmsTimeout},
		Audit:         audit,
		Logger:        log,
		Limits: server.Limits{
			MaxBodyBytes: *maxBody, MaxDocumentBytes: *maxDoc, MaxBulkBytes: *maxBulk, MaxBulkItems: *maxItems,
			MaxQueryBytes: *maxQuery, MaxClauses: *maxClauses, MaxExpensiveClauses: *maxExpensive,
			MaxTermSearchers: *maxTerms, MaxExpansionEntries: *maxExpansion, RequestTimeout: *reqTimeout, MaxInFlight: *maxInFlight,
		},
		ShutdownTimeout: *shutdown,
		Policy:          pol,
		Nodes:           server.NodeOptions{OwnerTTL: *ownerTTL, Advertise: *advertise},
	})
	if err != nil {
		fmt.Fprintf(stderr, "blindex serve: %v\n", err)
		if c := exitCode(err); c == exitStorage {
			return c
		}
		return exitUsage
	}
	// ListenAndServe refuses a non-loopback --addr without an
	// administrator token, and logs at start how it serves (a warning when
	// it is loopback only because no token is configured).
	if err := srv.ListenAndServe(ctx, *addr); err != nil {
		fmt.Fprintf(stderr, "blindex serve: %v\n", err)
		return exitUsage
	}
	return exitOK
}

// serveAdminTokens reads the administrator tokens from file (one per line,
// blank lines and '#' comments skipped) and $BLINDEX_ADMIN_TOKEN. It
// returns a warning when the file is readable by group or others.
func serveAdminTokens(file string) (tokens []string, warn string, err error) {
	if t := strings.TrimSpace(os.Getenv("BLINDEX_ADMIN_TOKEN")); t != "" {
		tokens = append(tokens, t)
	}
	if file == "" {
		return tokens, "", nil
	}
	fi, err := os.Stat(file)
	if err != nil {
		return nil, "", fmt.Errorf("--admin-token-file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		warn = fmt.Sprintf("the administrator token file %s is readable by other users (mode %v); chmod 600 it", file, fi.Mode().Perm())
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, "", fmt.Errorf("--admin-token-file: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		tokens = append(tokens, l)
	}
	if len(tokens) == 0 {
		return nil, "", fmt.Errorf("--admin-token-file %s holds no token", file)
	}
	return tokens, warn, nil
}

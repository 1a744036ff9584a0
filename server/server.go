package server

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blindex/blindex/index"
	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/keys/awskms"
	"github.com/blindex/blindex/policy"
	"github.com/blindex/blindex/store"
	"github.com/blindex/blindex/store/postgres"
	"github.com/blindex/blindex/tenancy"
)

// MinAdminTokenLength is the shortest administrator token accepted, in
// bytes. Shorter tokens are refused by [Open]: a bearer token is a password
// that is sent on every request.
const MinAdminTokenLength = 16

// Config configures a [Server]. Zero values mean the documented defaults;
// [Open] validates everything at once and reports every problem.
type Config struct {
	// Data is the data directory: the Pebble store holding every instance,
	// every encryption configuration and the hashed instance tokens.
	// Required unless Store is set. It is created (mode 0700) if missing.
	Data string
	// Store, in place of Data, is the connection URL (postgres://...) of
	// a PostgreSQL-compatible database holding the store (package
	// store/postgres). Default: none, the Pebble store in Data. Setting
	// both is an error.
	Store string
	// Pebble configures the Pebble store in Data: its free-space reserve
	// (MinFreeBytes: below it writes answer 507 storage_full and resume by
	// themselves once space is freed), caches, and a file system for
	// fault-injection tests. ReadOnly is ignored. Default: the zero value
	// (see store.PebbleOptions).
	Pebble store.PebbleOptions
	// Home holds the local provider key and the instances' shredding
	// secrets. It MUST NOT be inside Data (a copy of the data directory
	// would then carry its keys). Default: $BLINDEX_HOME, else ~/.blindex.
	Home string
	// AdminTokens are the administrator bearer tokens, each at least
	// MinAdminTokenLength bytes. Only their SHA-256 hashes are kept.
	// Default none: the server then accepts connections on loopback
	// addresses only ([Server.Serve] refuses any other listener) and a
	// request without a token has administrator rights.
	AdminTokens []string
	// TLSCertFile and TLSKeyFile, when both set, make the server speak
	// HTTPS (TLS 1.2 or newer). Default: plain HTTP. Setting one without
	// the other is an error.
	TLSCertFile, TLSKeyFile string
	// Lease is the revocation bound: how long an unwrapped root key is
	// used before it is re-validated with its provider. Default 5m
	// (keys.DefaultLease); minimum 1s.
	Lease time.Duration
	// RetryInterval is how often a degraded or locked key is tried again.
	// Default: min(Lease/4, 30s), at least 250ms.
	RetryInterval time.Duration
	// MaxOpen is how many instances are open (keys unwrapped, state
	// decrypted in memory) at once; the least recently used one is closed
	// beyond it. Every instance lives in the one store whatever this is.
	// Default 1000.
	MaxOpen int
	// KMS is the template of the AWS KMS provider options for BYOK
	// configurations: Endpoint (the --kms-endpoint override), Timeout,
	// MaxAttempts, MaxConcurrent and ConfigOptions are used as given;
	// KeyARN, Region, Org and Audit are filled from each configuration and
	// from Audit. Default: the zero awskms.Options (the standard AWS
	// configuration chain).
	KMS awskms.Options
	// Audit receives one JSON line per key provider call (AWS KMS and the
	// local provider) and per lease lock and unlock. Default: none.
	Audit *keys.AuditLog
	// Logger receives the server's operational logs (JSON with
	// slog.NewJSONHandler in `blindex serve`). They never contain document
	// content, document ids, query terms, tokens or keys. Default:
	// discarded.
	Logger *slog.Logger
	// Limits bound what one request may ask. See [Limits].
	Limits Limits
	// Instance is the template of every instance's options (analysis
	// workers, memtable, idle merge, NoSync for tests, …). Keyring,
	// Secrets, Logger and the cache are set by the catalog. Default:
	// index's defaults, except a 2 MiB memtable (tenancy.Options).
	Instance index.Options
	// CacheBytes is the budget of the one cache of decrypted state pages
	// and posting lists that every instance of the server shares: the
	// server's memory for what instances read, whatever their number.
	// Default 256 MiB.
	CacheBytes int64
	// ShutdownTimeout bounds how long [Server.ListenAndServe] waits for
	// in-flight requests when its context ends. Default 30s.
	ShutdownTimeout time.Duration
	// Policy says which products and plans offer BYOK (see package
	// policy). Default: policy.Default(), the shipped policy.
	Policy *policy.Policy
	// Nodes configures this server as one of several nodes over the
	// database of Store (see nodes.go); ignored with Data. Default: the
	// zero NodeOptions.
	Nodes NodeOptions
}

// Limits bound requests. Every zero field means its default; a negative
// value is an error. A request over a limit gets a 4xx answer whose message
// names the limit and its value.
type Limits struct {
	// MaxBodyBytes bounds the JSON body of administrator and search
	// requests. Default 1 MiB. Over it: 413 body_too_large.
	MaxBodyBytes int64
	// MaxDocumentBytes bounds one document (a PUT body, or one document
	// line of a bulk request). Default 1 MiB. Over it: 413
	// document_too_large.
	MaxDocumentBytes int64
	// MaxBulkBytes bounds a bulk request's body. Default 32 MiB. Over it:
	// 413 body_too_large.
	MaxBulkBytes int64
	// MaxBulkItems bounds the actions (index or delete) of one bulk
	// request. Default 1000. Over it: 413 too_many_items.
	MaxBulkItems int
	// MaxAttachmentBytes bounds one attachment upload. The body is
	// streamed into the store, never held in memory whole; this bounds
	// what one upload may store. Default 100 MiB
	// (DefaultMaxAttachmentBytes). Over it (a larger Content-Length at
	// once, else as soon as the stream passes it): 413
	// attachment_too_large, and nothing of the upload remains. An upload
	// and a download must each finish within RequestTimeout.
	MaxAttachmentBytes int64
	// MaxQueryBytes bounds a query: the text of a query-string query, and
	// the JSON of the request's "query" member. Default 8 KiB. Over it:
	// 400 query_too_long.
	MaxQueryBytes int
	// MaxClauses bounds the clauses of a parsed query (every leaf and
	// every boolean, conjunction and disjunction). Default 256. Over it:
	// 400 query_too_complex.
	MaxClauses int
	// MaxExpensiveClauses bounds the clauses that expand against the
	// term dictionary: wildcard, regexp, prefix, fuzzy (fuzzy match and
	// phrase queries included) and term range. Default 8. Over it: 400
	// query_too_complex.
	MaxExpensiveClauses int
	// MaxQueryDepth bounds the nesting of boolean queries. Default 32.
	// Over it: 400 query_too_complex.
	MaxQueryDepth int
	// MaxTermSearchers bounds the term searchers one search may create
	// across its whole query tree, i.e. how many dictionary terms its
	// wildcard, regexp, prefix, fuzzy and range clauses may expand to
	// (bleve's per-search MaxTermSearchersKey). Default 20000. Over it:
	// 400 query_too_complex.
	MaxTermSearchers int
	// MaxExpansionEntries bounds the term dictionary entries one search
	// examines (accepted or not) while expanding its wildcard, regexp,
	// prefix, fuzzy and range clauses; it is the instances'
	// index.Options.MaxExpansionEntries, and overrides
	// Config.Instance's. The expansion also stops when the request's
	// time runs out (504 timeout). Default
	// index.DefaultMaxExpansionEntries (4,000,000). Over it: 400
	// query_too_expensive.
	MaxExpansionEntries int64
	// MaxFacets bounds the facets of a search request, and MaxFacetSize
	// each facet's size. Defaults 16 and 1000. Over them: 400
	// invalid_request.
	MaxFacets, MaxFacetSize int
	// RequestTimeout bounds one request, from its headers to its answer.
	// Default 30s. Over it: 504 timeout (a write that times out before it
	// commits is not applied; one that committed is acknowledged).
	RequestTimeout time.Duration
	// MaxInFlight bounds the API requests served at once; more get 503
	// overloaded with Retry-After. Health and metrics endpoints are not
	// counted. Default 512.
	MaxInFlight int
	// MaxInFlightPerToken bounds the API requests one token serves at once
	// (each instance token, each administrator token, and in loopback mode
	// the local clients together), so that one client cannot take every
	// slot of MaxInFlight. More get 429 too_many_requests with
	// Retry-After. Default 32.
	MaxInFlightPerToken int
	// MaxWritesPerToken bounds the writes (PUT, bulk, attachment uploads)
	// one token runs at once; more get 429 too_many_requests with
	// Retry-After. Analysing documents is what costs memory, so this
	// bounds what one client can make the server hold. Default 4.
	MaxWritesPerToken int
	// MaxBatchBytes bounds the document bytes of one atomic batch of a
	// bulk request: a bulk whose documents total more is applied as
	// consecutive atomic batches of at most this much (at least one
	// document each), so that the memory analysis needs is bounded by this
	// and not by MaxBulkBytes. Default 4 MiB; at least MaxDocumentBytes.
	MaxBatchBytes int64
	// MaxAnalysisBytes bounds the document bytes the whole server analyses
	// at once, across every write. A write whose documents do not fit
	// waits for room, within its RequestTimeout (then 504 timeout, nothing
	// applied). Analysis takes roughly 100 times the document's size in
	// memory, so the default, 16 MiB, bounds it to about 1.6 GB. At least
	// MaxBatchBytes.
	MaxAnalysisBytes int64
}

func (l Limits) withDefaults() (Limits, error) {
	var errs []error
	def64 := func(v *int64, d int64, name string) {
		if *v == 0 {
			*v = d
		} else if *v < 0 {
			errs = append(errs, fmt.Errorf("Limits.%s is negative", name))
		}
	}
	def := func(v *int, d int, name string) {
		if *v == 0 {
			*v = d
		} else if *v < 0 {
			errs = append(errs, fmt.Errorf("Limits.%s is negative", name))
		}
	}
	def64(&l.MaxBodyBytes, 1<<20, "MaxBodyBytes")
	def64(&l.MaxDocumentBytes, 1<<20, "MaxDocumentBytes")
	def64(&l.MaxBulkBytes, 32<<20, "MaxBulkBytes")
	def(&l.MaxBulkItems, 1000, "MaxBulkItems")
	def64(&l.MaxAttachmentBytes, DefaultMaxAttachmentBytes, "MaxAttachmentBytes")
	def(&l.MaxQueryBytes, 8<<10, "MaxQueryBytes")
	def(&l.MaxClauses, 256, "MaxClauses")
	def(&l.MaxExpensiveClauses, 8, "MaxExpensiveClauses")
	def(&l.MaxQueryDepth, 32, "MaxQueryDepth")
	def(&l.MaxTermSearchers, 20000, "MaxTermSearchers")
	def64(&l.MaxExpansionEntries, index.DefaultMaxExpansionEntries, "MaxExpansionEntries")
	def(&l.MaxFacets, 16, "MaxFacets")
	def(&l.MaxFacetSize, 1000, "MaxFacetSize")
	def(&l.MaxInFlight, 512, "MaxInFlight")
	def(&l.MaxInFlightPerToken, 32, "MaxInFlightPerToken")
	def(&l.MaxWritesPerToken, 4, "MaxWritesPerToken")
	def64(&l.MaxBatchBytes, max(4<<20, l.MaxDocumentBytes), "MaxBatchBytes")
	def64(&l.MaxAnalysisBytes, max(16<<20, l.MaxBatchBytes), "MaxAnalysisBytes")
	if l.MaxBatchBytes < l.MaxDocumentBytes {
		errs = append(errs, fmt.Errorf("Limits.MaxBatchBytes (%d) is smaller than Limits.MaxDocumentBytes (%d): a batch must hold the largest document", l.MaxBatchBytes, l.MaxDocumentBytes))
	}
	if l.MaxAnalysisBytes < l.MaxBatchBytes {
		errs = append(errs, fmt.Errorf("Limits.MaxAnalysisBytes (%d) is smaller than Limits.MaxBatchBytes (%d): the largest batch could never be analysed", l.MaxAnalysisBytes, l.MaxBatchBytes))
	}
	switch {
	case l.RequestTimeout == 0:
		l.RequestTimeout = 30 * time.Second
	case l.RequestTimeout < 0:
		errs = append(errs, errors.New("Limits.RequestTimeout is negative"))
	}
	return l, errors.Join(errs...)
}

// Server is the blindex index server: one process, one store, many
// instances. Create it with [Open], serve with [Server.Serve] or
// [Server.ListenAndServe], stop it with [Server.Shutdown].
type Server struct {
	cfg     Config
	lim     Limits
	log     *slog.Logger
	st      store.Store
	local   *keys.LocalProvider
	cat     *tenancy.Catalog
	tokens  *tokenStore
	sla     *slaMetrics // SLA boundary metrics (sla.go)
	admins  [][sha256.Size]byte
	open    bool // no admin token: loopback only, tokenless requests are admin
	metrics *metrics
	reg     *prometheus.Registry
	mux     *http.ServeMux
	handler http.Handler
	tlsConf *tls.Config
	groups  *groups
	jobs    *jobs
	neg     *negCache
	docs    *docCounts
	inflt   chan struct{}
	per     *perToken // requests and writes of each token at once
	analyse *budget   // document bytes being analysed (Limits.MaxAnalysisBytes)
	states  stateCache
	nodes   *nodes // several nodes over one database (nodes.go); nil with Pebble

	baseCtx context.Context // cancelled by Shutdown: background jobs
	cancel  context.CancelFunc

	shutting atomic.Bool
	mu       sync.Mutex
	servers  []*http.Server
	closed   bool
	closeErr error
}

// Open opens the store in cfg.Data and the catalog of its instances, and
// returns a server ready to serve. It makes no KMS call: instances are
// opened (and their keys unwrapped) on first use.
func Open(ctx context.Context, cfg Config) (*Server, error) {
	var errs []error
	switch {
	case cfg.Data == "" && cfg.Store == "":
		errs = append(errs, errors.New("Config.Data (the data directory) or Config.Store (a postgres:// URL) is required"))
	case cfg.Data != "" && cfg.Store != "":
		errs = append(errs, errors.New("Config.Data and Config.Store are both set; give one"))
	case cfg.Store != "" && !postgres.IsURL(cfg.Store):
		errs = append(errs, errors.New("Config.Store must be a postgres:// or postgresql:// URL"))
	}
	if cfg.Home == "" {
		h, err := keys.DefaultHome()
		if err != nil {
			errs = append(errs, err)
		}
		cfg.Home = h
	}
	if err := keys.CheckHome(cfg.Home, cfg.Data); err != nil {
		errs = append(errs, err)
	}
	var admins [][sha256.Size]byte
	for i, t := range cfg.AdminTokens {
		if len(t) < MinAdminTokenLength {
			errs = append(errs, fmt.Errorf("administrator token %d is %d bytes; use at least %d random bytes (e.g. `openssl rand -hex 32`)", i+1, len(t), MinAdminTokenLength))
			continue
		}
		admins = append(admins, sha256.Sum256([]byte(t)))
	}
	if (cfg.TLSCertFile == "") != (cfg.TLSKeyFile == "") {
		errs = append(errs, errors.New("TLS needs both a certificate and a key file"))
	}
	var tlsConf *tls.Config
	if cfg.TLSCertFile != "" && cfg.TLSKeyFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("TLS certificate and key: %w", err))
		}
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	}
	lim, err := cfg.Limits.withDefaults()
	if err != nil {
		errs = append(errs, err)
	}
	if cfg.Lease != 0 && cfg.Lease < keys.MinLease {
		errs = append(errs, fmt.Errorf("the lease %v is shorter than the minimum %v", cfg.Lease, keys.MinLease))
	}
	if cfg.MaxOpen < 0 {
		errs = append(errs, errors.New("Config.MaxOpen is negative"))
	}
	if cfg.CacheBytes < 0 {
		errs = append(errs, errors.New("Config.CacheBytes is negative"))
	}
	if cfg.Nodes.OwnerTTL != 0 && cfg.Nodes.OwnerTTL < time.Second {
		errs = append(errs, errors.New("Config.Nodes.OwnerTTL must be at least 1s"))
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 30 * time.Second
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("server: invalid configuration: %w", errors.Join(errs...))
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	st, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, lim: lim, log: log, st: st, admins: admins, open: len(admins) == 0, tlsConf: tlsConf}
	s.baseCtx, s.cancel = context.WithCancel(context.Background())
	fail := func(err error) (*Server, error) {
		s.cancel()
		if s.cat != nil {
			s.cat.Close()
		}
		if s.nodes != nil {
			s.nodes.owners.Close()
		}
		st.Close()
		return nil, err
	}
	if pg, ok := st.(*postgres.Store); ok {
		if s.nodes, err = newNodes(ctx, pg, cfg.Nodes); err != nil {
			return fail(fmt.Errorf("server: store at %s: %w", postgres.Redact(cfg.Store), err))
		}
	}
	s.reg = prometheus.NewRegistry()
	s.metrics = newMetrics(s.reg)
	s.local, err = keys.NewLocalProvider(cfg.Home)
	if err != nil {
		return fail(fmt.Errorf("server: local key provider: %w", err))
	}
	s.local.SetAudit(cfg.Audit)
	kmsTemplate := cfg.KMS
	inst := cfg.Instance
	inst.MaxExpansionEntries = lim.MaxExpansionEntries
	if s.nodes != nil {
		inst.Sharing = s.nodes.writer
	}
	s.cat, err = tenancy.NewCatalog(st, tenancy.Options{
		Home:  cfg.Home,
		Local: s.metrics.wrapProvider(s.local, providerLocal),
		KMS: func(ctx context.Context, ec tenancy.EncryptionConfig) (keys.Provider, error) {
			o := kmsTemplate
			o.KeyARN, o.Region, o.Org, o.Audit = ec.KeyARN, ec.Region, ec.Org, cfg.Audit
			p, err := awskms.New(ctx, o)
			if err != nil {
				return nil, err
			}
			return s.metrics.wrapProvider(p, providerKMS), nil
		},
		Lease:         cfg.Lease,
		RetryInterval: cfg.RetryInterval,
		Audit:         cfg.Audit,
		Logger:        log,
		Instance:      inst,
		MaxOpen:       cfg.MaxOpen,
		CacheBytes:    cfg.CacheBytes,
		Policy:        cfg.Policy,
	})
	if err != nil {
		return fail(fmt.Errorf("server: %w", err))
	}
	s.tokens = &tokenStore{st: s.cat.Store()} // token records are authenticated control records
	s.jobs = newJobs()
	s.neg = newNegCache(retryInterval(cfg.Lease, cfg.RetryInterval))
	s.docs = newDocCounts()
	s.inflt = make(chan struct{}, lim.MaxInFlight)
	s.per = newPerToken()
	s.analyse = newBudget(lim.MaxAnalysisBytes)
	s.groups, err = loadGroups(s.cat)
	if err != nil {
		return fail(fmt.Errorf("server: reading the instance manifests: %w", err))
	}
	s.sweepNodes(ctx, false)
	s.metrics.registerState(s)
	s.sla = newSLAMetrics(s.reg, s)
	s.routes()
	return s, nil
}

// retryInterval mirrors the keyring's default retry interval: how long a
// failed open of a locked instance is remembered before the provider is
// asked again.
func retryInterval(lease, retry time.Duration) time.Duration {
	if retry > 0 {
		return retry
	}
	if lease == 0 {
		lease = keys.DefaultLease
	}
	return max(min(lease/4, 30*time.Second), keys.MinRetryInterval)
}

// Catalog returns the server's catalog, for embedding programs and tests
// that provision instances without HTTP. Its instances are the ones the
// server serves.
func (s *Server) Catalog() *tenancy.Catalog { return s.cat }

// Handler returns the server's HTTP handler (every endpoint, with
// authentication, limits, metrics and logging).
func (s *Server) Handler() http.Handler { return s.handler }

// LoopbackOnly reports whether the server runs without an administrator
// token, and so serves loopback addresses only.
func (s *Server) LoopbackOnly() bool { return s.open }

// Serve serves HTTP (HTTPS when TLS is configured) on ln until Shutdown. It
// refuses a listener that is not on a loopback address when no
// administrator token is configured. It returns nil after a graceful
// Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	if s.open && !isLoopback(ln.Addr()) {
		return fmt.Errorf("server: refusing to serve on %s without an administrator token: without one every client is an administrator, so only loopback addresses are allowed; configure a token (--admin-token-file or BLINDEX_ADMIN_TOKEN) or listen on 127.0.0.1", ln.Addr())
	}
	if s.tlsConf == nil && !isLoopback(ln.Addr()) {
		s.log.Warn("serving a non-loopback address over plain HTTP: bearer tokens, documents and queries cross the network unencrypted; configure TLS (--tls-cert and --tls-key) or serve behind a TLS-terminating proxy on this host",
			"addr", ln.Addr().String())
	}
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       s.lim.RequestTimeout,
		WriteTimeout:      s.lim.RequestTimeout + 5*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.Background() },
	}
	s.mu.Lock()
	if s.closed || s.shutting.Load() {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	s.servers = append(s.servers, hs)
	s.mu.Unlock()
	s.advertise(ln)
	var err error
	if s.tlsConf != nil {
		hs.TLSConfig = s.tlsConf.Clone()
		err = hs.ServeTLS(ln, "", "")
	} else {
		err = hs.Serve(ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// ListenAndServe listens on addr, logs where and how it serves, and serves
// until ctx ends; then it shuts down gracefully (see Shutdown), waiting at
// most Config.ShutdownTimeout for in-flight requests.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	if s.open {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return fmt.Errorf("server: address %q: %w", addr, err)
		}
		if !loopbackHost(host) {
			return fmt.Errorf("server: refusing to listen on %s without an administrator token: without one every client is an administrator, so only a loopback address (127.0.0.1, [::1], localhost) is allowed; configure a token with --admin-token-file or BLINDEX_ADMIN_TOKEN", addr)
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("server: listen: %w", err)
	}
	scheme := "http"
	if s.tlsConf != nil {
		scheme = "https"
	}
	if s.open {
		s.log.Warn("no administrator token configured: serving on loopback only, and every local client is an administrator",
			"addr", ln.Addr().String(), "scheme", scheme)
	} else {
		s.log.Info("administrator tokens configured", "count", len(s.admins))
	}
	s.log.Info("serving", "addr", ln.Addr().String(), "scheme", scheme, "instances", s.groups.total(), "max_open", s.cfg.MaxOpen)
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ln) }()
	select {
	case err := <-errc:
		s.Shutdown(context.Background())
		return err
	case <-ctx.Done():
	}
	s.log.Info("shutting down: finishing in-flight requests", "timeout", s.cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err = s.Shutdown(sctx)
	if serr := <-errc; serr != nil && err == nil {
		err = serr
	}
	s.log.Info("stopped", "error", errString(err))
	return err
}

// Shutdown stops the server gracefully: /readyz answers 503 at once, the
// listeners close, in-flight requests finish (each has committed or not,
// atomically), running re-encryptions stop between two batches (they
// resume when started again), then the catalog closes every instance and
// keyring, which zeroes every key, and the store closes. It waits for
// in-flight requests until ctx ends, and closes everything in any case.
// It is idempotent.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutting.Store(true)
	s.mu.Lock()
	servers := s.servers
	s.servers = nil
	s.mu.Unlock()
	var errs []error
	for _, hs := range servers {
		if err := hs.Shutdown(ctx); err != nil {
			errs = append(errs, err)
			hs.Close()
		}
	}
	s.cancel()
	s.jobs.wait()
	errs = append(errs, s.Close())
	return errors.Join(errs...)
}

// Close closes the catalog (zeroing every key), the key provider and the
// store without waiting for requests; Shutdown calls it.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return s.closeErr
	}
	s.closed = true
	s.shutting.Store(true)
	s.cancel()
	var errs []error
	s.sweepNodes(context.Background(), true)
	errs = append(errs, s.cat.Close())
	if s.nodes != nil {
		errs = append(errs, s.nodes.owners.Close())
	}
	s.local.Close()
	errs = append(errs, s.st.Close())
	s.closeErr = errors.Join(errs...)
	return s.closeErr
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// openStore opens the store of cfg: the database at cfg.Store, else the
// Pebble store in cfg.Data (created if missing).
func openStore(ctx context.Context, cfg Config) (store.Store, error) {
	if cfg.Store != "" {
		// Several servers may serve the database: each instance's writes
		// are owned by one of them at a time, through a lease per instance
		// fencing its writes (nodes.go).
		st, err := postgres.Open(ctx, cfg.Store, postgres.Options{})
		if err != nil {
			return nil, fmt.Errorf("server: store at %s: %w", postgres.Redact(cfg.Store), err)
		}
		return st, nil
	}
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return nil, fmt.Errorf("server: data directory: %w", err)
	}
	// The provider key in the key home also encrypts the store's files.
	storeKey, err := keys.StoreKey(cfg.Home)
	if err != nil {
		return nil, fmt.Errorf("server: store key: %w", err)
	}
	so := cfg.Pebble
	so.ReadOnly = false
	so.StoreKey = storeKey
	st, err := store.OpenPebble(cfg.Data, so)
	keys.Zero(storeKey)
	if errors.Is(err, store.ErrStoreKey) || errors.Is(err, store.ErrNotEncrypted) {
		return nil, fmt.Errorf("server: %w; the key home (Config.Home) must be the one the data directory was written with", err)
	}
	if err != nil {
		return nil, fmt.Errorf("server: %w; make sure no other blindex process uses %s", err, cfg.Data)
	}
	return st, nil
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/blindex/blindex/index"
	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/keys/awskms"
	"github.com/blindex/blindex/store"
	"github.com/blindex/blindex/store/control"
	"github.com/blindex/blindex/store/postgres"
	"github.com/blindex/blindex/tenancy"
	"github.com/blindex/blindex/tokenize"
)

// env is what a command works in: the store of one data directory (or of a
// PostgreSQL database with --store), the local key provider once keys are
// opened, and one tenancy.Catalog over them (configurations, instances,
// keyrings, BYOK rules), made on first use.
type env struct {
	dir   string      // data directory, as given; "" with --store
	flags commonFlags // the command's flags
	home  string      // key home (--home, $BLINDEX_HOME or ~/.blindex), absolute
	st    store.Store
	ctl   *control.Store      // st with control records authenticated; nil until openLocal
	prov  *keys.LocalProvider // nil until openLocal (or when the key file is missing and optional)
	local keys.Provider       // the catalog's provider for non-BYOK instances
	cat   *tenancy.Catalog

	audit     *keys.AuditLog // nil without --audit
	auditFile *os.File
}

// openMode says how a command opens its store.
type openMode int

const (
	// openExisting opens an existing store: a missing data directory is an
	// error, so that a typo in --data does not silently create an empty
	// store.
	openExisting openMode = iota
	// openCreate creates a missing data directory (mode 0700) and store.
	openCreate
	// openReadOnly opens an existing store read-only, for commands that
	// only read (search, get, check): they work, and never hang on a
	// flush, when the disk is full.
	openReadOnly
)

// openEnv checks the common flags, resolves the key home (refusing one
// inside the data directory before anything is created) and opens the
// store in c.data as mode says. With --store, it connects to the database
// instead (creating the store's table when missing). It also opens the
// --audit log.
func openEnv(c commonFlags, mode openMode) (*env, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	home, err := resolveHome(c.home)
	if err != nil {
		return nil, err
	}
	if err := checkHome(home, c.data); err != nil {
		return nil, err
	}
	if c.store != "" {
		e := &env{flags: c, home: home}
		if err := e.openAudit(); err != nil {
			return nil, err
		}
		// One blindex process writes a store at a time, as with Pebble's
		// directory lock: a lease in the database, fencing every write.
		st, err := postgres.Open(context.Background(), c.store, postgres.Options{Lease: postgres.LeaseOptions{Scope: postgres.StoreScope}})
		if errors.Is(err, postgres.ErrLeaseHeld) {
			e.Close()
			return nil, inputErrorf("another blindex process (named in the message) uses this store: stop it, or wait until its lease passes if it was killed, then retry",
				"cannot open the store at %s: %v", c.storeName(), err)
		}
		if err != nil {
			e.Close()
			return nil, inputErrorf("check --store (host, port, database, user, password, sslmode) and that the database is reachable, then retry",
				"cannot open the store at %s: %v", c.storeName(), err)
		}
		// Servers serving the database own the instances' writes; a
		// command would write (or compact) behind their back.
		nodes, err := st.Nodes(context.Background())
		if err == nil && len(nodes) > 0 {
			err = fmt.Errorf("%d blindex serve node(s) serve this database (%s)", len(nodes), strings.Join(nodes, ", "))
			st.Close()
			e.Close()
			return nil, inputErrorf("use the servers' API, or stop every node (a killed node's entry passes after its --owner-ttl), then retry",
				"cannot use the store at %s: %v", c.storeName(), err)
		}
		if err != nil {
			st.Close()
			e.Close()
			return nil, inputErrorf("check that the database is reachable, then retry", "cannot open the store at %s: %v", c.storeName(), err)
		}
		e.st = st
		return e, nil
	}
	create := mode == openCreate
	fi, err := os.Stat(c.data)
	switch {
	case errors.Is(err, fs.ErrNotExist) && create:
		if err := os.MkdirAll(c.data, 0o700); err != nil {
			return nil, inputErrorf("choose a data directory you can write to", "cannot create data directory %s: %v", c.data, err)
		}
	case errors.Is(err, fs.ErrNotExist):
		return nil, inputErrorf(fmt.Sprintf("check --data, or create an instance there with 'blindex index --data %s --mapping FILE FILE...'", c.data),
			"data directory %s does not exist", c.data)
	case err != nil:
		return nil, inputErrorf("check --data and its permissions", "cannot use data directory %s: %v", c.data, err)
	case !fi.IsDir():
		return nil, inputErrorf("--data must name a directory", "data directory %s is not a directory", c.data)
	}
	newStore := !holdsStore(c.data)
	if newStore {
		entries, err := os.ReadDir(c.data)
		switch {
		case err != nil:
			return nil, inputErrorf("check --data and its permissions", "cannot use data directory %s: %v", c.data, err)
		case !create:
			return nil, inputErrorf(fmt.Sprintf("check --data, or create an instance there with 'blindex index --data %s --mapping FILE FILE...'", c.data),
				"%s holds no blindex store", c.data)
		case len(entries) > 0:
			return nil, inputErrorf("give a new or empty directory, or one that already holds a blindex store",
				"%s is not empty and holds no blindex store; blindex will not create its store among other files", c.data)
		}
	}
	e := &env{dir: c.data, flags: c, home: home}
	if err := e.openAudit(); err != nil {
		return nil, err
	}
	key, keyFile, err := storeKey(home, newStore)
	if err != nil {
		e.Close()
		return nil, err
	}
	st, err := store.OpenPebble(c.data, store.PebbleOptions{StoreKey: key, ReadOnly: mode == openReadOnly, MinFreeBytes: c.storeMinFree()})
	keys.Zero(key)
	if errors.Is(err, store.ErrDiskFull) {
		e.Close()
		return nil, &cliError{code: exitStorage, err: err,
			next: "free space on the disk holding the data directory, then run the command again; nothing was written (search, get and check still work)"}
	}
	if err != nil {
		e.Close()
		return nil, storeOpenError(c.data, key, keyFile, err)
	}
	e.st = st
	return e, nil
}

// openAudit opens the --audit log: a file (appended to, mode 0600) or
// standard error.
func (e *env) openAudit() error {
	switch e.flags.audit {
	case "":
		return nil
	case "-":
		w := e.flags.stderr
		if w == nil {
			w = os.Stderr
		}
		e.audit = keys.NewAuditLog(w)
		return nil
	}
	f, err := os.OpenFile(e.flags.audit, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return inputErrorf("give --audit a file you can write to, or - for standard error", "cannot open the audit log: %v", err)
	}
	e.auditFile = f
	e.audit = keys.NewAuditLog(f)
	return nil
}

// Close closes the catalog (its instances and keyrings: keys are zeroed),
// the local provider, the store and the audit log.
func (e *env) Close() {
	if e.cat != nil {
		e.cat.Close()
	}
	if e.prov != nil {
		e.prov.Close()
	}
	if e.st != nil {
		e.st.Close()
	}
	if e.auditFile != nil {
		e.auditFile.Close()
	}
}

// holdsStore reports whether dir looks like a Pebble store (it has a
// manifest), so that commands never create a store in a directory that was
// named by mistake.
func holdsStore(dir string) bool {
	for _, pattern := range []string{"marker.manifest.*", "MANIFEST-*"} {
		if m, _ := filepath.Glob(filepath.Join(dir, pattern)); len(m) > 0 {
			return true
		}
	}
	return false
}

// resolveHome returns the key provider home: flag, else keys.DefaultHome
// ($BLINDEX_HOME, else ~/.blindex), made absolute.
func resolveHome(flagHome string) (string, error) {
	home := flagHome
	if home == "" {
		h, err := keys.DefaultHome()
		if err != nil {
			return "", inputErrorf("set --home or BLINDEX_HOME", "no key provider home: %v", err)
		}
		home = h
	}
	return filepath.Abs(home)
}

// checkHome refuses a key home inside the data directory (keys.CheckHome),
// saying what to do instead.
func checkHome(home, data string) error {
	if err := keys.CheckHome(home, data); err != nil {
		return inputErrorf("keep the key away from the data it protects: set --home or BLINDEX_HOME to a directory outside the data directory", "%v", err)
	}
	return nil
}

// keyNeed says what a command needs of the local provider key.
type keyNeed int

const (
	keyRequired keyNeed = iota // a missing key file is an error (exit 3)
	keyCreate                  // a missing key file is created
	keyOptional                // a missing key file is tolerated: instances under it cannot be opened
)

// openLocal opens the local provider of the key home as need says.
func (e *env) openLocal(need keyNeed) error {
	if e.local != nil {
		switch {
		case e.prov != nil || need == keyOptional:
			return nil
		case need == keyRequired || e.cat != nil:
			return e.missingKey()
		}
		e.local = nil // keyCreate: create it now
	}
	keyFile := filepath.Join(e.home, keys.LocalKeyFile)
	if need != keyCreate {
		if _, err := os.Lstat(keyFile); errors.Is(err, fs.ErrNotExist) {
			if need == keyRequired {
				return e.missingKey()
			}
			e.local = missingKeyProvider{file: keyFile}
			e.ctl = control.NewUnkeyed(e.st, fmt.Errorf("no provider key at %s; use the --home (or BLINDEX_HOME) the data directory was written with", keyFile))
			return nil
		}
	}
	prov, err := keys.NewLocalProvider(e.home)
	if err != nil {
		return &cliError{code: exitKey, err: err, next: "fix the provider key file as the message says, or point --home at the right directory"}
	}
	prov.SetAudit(e.audit)
	e.prov, e.local = prov, prov
	key, err := keys.DeriveLocalKey(e.home, control.KeyLabel, false)
	if err != nil {
		return &cliError{code: exitKey, err: err, next: "fix the provider key file as the message says, or point --home at the right directory"}
	}
	defer keys.Zero(key)
	if e.ctl, err = control.New(e.st, key); err != nil {
		return err
	}
	return nil
}

// store returns the command's store with control records (manifests,
// configurations, plans) authenticated under the provider key of --home,
// opening the local provider (a missing key file allowed: control records
// are then refused as unverifiable) if needed.
func (e *env) store() (*control.Store, error) {
	if e.ctl == nil {
		if err := e.openLocal(keyOptional); err != nil {
			return nil, err
		}
	}
	return e.ctl, nil
}

func (e *env) missingKey() error {
	return &cliError{code: exitKey,
		err:  fmt.Errorf("no provider key at %s", filepath.Join(e.home, keys.LocalKeyFile)),
		next: "use the --home (or BLINDEX_HOME) the instance was created with; without its provider key and shredding secrets the instance cannot be opened"}
}

// missingKeyProvider stands in for the local provider when its key file
// does not exist and the command only reads what needs no key (manifests,
// configurations). It refuses every call, and never creates a key.
type missingKeyProvider struct{ file string }

func (m missingKeyProvider) KeyID() string { return "local:(no key)" }

func (m missingKeyProvider) GenerateRootKey(context.Context, keys.EncryptionContext) ([]byte, []byte, error) {
	return nil, nil, m.err()
}

func (m missingKeyProvider) UnwrapRootKey(context.Context, []byte, keys.EncryptionContext) ([]byte, error) {
	return nil, m.err()
}

func (m missingKeyProvider) err() error {
	// Exit 3, not 5: a missing key file is not an outage to wait out.
	return &cliError{code: exitKey, err: fmt.Errorf("%w: no provider key at %s", keys.ErrKeyUnavailable, m.file)}
}

// The CLI works on one instance at a time: it gives it an instance's
// default memtable and cache, not the catalog's (made for a server holding
// many instances).
const (
	cliMemtableBytes = 8 << 20
	cliCacheBytes    = 64 << 20
)

// catalog returns the command's catalog, making it on first use with opts
// as the template of every instance's options. The local provider must be
// open (openLocal).
func (e *env) catalog(opts index.Options) (*tenancy.Catalog, error) {
	if e.cat != nil {
		return e.cat, nil
	}
	if opts.IdleMerge == 0 {
		// A command is over in seconds, and search, get and check open
		// the store read-only: no idle merge (blindex serve has it).
		opts.IdleMerge = -1
	}
	if opts.MemtableBytes == 0 {
		// One instance per command: an instance's own default, not the
		// catalog's 2 MiB for a server holding many (fewer flushes and
		// merges while indexing).
		opts.MemtableBytes = cliMemtableBytes
	}
	if e.local == nil {
		if err := e.openLocal(keyOptional); err != nil {
			return nil, err
		}
	}
	pol, err := e.flags.loadPolicy()
	if err != nil {
		return nil, err
	}
	cat, err := tenancy.NewCatalog(e.ctl, tenancy.Options{
		Home:     e.home,
		Local:    e.local,
		KMS:      e.kmsProvider,
		Lease:    e.flags.lease,
		Audit:    e.audit,
		Instance: opts,
		Policy:   pol,
		// One instance per command: its cache, not a server's shared one.
		CacheBytes: cliCacheBytes,
	})
	if err != nil {
		return nil, &cliError{code: exitKey, err: err, next: "check --home (or BLINDEX_HOME): it must be a directory you can write to"}
	}
	e.cat = cat
	return cat, nil
}

// kmsProvider is the catalog's KMS hook: the AWS KMS provider of a BYOK
// configuration, through the standard AWS configuration chain (credentials
// and region from the environment, shared config and credentials files,
// profiles; AWS_ENDPOINT_URL_KMS), with --kms-endpoint and --kms-timeout
// as overrides. It makes no KMS call.
func (e *env) kmsProvider(ctx context.Context, cfg tenancy.EncryptionConfig) (keys.Provider, error) {
	p, err := awskms.New(ctx, awskms.Options{
		KeyARN:   cfg.KeyARN,
		Region:   cfg.Region,
		Endpoint: e.flags.kmsEndpoint,
		Timeout:  e.flags.kmsTimeout,
		Audit:    e.audit,
		Org:      cfg.Org,
	})
	if err != nil {
		return nil, withNext(err, "fix --kms-endpoint or the AWS configuration (AWS_PROFILE, AWS_CONFIG_FILE, AWS_ENDPOINT_URL_KMS)")
	}
	return p, nil
}

// checkProvider makes sure a non-BYOK instance is wrapped by the local
// provider key of this home, with a message saying which key is needed
// when it is not. BYOK instances use their organisation's KMS key through
// the catalog.
func (e *env) checkProvider(man *index.Manifest) error {
	if man.Meta.BYOK {
		return nil
	}
	if !strings.HasPrefix(man.KeyID, "local:") {
		return &cliError{code: exitKey,
			err:  fmt.Errorf("%w: instance %q is not BYOK but is wrapped by %s, which is not a local provider key", keys.ErrKeyUnavailable, man.Name, man.KeyID),
			next: "this instance was written by another tool; blindex opens non-BYOK instances with the local provider key only"}
	}
	if e.prov != nil && man.KeyID != e.prov.KeyID() {
		return &cliError{code: exitKey,
			err: fmt.Errorf("instance %q was created under provider key %s, but %s holds provider key %s",
				man.Name, man.KeyID, e.prov.KeyFile(), e.prov.KeyID()),
			next: "use the --home (or BLINDEX_HOME) the instance was created with"}
	}
	return nil
}

// noInstance is the error for an instance that does not exist.
func (e *env) noInstance(name string) error {
	at := e.flags.storeArg()
	return inputErrorf(fmt.Sprintf("list the instances with 'blindex instance ls %s', or create this one with 'blindex instance create %s --instance %s ...' or 'blindex index %s --instance %s --mapping FILE FILE...'", at, at, name, at, name),
		"instance %q does not exist in %s", name, e.flags.storeName())
}

// manifest reads an instance's manifest (no key needed).
func (e *env) manifest(name string) (*index.Manifest, error) {
	st, err := e.store()
	if err != nil {
		return nil, err
	}
	man, err := index.ReadManifest(st, name)
	if errors.Is(err, index.ErrNotFound) {
		return nil, e.noInstance(name)
	}
	if errors.Is(err, control.ErrForged) {
		return nil, e.wrongHome(st, name, err)
	}
	return man, err
}

// wrongHome explains a manifest that does not verify. When its (untrusted)
// body names a local provider key other than the one in --home, the likely
// cause is the wrong --home: exit 3 saying so, as for any other key
// mismatch. Otherwise it is what it says: edited outside blindex (exit 4).
func (e *env) wrongHome(st *control.Store, name string, err error) error {
	if e.prov == nil {
		return err
	}
	recs, ierr := st.Inspect(append([]byte{control.Namespace, 'M'}, name...))
	if ierr != nil {
		return err
	}
	for _, r := range recs {
		var m struct {
			KeyID string `json:"key_id"`
		}
		if r.Name != name || json.Unmarshal(r.Body, &m) != nil || !strings.HasPrefix(m.KeyID, "local:") || m.KeyID == e.prov.KeyID() {
			continue
		}
		return &cliError{code: exitKey,
			err: fmt.Errorf("%w; instance %q says it was created under provider key %s, but %s holds provider key %s",
				err, name, m.KeyID, e.prov.KeyFile(), e.prov.KeyID()),
			next: "use the --home (or BLINDEX_HOME) the instance was created with: its provider key authenticates the data directory's manifests and configurations"}
	}
	return err
}

// openInstance opens the existing instance name through the catalog,
// unwrapping its keys (for a BYOK instance: one KMS Decrypt per key
// generation). opts is the template of the catalog's instance options when
// the catalog is made here. The catalog owns the instance; closing it is
// allowed.
func (e *env) openInstance(ctx context.Context, name string, opts index.Options) (*index.Instance, error) {
	man, err := e.manifest(name)
	if err != nil {
		return nil, err
	}
	if err := e.openLocal(keyRequired); err != nil {
		return nil, err
	}
	if err := e.checkProvider(man); err != nil {
		return nil, err
	}
	cat, err := e.catalog(opts)
	if err != nil {
		return nil, err
	}
	in, err := cat.Instance(ctx, name)
	if err != nil {
		return nil, e.openError(man, err)
	}
	return in, nil
}

// withInstance opens the command's instance (--instance) with opts, runs
// fn on it and closes it.
func (e *env) withInstance(ctx context.Context, opts index.Options, fn func(in *index.Instance) error) error {
	in, err := e.openInstance(ctx, e.flags.instance, opts)
	if err != nil {
		return err
	}
	defer in.Close()
	return fn(in)
}

// openError explains why an existing instance could not be opened, with
// what to do next.
func (e *env) openError(man *index.Manifest, err error) error {
	restore := fmt.Sprintf("'blindex instance restore %s --instance %s'", e.flags.storeArg(), shellQuote(man.Name))
	switch {
	case errors.Is(err, keys.ErrHeld):
		return &cliError{code: exitKey, err: err, next: fmt.Sprintf(
			"the instance is locked by revoke-now ('blindex instance revoke-now' or the server's POST .../revoke-now); it stays locked, across commands and restarts, until %s", restore)}
	case errors.Is(err, keys.ErrKeyRevoked) && man.Meta.BYOK:
		return &cliError{code: exitKey, err: err, next: fmt.Sprintf(
			"the customer's KMS key %s refused to unwrap this instance's key (the key is disabled or scheduled for deletion, or access to it is denied), so the instance is locked. "+
				"Restore access to the key in KMS (enable it, cancel its deletion, or fix its key policy and grants), then run %s and run this command again", man.KeyID, restore)}
	case errors.Is(err, keys.ErrKeyRevoked):
		return &cliError{code: exitKey, err: err, next: fmt.Sprintf("the instance's key is revoked: restore access to it, then run %s", restore)}
	case errors.Is(err, keys.ErrKeyUnavailable) && man.Meta.BYOK:
		return &cliError{code: exitKMS, err: err, next: fmt.Sprintf(
			"KMS could not be reached or did not answer in time: an outage, not a revocation, but this command holds no key in memory to serve from. "+
				"Check the endpoint (AWS_ENDPOINT_URL_KMS or --kms-endpoint), the network and the AWS credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE, ...), then run this command again, or %s", restore)}
	case errors.Is(err, index.ErrNotFound) && man.Meta.BYOK && e.cat != nil:
		if _, cerr := e.cat.Config(man.Meta.Org); cerr != nil {
			return &cliError{code: exitKey, err: err,
				next: fmt.Sprintf("instance %q is BYOK for organisation %q, which has no encryption configuration in %s", man.Name, man.Meta.Org, e.flags.storeName())}
		}
		fallthrough
	case errors.Is(err, index.ErrNotFound) && man.Shred:
		return &cliError{code: exitKey, err: err,
			next: "use the --home (or BLINDEX_HOME) the instance was created with: it holds the instance's shredding secret"}
	}
	return err
}

// openOrCreate opens the instance, creating it through the catalog (not
// BYOK, with a shredding secret) with the mapping in mappingFile and meta
// when it does not exist. When it exists and mappingFile is given, the
// mapping must equal the stored one. fromFile says that mappingFile names a
// file, next to which the mapping's token map files are read.
func (e *env) openOrCreate(ctx context.Context, mappingFile string, fromFile bool, mappingJSON []byte, meta index.Meta, opts index.Options) (in *index.Instance, created bool, err error) {
	var m *tokenize.Mapping
	if mappingJSON != nil {
		var o tokenize.MappingOptions
		if fromFile {
			// Token map files are read next to the mapping file.
			o.TokenMapFiles = os.DirFS(filepath.Dir(mappingFile))
		}
		m, err = tokenize.ParseMappingWithOptions(mappingJSON, o)
		if err != nil {
			return nil, false, withNext(fmt.Errorf("mapping %s: %w", mappingFile, err),
				"fix the mapping file (see the README's \"Mapping\" section for the supported subset)")
		}
	}
	st, err := e.store()
	if err != nil {
		return nil, false, err
	}
	_, err = index.ReadManifest(st, e.flags.instance)
	switch {
	case errors.Is(err, index.ErrNotFound):
		if m == nil {
			return nil, false, usageErrorf("instance %q does not exist in %s: give --mapping FILE to create it", e.flags.instance, e.flags.storeName())
		}
		if err := e.openLocal(keyCreate); err != nil {
			return nil, false, err
		}
		cat, err := e.catalog(opts)
		if err != nil {
			return nil, false, err
		}
		in, err := cat.CreateInstance(ctx, e.flags.instance, meta, m)
		if err != nil {
			return nil, false, err
		}
		return in, true, nil
	case err != nil:
		return nil, false, err
	}
	in, err = e.openInstance(ctx, e.flags.instance, opts)
	if err != nil {
		return nil, false, err
	}
	if m != nil && string(m.JSON()) != string(in.Mapping().JSON()) {
		in.Close()
		return nil, false, inputErrorf(
			"omit --mapping to index with the stored mapping, or index into a new instance (--instance NEW) to use this one",
			"instance %q exists with a different mapping than %s; a mapping cannot change once documents are indexed with it", e.flags.instance, mappingFile)
	}
	return in, false, nil
}

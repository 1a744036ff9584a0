package server

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"time"

	"github.com/blindex/blindex/index"
	"github.com/blindex/blindex/store"
	"github.com/blindex/blindex/store/postgres"
)

// Several nodes over one database
//
// With a PostgreSQL store (Config.Store), any number of servers ("nodes")
// serve the same database, every instance on every node:
//
//   - Writes. One node at a time owns an instance's writes, through a lease
//     row in the database whose scope is "instance/" and the instance's
//     random store prefix (already visible in every record key: the row
//     names no instance). A node takes the lease on its first write to the
//     instance when nobody holds it, renews it while it keeps writing, and
//     releases it after NodeOptions.OwnerTTL without writes. Every commit
//     of the instance (batches, merges, compactions, rotation,
//     attachments) carries, in its own transaction, a statement that
//     updates the lease row only while this node holds the lease and the
//     instance's version is the one its in-memory state reflects, and
//     bumps the version; the transaction rolls back whole otherwise
//     (index.ErrStale). A write that reaches a node that does not own the
//     instance is forwarded (one hop, streamed) to the owner, at the
//     address the owner advertises in an authenticated control record
//     (0x00 'N' ‖ node name, MACed like every control record: the
//     database's operator cannot redirect writes, tokens and documents to
//     an address of its choosing); when the owner cannot be reached
//     (killed), the answer is 503 with Retry-After until its lease passes
//     and a node takes it over.
//   - Reads. Before serving a request, a node that does not own the
//     instance reads its version (one round trip) and, when another node
//     wrote since it loaded it, reloads its head and log (and manifest):
//     every write acknowledged before the request started is seen. The
//     owner needs no round trip.
//   - Locks. revoke-now and restore are control records in the database,
//     re-read by every node's keyrings at each re-validation: another node
//     locks within Config.Lease, and unlocks at its next retry.
//   - Outages. An unreachable database is 503 store_unavailable with
//     Retry-After, and the nodes recover by themselves when it returns.

// forwardedHeader marks a write forwarded by another node (its value is the
// forwarding node's name); a forwarded write is never forwarded again.
const forwardedHeader = "X-Blindex-Forwarded-By"

// Error codes of several nodes over one database.
const (
	CodeStoreUnavailable = "store_unavailable" // 503: the database cannot be reached; retry (Retry-After)
	CodeNotOwner         = "owner_unavailable" // 503: another node owns the instance's writes and cannot be reached, or ownership moved; retry (Retry-After)
)

// NodeOptions configure a server as one of several nodes over one database
// (Config.Store only).
type NodeOptions struct {
	// OwnerTTL is the lease of a node's ownership of an instance's writes:
	// a killed owner's instances are taken over by another node once it
	// has passed; an owner releases an instance after that long without
	// writes. Default 15 s (postgres.DefaultLeaseTTL); at least 1 s.
	OwnerTTL time.Duration
	// Advertise is the base URL at which other nodes reach this one to
	// forward writes ("http://10.0.0.5:8080"). Default: the scheme and the
	// address the server listens on, unless that is a wildcard address
	// (0.0.0.0, [::]): then writes are not forwarded to this node, and
	// other nodes answer 503 until its ownership passes.
	Advertise string
	// Name names this node in lease rows and logs; unique among the nodes.
	// Default "HOST:PID/" and 8 random hex digits.
	Name string
}

// nodes is the server's side of sharing a database with other nodes.
type nodes struct {
	st        *postgres.Store
	owners    *postgres.Owners
	transport http.RoundTripper
}

func newNodes(ctx context.Context, st *postgres.Store, o NodeOptions) (*nodes, error) {
	// A CLI command writes the store without the nodes' ownership: it and
	// the nodes exclude each other (the CLI refuses while nodes are live).
	holder, err := st.LeaseHolder(ctx, postgres.StoreScope)
	if err != nil {
		return nil, err
	}
	if holder != "" {
		return nil, fmt.Errorf("a blindex command (%s) is using the store: wait for it to finish, or, if it was killed, for its lease to pass, then start the server again", holder)
	}
	owners, err := st.Owners(ctx, postgres.OwnersOptions{Holder: o.Name, TTL: o.OwnerTTL})
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = 0
	return &nodes{st: st, owners: owners, transport: tr}, nil
}

// instanceScope is the lease scope of an instance: its random store prefix,
// not its name.
func instanceScope(prefix []byte) string { return "instance/" + hex.EncodeToString(prefix) }

// writer returns this node's ownership of the instance under prefix, as
// the engine uses it.
func (n *nodes) writer(prefix []byte) index.SharedWriter {
	return sharedWriter{n.owners.Scope(instanceScope(prefix))}
}

// sharedWriter reports postgres's refusals as index.ErrStale.
type sharedWriter struct{ *postgres.Owned }

func (w sharedWriter) Apply(b *store.Batch, sync bool, expect int64) (int64, error) {
	v, err := w.Owned.Apply(b, sync, expect)
	if errors.Is(err, postgres.ErrStale) {
		return 0, fmt.Errorf("%w (%w)", index.ErrStale, err)
	}
	return v, err
}

// advertise records where this node serves, from the listener when
// NodeOptions.Advertise is not set.
func (s *Server) advertise(ln net.Listener) {
	if s.nodes == nil {
		return
	}
	addr := s.cfg.Nodes.Advertise
	if addr == "" {
		ta, ok := ln.Addr().(*net.TCPAddr)
		if !ok || ta.IP.IsUnspecified() {
			s.log.Warn("not advertising this node's address to the other nodes: it listens on a wildcard address; set the advertised address (--advertise) so that writes can be forwarded to it")
			return
		}
		scheme := "http"
		if s.tlsConf != nil {
			scheme = "https"
		}
		addr = scheme + "://" + ta.String()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.nodes.owners.Advertise(ctx, addr); err != nil {
		s.log.Warn("recording this node's address in its node row failed; retried in the background", "error", err)
	}
	js, _ := json.Marshal(nodeRecord{Version: 1, Addr: addr})
	var b store.Batch
	b.Set(nodeKey(s.nodes.owners.Holder()), js)
	if err := s.cat.Store().Apply(&b, true); err != nil {
		s.log.Warn("advertising this node's address failed: writes will not be forwarded to it", "error", err)
	}
	s.log.Info("serving as one of several nodes over the database", "node", s.nodes.owners.Holder(), "advertised", addr, "owner_ttl", s.nodes.owners.TTL().String())
}

// ownsWrites reports whether a route writes an instance: those need its
// ownership.
func ownsWrites(method, route string, acc access) bool {
	if acc == accessWrite && method != http.MethodGet {
		return true
	}
	if method == http.MethodDelete && route == "/v1/instances/{name}" {
		return true // no write of the instance may run while it is deleted
	}
	return method == http.MethodPost && (route == "/v1/instances/{name}/rotate" || route == "/v1/instances/{name}/reencrypt")
}

// acquire makes this node the owner of the call's instance's writes. When
// another node owns them it returns that node's name.
func (s *Server) acquire(c *call) (owner string, err error) {
	man, err := s.cat.Manifest(c.name)
	if errors.Is(err, index.ErrNotFound) {
		return "", errInstanceNotFound(c.name)
	}
	if err != nil {
		return "", err
	}
	_, err = s.nodes.owners.Scope(instanceScope(man.Prefix)).Acquire(c.ctx)
	var held *postgres.LeaseHeldError
	if errors.As(err, &held) {
		return held.Holder, err
	}
	return "", err
}

// ownOrForward makes this node the owner of the call's instance's writes,
// or forwards the request to the node that owns them. It reports whether
// the request was answered (forwarded).
func (s *Server) ownOrForward(c *call) (bool, error) {
	owner, err := s.acquire(c)
	if owner == "" {
		return false, err
	}
	retry := 1
	var held *postgres.LeaseHeldError
	if errors.As(err, &held) {
		retry = max(1, int(math.Ceil(held.Left.Seconds())))
	}
	unavailable := func(why string) error {
		return &apiError{status: http.StatusServiceUnavailable, code: CodeNotOwner, retryAfter: retry, cause: err,
			message: "another node owns this instance's writes and " + why + "; nothing was written. Retry: a node takes the writes over once the owner's lease passes"}
	}
	if c.r.Header.Get(forwardedHeader) != "" {
		return false, unavailable("this request was already forwarded once")
	}
	addr, aerr := s.nodeAddress(owner)
	if aerr != nil {
		return false, aerr
	}
	if addr == "" {
		return false, unavailable("has no advertised address")
	}
	target, perr := url.Parse(addr)
	if perr != nil {
		return false, unavailable("advertises an address that does not parse")
	}
	failed := false
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Set(forwardedHeader, s.nodes.owners.Holder())
		},
		Transport: s.nodes.transport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, perr error) {
			failed = true
			e := unavailable("cannot be reached")
			e.(*apiError).cause = perr
			writeError(w, e.(*apiError))
		},
		ErrorLog: nil,
	}
	rp.ServeHTTP(c.w, c.r.WithContext(c.ctx))
	s.metrics.forwarded(failed)
	return true, nil
}

// retryShared reports whether a failed attempt of a call is worth another
// on a refreshed instance: another node wrote the instance under it. A
// write refused as stale (nothing written) is retried once this node is
// again the owner; a read that failed on a record another node's
// compaction removed (it reads as corrupt) is retried when the instance
// changed since. A streamed body is never replayed.
func (s *Server) retryShared(c *call, in *index.Instance, err error) bool {
	if s.nodes == nil || c.stream || err == nil {
		return false
	}
	stale := errors.Is(err, index.ErrStale)
	if !stale && !errors.Is(err, index.ErrCorrupt) {
		return false
	}
	reloaded, rerr := in.Refresh(c.ctx)
	if rerr != nil {
		return false
	}
	if stale {
		if !c.owns {
			return false // a background write's refusal; not this call's
		}
		_, aerr := s.acquire(c)
		return aerr == nil
	}
	return reloaded
}

// deleted tells the other nodes that the instance under prefix was
// deleted: its version moves, so that their next request reloads it, finds
// it gone and closes it (zeroing its keys).
func (s *Server) deleted(ctx context.Context, prefix []byte) error {
	if s.nodes == nil {
		return nil
	}
	_, err := s.nodes.owners.Scope(instanceScope(prefix)).Bump(ctx)
	return err
}

// nodeRecord is the control record of a node's advertised address, key
// 0x00 'N' ‖ node name.
type nodeRecord struct {
	Version int    `json:"v"` // 1
	Addr    string `json:"addr"`
}

func nodeKey(holder string) []byte { return append([]byte{0x00, 'N'}, holder...) }

// nodeAddress returns the address node advertises, "" when it advertises
// none. The record is authenticated (a forged one is an error): the
// database's operator cannot make nodes forward writes elsewhere.
func (s *Server) nodeAddress(node string) (string, error) {
	v, err := s.cat.Store().Get(nodeKey(node))
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var rec nodeRecord
	if err := json.Unmarshal(v, &rec); err != nil || rec.Version != 1 {
		return "", fmt.Errorf("%w: the address record of node %q does not parse", index.ErrCorrupt, node)
	}
	return rec.Addr, nil
}

// sweepNodes deletes the address records of nodes that no longer run (it
// runs when a node starts), and, at shutdown, this node's own.
func (s *Server) sweepNodes(ctx context.Context, self bool) {
	if s.nodes == nil {
		return
	}
	var b store.Batch
	if self {
		b.Delete(nodeKey(s.nodes.owners.Holder()))
	} else {
		live, err := s.nodes.st.Nodes(ctx)
		if err != nil {
			return
		}
		s.cat.Store().Unwrap().Iterate([]byte{0x00, 'N'}, func(k, _ []byte) error {
			if !slices.Contains(live, string(k[2:])) {
				b.Delete(slices.Clone(k))
			}
			return nil
		})
	}
	if b.Len() > 0 {
		if err := s.cat.Store().Apply(&b, false); err != nil {
			s.log.Warn("deleting address records of stopped nodes failed", "error", err)
		}
	}
}

package tenancy

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/blindex/blindex/index"

	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/store"
	"github.com/blindex/blindex/store/control"
)

// Explicit locks (revoke-now) are records in the store, so that they hold
// across requests, every keyring and process on the same store, and
// restarts, until an explicit restore. Their scope is the tenant whose
// emergency it is:
//
//   - a BYOK instance: its organisation's configuration (every instance
//     under the customer's key), record "c" ‖ org;
//   - an instance that is not BYOK: that instance alone, record "i" ‖ name.
//     Instances that are not BYOK share one keyring (the provider key), so a
//     lock of the whole keyring would let one tenant lock, and lift the lock
//     of, every other tenant.
//
// A lock record is readable without any instance key (a locked instance
// must stay locked) and authenticated: its value is JSON followed by an
// HMAC-SHA256 of the record's key and the JSON under a key derived from the
// provider key, which lives in the key home outside the data directory
// ([keys.LocalProvider.ControlMAC]). A record that does not verify is
// refused: the instance stays locked and the error says why. Someone who can
// write the store cannot forge a lock or change one; deleting a lock record
// (like rolling the whole store back) is not detected.

// lockRecordPurpose is the MAC purpose of explicit-lock records.
const lockRecordPurpose = "blindex/v1/explicit-lock"

// Lock record scopes (the byte after control.Namespace 'L').
const (
	lockScopeConfig   byte = 'c'
	lockScopeInstance byte = 'i'
)

func lockKey(scope byte, name string) []byte {
	return append([]byte{control.Namespace, 'L', scope}, name...)
}

// lockRecord is the JSON part of an explicit-lock record.
type lockRecord struct {
	Version int       `json:"v"`     // 1
	Scope   string    `json:"scope"` // "config" or "instance"
	Name    string    `json:"name"`  // the organisation or the instance
	Locked  time.Time `json:"locked"`
}

// controlMAC authenticates control records.
type controlMAC interface {
	ControlMAC(purpose string, msg []byte) ([]byte, error)
}

// lockScope returns the scope of an instance's explicit lock.
func lockScope(name string, m index.Meta) (byte, string) {
	if m.BYOK {
		return lockScopeConfig, m.Org
	}
	return lockScopeInstance, name
}

// control returns the authenticator of control records: the local provider
// when it is one, else the provider key file in Home (never created here).
func (c *Catalog) control() (controlMAC, error) {
	if m, ok := c.opts.Local.(controlMAC); ok {
		return m, nil
	}
	c.ctlMu.Lock()
	defer c.ctlMu.Unlock()
	if c.ctl != nil {
		return c.ctl, nil
	}
	file := filepath.Join(c.opts.Home, keys.LocalKeyFile)
	if _, err := os.Lstat(file); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: explicit locks are authenticated with the provider key, and there is none at %s", keys.ErrKeyUnavailable, file)
	}
	p, err := keys.NewLocalProvider(c.opts.Home)
	if err != nil {
		return nil, err
	}
	c.ctl = p
	return p, nil
}

func (c *Catalog) lockMAC(key, js []byte) ([]byte, error) {
	ctl, err := c.control()
	if err != nil {
		return nil, err
	}
	return ctl.ControlMAC(lockRecordPurpose, append(append([]byte(nil), key...), js...))
}

// writeLock records an explicit lock, durably.
func (c *Catalog) writeLock(scope byte, name string) error {
	rec := lockRecord{Version: 1, Scope: "instance", Name: name, Locked: time.Now().UTC()}
	if scope == lockScopeConfig {
		rec.Scope = "config"
	}
	js, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	key := lockKey(scope, name)
	mac, err := c.lockMAC(key, js)
	if err != nil {
		return err
	}
	var b store.Batch
	b.Set(key, append(js, mac...))
	return c.st.Apply(&b, true)
}

// lockHeld reports whether an explicit lock record exists for the scope.
// A record that does not verify is an error wrapping ErrCorrupt.
func (c *Catalog) lockHeld(scope byte, name string) (bool, error) {
	key := lockKey(scope, name)
	v, err := c.st.Get(key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	case errors.Is(err, control.ErrForged), errors.Is(err, control.ErrUnauthenticated):
		// The catalog's store authenticates control records itself.
		return false, &index.CorruptError{Kind: "explicit-lock", Label: key[2:], Err: err}
	case err != nil:
		return false, err
	}
	bad := func(why string) error {
		return &index.CorruptError{Kind: "explicit-lock", Label: key[2:], Err: errors.New(why)}
	}
	const macSize = 32
	if len(v) <= macSize {
		return false, bad("too short")
	}
	js, mac := v[:len(v)-macSize], v[len(v)-macSize:]
	want, err := c.lockMAC(key, js)
	if err != nil {
		return false, err
	}
	if !hmac.Equal(mac, want) {
		return false, bad("it fails authentication under the provider key (forged, or written with another provider key)")
	}
	var rec lockRecord
	if err := json.Unmarshal(js, &rec); err != nil || rec.Version != 1 || rec.Name != name {
		return false, bad("unreadable or for another scope")
	}
	return true, nil
}

// keyringLocks is the keys.LockStore of one keyring: the explicit-lock
// records that apply to its leases.
type keyringLocks struct {
	c    *Catalog
	byok bool
}

func (l keyringLocks) Held(_ context.Context, ec keys.EncryptionContext) (bool, error) {
	if l.byok {
		if h, err := l.c.lockHeld(lockScopeConfig, ec.Org); h || err != nil {
			return h, err
		}
	}
	return l.c.lockHeld(lockScopeInstance, ec.Instance)
}

// ctlState is the Catalog's authenticator of control records, opened on
// first use when the local provider is wrapped.
type ctlState struct {
	ctlMu sync.Mutex
	ctl   controlMAC
}

// lockTarget returns the keyring of instance name and the scope of the
// explicit lock that covers it.
func (c *Catalog) lockTarget(ctx context.Context, name string) (*keys.Keyring, byte, string, error) {
	man, err := index.ReadManifest(c.st, name)
	if err != nil {
		return nil, 0, "", err
	}
	kr, err := c.keyringFor(ctx, name)
	if err != nil {
		return nil, 0, "", err
	}
	scope, sname := lockScope(name, man.Meta)
	return kr, scope, sname, nil
}

// RevokeNow locks an instance at once and until an explicit Restore: for a
// BYOK instance, every instance under its organisation's configuration; for
// an instance that is not BYOK, that instance alone. The lock is recorded
// in the store first (authenticated), so that it holds across requests,
// processes sharing the store, the keyrings' background checks and
// restarts; then the open leases lock (keys zeroed, caches dropped). No
// provider call is made.
func (c *Catalog) RevokeNow(ctx context.Context, name string) error {
	kr, scope, sname, err := c.lockTarget(ctx, name)
	if err != nil {
		return err
	}
	if err := c.writeLock(scope, sname); err != nil {
		return fmt.Errorf("tenancy: revoke-now: recording the lock: %w", err)
	}
	if scope == lockScopeConfig {
		kr.RevokeNow()
	} else {
		kr.RevokeInstance(name)
	}
	return nil
}

// Restore lifts the explicit lock that covers instance name (see
// RevokeNow), re-validates its keys with the provider now, and unlocks when
// the provider accepts them. It lifts only that lock: restoring one
// instance that is not BYOK never unlocks another.
func (c *Catalog) Restore(ctx context.Context, name string) error {
	kr, scope, sname, err := c.lockTarget(ctx, name)
	if err != nil {
		return err
	}
	var b store.Batch
	b.Delete(lockKey(scope, sname))
	if err := c.st.Apply(&b, true); err != nil {
		return fmt.Errorf("tenancy: restore: removing the lock: %w", err)
	}
	if scope == lockScopeConfig {
		err = kr.Restore(ctx)
	} else {
		err = kr.RestoreInstance(ctx, name)
	}
	if err != nil {
		return err
	}
	// Prove it: the instance's keys must unwrap now (a keyring with no open
	// lease has nothing to re-validate).
	in, err := c.Instance(ctx, name)
	if err != nil {
		return err
	}
	_, err = in.DocCount()
	return err
}

// explicitStatus reports an instance's explicit lock, if any, without a
// provider call.
func (c *Catalog) explicitStatus(name string, m index.Meta) (InstanceStatus, bool, error) {
	scope, sname := lockScope(name, m)
	held, err := c.lockHeld(scope, sname)
	switch {
	case err != nil:
		return InstanceStatus{}, false, err
	case !held:
		return InstanceStatus{}, false, nil
	}
	why := "locked by an administrator (revoke-now) until an explicit restore"
	if scope == lockScopeConfig {
		why += "; the lock covers every instance under the organisation's encryption configuration"
	}
	return InstanceStatus{State: keys.StateLocked.String(), Reason: why}, true, nil
}

package index

// The manifest: an instance's unsealed descriptor in the store, and the
// store's key-space layout.

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/blindex/blindex/store"
)

// Key-space layout of the store: manifests are readable without any key;
// everything else is a sealed record under an instance prefix. The
// manifest namespace is control.Namespace, the control records that a
// control.Store authenticates; the catalog (package tenancy) keeps its
// configurations, plans and explicit locks there too ('C', 'P', 'L').
const (
	nsManifest byte = 0x00 // 0x00 'M' ‖ instance name → manifest JSON
	nsRecord   byte = 0x01 // 0x01 ‖ prefix(8) ‖ label(16) → sealed value
	prefixSize      = 8
)

// Meta describes an instance: who owns it and where its data lives. It is
// fixed at creation and readable without the instance's key.
type Meta struct {
	Org     string `json:"org,omitempty"`
	Site    string `json:"site,omitempty"`
	Product string `json:"product,omitempty"`
	Region  string `json:"region,omitempty"`
	BYOK    bool   `json:"byok"`
}

// Generation is one root key generation in a manifest.
type Generation struct {
	Gen     uint32    `json:"gen"`
	Wrapped []byte    `json:"wrapped"`
	Created time.Time `json:"created"`
}

// Manifest is an instance's unsealed descriptor: format, metadata, wrapping
// key id and wrapped root keys. It holds nothing secret.
type Manifest struct {
	Format      int          `json:"format"`
	Name        string       `json:"name"`
	Prefix      []byte       `json:"prefix"`
	Meta        Meta         `json:"meta"`
	KeyID       string       `json:"key_id"`
	Generations []Generation `json:"generations"`
	Current     uint32       `json:"current"`
	Created     time.Time    `json:"created"`
	// Shred is true when the root key also depends on a secret kept in
	// a SecretStore outside the data directory.
	Shred bool `json:"shred,omitempty"`
	// Attach is the wrapped attachment-metadata key; nil for instances
	// created before attachments existed, until their first attachment.
	Attach *AttachKey `json:"attach,omitempty"`
}

// marshalManifest encodes a manifest for the store.
func marshalManifest(m *Manifest) ([]byte, error) { return json.Marshal(m) }

func manifestKey(name string) []byte {
	return append([]byte{nsManifest, 'M'}, name...)
}

// ReadManifest reads an instance's manifest without any key.
func ReadManifest(st store.Store, name string) (*Manifest, error) {
	b, err := st.Get(manifestKey(name))
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: instance %q does not exist; create it first", ErrNotFound, name)
	}
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, &CorruptError{Kind: "manifest", Label: []byte(name), Err: err}
	}
	if m.Format != FormatVersion {
		return nil, fmt.Errorf("%w: instance %q has format %d, this blindex reads format %d; use a matching blindex version", ErrFormat, name, m.Format, FormatVersion)
	}
	if len(m.Prefix) != prefixSize || m.Name != name {
		return nil, &CorruptError{Kind: "manifest", Label: []byte(name), Err: errIdentity}
	}
	return &m, nil
}

// ListInstances returns the names of the instances in a store.
func ListInstances(st store.Store) ([]string, error) {
	var names []string
	err := st.Iterate([]byte{nsManifest, 'M'}, func(k, _ []byte) error {
		names = append(names, string(k[2:]))
		return nil
	})
	return names, err
}

// secretID names an instance's shredding secret: the name and the random
// prefix, so that a re-created instance of the same name gets a new one.
func secretID(name string, prefix []byte) string {
	return name + "\x00" + string(prefix)
}

func validName(name string) error {
	if name == "" || len(name) > 200 || !utf8.ValidString(name) {
		return fmt.Errorf("%w: an instance name must be 1 to 200 bytes of UTF-8", ErrInvalidArgument)
	}
	return nil
}

// Manifest returns a copy of the instance's manifest.
func (in *Instance) Manifest() Manifest {
	in.manMu.Lock()
	defer in.manMu.Unlock()
	m := *in.man
	m.Generations = append([]Generation(nil), m.Generations...)
	return m
}

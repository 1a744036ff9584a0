package tenancy

import (
	"crypto/hkdf"
	"crypto/sha256"
	"testing"

	"github.com/blindex/blindex/attach"
	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/store/control"
	"github.com/blindex/blindex/tokenize"
)

// The engine's layout as the tests see it from outside package index:
// written out here again (not exported by index), so that a change of
// the layout fails these tests rather than passing unnoticed.

// nsRecord is the first byte of every sealed record's key.
const nsRecord byte = 0x01

// manifestKey is the control record key of an instance's manifest.
func manifestKey(name string) []byte { return append([]byte{control.Namespace, 'M'}, name...) }

// secretID names an instance's shredding secret in its SecretStore.
func secretID(name string, prefix []byte) string { return name + "\x00" + string(prefix) }

// instanceRoot derives an instance's root key from its unwrapped key and
// its shredding secret, as the engine does.
func instanceRoot(unwrapped, secret []byte) ([]byte, error) {
	return hkdf.Key(sha256.New, unwrapped, secret, "blindex/v1/instance-root", keys.RootKeySize)
}

// attachContext is the encryption context of an instance's attachment
// metadata key.
func attachContext(name, org string) keys.EncryptionContext {
	return keys.EncryptionContext{Org: org, Instance: name, Generation: attach.MetaGeneration}
}

func mustMapping(t testing.TB, js string) *tokenize.Mapping {
	t.Helper()
	m, err := tokenize.ParseMapping([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

const testMapping = `{
 "default_analyzer": "en",
 "default_field": "_all",
 "scoring_model": "bm25",
 "default_mapping": {
  "enabled": true, "dynamic": true,
  "properties": {
   "key": {"fields": [{"name": "key", "type": "text", "analyzer": "keyword", "index": true, "store": true, "include_in_all": false}]},
   "project": {"fields": [{"name": "project", "type": "text", "analyzer": "keyword", "index": true, "docvalues": true, "include_in_all": false}]},
   "summary": {"fields": [{"name": "summary", "type": "text", "analyzer": "en", "index": true, "store": true, "include_term_vectors": true, "include_in_all": true}]},
   "votes": {"fields": [{"name": "votes", "type": "number", "index": true, "docvalues": true}]}
  }
 }
}`

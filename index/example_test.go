package index_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/blevesearch/bleve/v2"

	"github.com/blindex/blindex/index"
	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/query"
	"github.com/blindex/blindex/store"
)

// Embedding blindex in a service: a store, a keyring, an instance;
// documents in, a bleve search request through package query, bleve's
// result out.
func Example() {
	dir, _ := os.MkdirTemp("", "blindex-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	st, err := store.OpenPebble(dir+"/data", store.PebbleOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	// The local provider keeps its key in a home directory outside the
	// data directory; a product would use AWS KMS (keys/awskms) for BYOK.
	prov, err := keys.NewLocalProvider(dir + "/home")
	if err != nil {
		log.Fatal(err)
	}
	kr, err := keys.NewKeyring(prov, keys.KeyringOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer kr.Close()

	// A nil mapping is bleve's default mapping.
	in, err := index.Create(ctx, st, "issues", nil, index.Meta{}, index.Options{Keyring: kr})
	if err != nil {
		log.Fatal(err)
	}
	defer in.Close()

	err = in.Apply(ctx, []index.Op{
		{ID: "HDFS-1", Body: []byte(`{"summary": "datanode crash on restart"}`)},
		{ID: "HDFS-2", Body: []byte(`{"summary": "namenode hangs"}`)},
		{ID: "HDFS-3", Body: []byte(`{"summary": "crash when the disk is full"}`)},
	})
	if err != nil {
		log.Fatal(err)
	}

	res, err := query.Search(ctx, in, bleve.NewSearchRequest(bleve.NewQueryStringQuery("summary:crash")))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Total, "hits")
	for _, h := range res.Hits {
		fmt.Println(h.ID)
	}
	body, err := in.Get(ctx, "HDFS-2")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(body))
	// Output:
	// 2 hits
	// HDFS-1
	// HDFS-3
	// {"summary": "namenode hangs"}
}

package query_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/blevesearch/bleve/v2"

	"github.com/blindex/blindex/index"
	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/query"
	"github.com/blindex/blindex/store"
)

// exampleInstance creates an instance with a few documents in a temporary
// directory, and returns it with a function that removes it all.
func exampleInstance() (*index.Instance, func()) {
	dir, _ := os.MkdirTemp("", "blindex-example")
	st, err := store.OpenPebble(dir+"/data", store.PebbleOptions{})
	if err != nil {
		log.Fatal(err)
	}
	prov, err := keys.NewLocalProvider(dir + "/home")
	if err != nil {
		log.Fatal(err)
	}
	kr, err := keys.NewKeyring(prov, keys.KeyringOptions{})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	in, err := index.Create(ctx, st, "issues", nil, index.Meta{}, index.Options{Keyring: kr, MaxExpansionEntries: 1000})
	if err != nil {
		log.Fatal(err)
	}
	err = in.Apply(ctx, []index.Op{
		{ID: "HDFS-1", Body: []byte(`{"summary": "datanode crash on restart", "votes": 5}`)},
		{ID: "HDFS-2", Body: []byte(`{"summary": "namenode hangs", "votes": 1}`)},
		{ID: "HDFS-3", Body: []byte(`{"summary": "crash when the disk is full", "votes": 3}`)},
	})
	if err != nil {
		log.Fatal(err)
	}
	return in, func() { in.Close(); kr.Close(); st.Close(); os.RemoveAll(dir) }
}

// Search takes a bleve request and returns bleve's result; an
// *index.Instance is what it searches.
func ExampleSearch() {
	in, done := exampleInstance()
	defer done()
	ctx := context.Background()

	q, err := query.ParseString("crash OR hangs", query.Options{Dialect: query.Boolean})
	if err != nil {
		log.Fatal(err)
	}
	req := bleve.NewSearchRequest(q)
	req.SortBy([]string{"-votes"})
	res, err := query.Search(ctx, in, req)
	if err != nil {
		log.Fatal(err)
	}
	for _, h := range res.Hits {
		fmt.Println(h.ID)
	}

	// Errors say what went wrong, with errors.Is.
	_, err = query.Search(ctx, in, bleve.NewSearchRequest(bleve.NewQueryStringQuery("summary:/(/")))
	fmt.Println(errors.Is(err, query.ErrInvalidQuery))
	in.Close()
	_, err = query.Search(ctx, in, bleve.NewSearchRequest(bleve.NewMatchQuery("crash")))
	fmt.Println(errors.Is(err, index.ErrClosed))
	// Output:
	// HDFS-1
	// HDFS-3
	// HDFS-2
	// true
	// true
}

// Walk visits a query's clauses, a query string's parsed ones included.
func ExampleWalk() {
	q := bleve.NewQueryStringQuery(`summary:crash* -status:closed votes:>3`)
	err := query.Walk(q, func(n query.Node) error {
		if n.Kind != query.KindQueryString {
			fmt.Printf("%*s%v (expands: %v, negated: %v)\n", 2*n.Depth, "", n.Kind, n.Expands, n.Negated)
		}
		return nil
	})
	fmt.Println(err)
	// Output:
	//   compound (expands: false, negated: false)
	//     compound (expands: false, negated: false)
	//       wildcard (expands: true, negated: false)
	//       range (expands: false, negated: false)
	//     compound (expands: false, negated: true)
	//       match (expands: false, negated: true)
	// <nil>
}

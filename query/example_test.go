package query_test

import (
	"fmt"

	"github.com/blevesearch/bleve/v2"

	"github.com/blindex/blindex/query"
)

func ExampleParseString() {
	q, err := query.ParseString(`status:Open AND (crash OR "connection reset") NOT votes:<3`,
		query.Options{Dialect: query.Boolean})
	if err != nil {
		fmt.Println(err)
		return
	}
	req := bleve.NewSearchRequest(q) // for an instance's Search
	_ = req

	_, err = query.ParseString(`status:Open AND (crash`, query.Options{Dialect: query.Boolean})
	fmt.Println(err)
	// Output: query: column 23: expected ')' to close the '(' at column 17, found the end of the query
}

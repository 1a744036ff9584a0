package index

import (
	"context"
	"fmt"
)

// Get returns the stored JSON body of a document.
func (in *Instance) Get(ctx context.Context, id string) ([]byte, error) {
	body, err := in.storedBody(id, "document")
	if err != nil {
		return nil, err
	}
	return publicBody(body), nil
}

// storedBody returns the stored body of id (a document's, or a synonym
// definition's); what names what was asked for when id is not indexed.
func (in *Instance) storedBody(id, what string) ([]byte, error) {
	r, err := in.newReader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	n, ok, err := r.st.lookupID(id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: no %s with that id", ErrNotFound, what)
	}
	d, err := in.storedDocument(r.st, n)
	if err != nil {
		return nil, err
	}
	return d.body, nil
}

package query

import (
	"github.com/blevesearch/bleve_index_api"

	"github.com/blindex/blindex/tokenize"
)

// geoReader is the reader bleve's searches run over. It presents the
// encoded shapes of a geoshape field, which tokenize indexes as the single
// term of the field's hidden tokenize.GeoValuesField, as doc values of
// the geoshape field itself, as scorch does (its "extra doc values"): that
// is where bleve's geoshape searchers and filters look for them. The hidden
// fields are left out of Fields.
type geoReader struct {
	*reader
}

func (r geoReader) DocValueReader(fields []string) (index.DocValueReader, error) {
	all := fields
	for _, f := range fields {
		all = append(all[:len(all):len(all)], tokenize.GeoValuesField(f))
	}
	dv, err := r.reader.DocValueReader(all)
	if err != nil {
		return nil, err
	}
	return geoDocValues{dv}, nil
}

// geoDocValues renames the hidden fields' doc values to their field.
type geoDocValues struct {
	index.DocValueReader
}

func (d geoDocValues) VisitDocValues(id index.IndexInternalID, visit index.DocValueVisitor) error {
	return d.DocValueReader.VisitDocValues(id, func(field string, term []byte) {
		if f, ok := tokenize.IsGeoValuesField(field); ok {
			field = f
		}
		visit(field, term)
	})
}

func (r geoReader) Fields() ([]string, error) {
	fields, err := r.reader.Fields()
	if err != nil {
		return nil, err
	}
	out := fields[:0:0]
	for _, f := range fields {
		if _, ok := tokenize.IsGeoValuesField(f); !ok {
			out = append(out, f)
		}
	}
	return out, nil
}

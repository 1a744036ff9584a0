package store

import "errors"

// MultiGetter is implemented by stores that read several keys in one call
// for less than as many calls to Get: a database a network round trip
// away (store/postgres reads them with one statement). Stores that wrap
// another forward it (GetMany), so that the saving survives the wrapping.
type MultiGetter interface {
	// GetMany returns the values of keys, in the order of keys: nil for
	// a key that has no value (an empty value is a non-nil empty slice).
	// Keys may repeat. It fails as Get does; a missing key is not an
	// error.
	GetMany(keys [][]byte) ([][]byte, error)
}

// GetMany reads keys from st: in one call when st is a MultiGetter, else
// with one Get per key. It returns the values in the order of keys, nil
// for a key that has no value.
func GetMany(st Store, keys [][]byte) ([][]byte, error) {
	if mg, ok := st.(MultiGetter); ok {
		return mg.GetMany(keys)
	}
	out := make([][]byte, len(keys))
	for i, k := range keys {
		v, err := st.Get(k)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return nil, err
		case v == nil:
			out[i] = []byte{} // Get may return nil for an empty value
		default:
			out[i] = v
		}
	}
	return out, nil
}

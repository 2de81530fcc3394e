package notify

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

// decodeBatchTwice is the two-pass way DecodeBatch replaces: the batch
// decoded with each notification kept raw, then each decoded on its own.
func decodeBatchTwice(data []byte) ([]BatchItem, error) {
	var in struct {
		Notifications []json.RawMessage `json:"notifications"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return nil, err
	}
	var items []BatchItem
	for _, raw := range in.Notifications {
		n, err := Decode(raw)
		items = append(items, BatchItem{N: n, Err: err})
	}
	return items, nil
}

func checkDecodeBatch(t *testing.T, data []byte) {
	t.Helper()
	got, err := DecodeBatch(data)
	if err != nil && !errors.Is(err, ErrMalformed) {
		t.Fatalf("%q: error %v does not wrap ErrMalformed", data, err)
	}
	want, werr := decodeBatchTwice(data)
	trailing := false
	if werr == nil {
		dec := json.NewDecoder(bytes.NewReader(data))
		var v any
		dec.Decode(&v)
		_, terr := dec.Token()
		trailing = terr != io.EOF
	}
	switch {
	case err != nil && werr == nil && !trailing:
		t.Fatalf("%q: DecodeBatch failed (%v), the two passes did not", data, err)
	case err == nil && werr != nil:
		t.Fatalf("%q: DecodeBatch took what the two passes refused (%v)", data, werr)
	case err != nil || werr != nil:
		return
	}
	if len(got) != len(want) {
		t.Fatalf("%q: %d items, want %d", data, len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if (g.Err == nil) != (w.Err == nil) {
			t.Fatalf("%q item %d: error %v, want %v", data, i, g.Err, w.Err)
		}
		if g.Err != nil {
			var gi, wi *InvalidError
			if !errors.As(g.Err, &gi) || !errors.As(w.Err, &wi) || gi.Field != wi.Field {
				t.Fatalf("%q item %d: error %v, want %v", data, i, g.Err, w.Err)
			}
			continue
		}
		if !reflect.DeepEqual(g.N, w.N) {
			t.Fatalf("%q item %d: %+v, want %+v", data, i, g.N, w.N)
		}
	}
}

var batchSeeds = []string{
	`{"notifications":[{"channel":"webhook","to":{"webhook":"https://x"},"content":{"text":"a"}},{"priority":"high"},{"colour":"red"},null,5,{"to":{"fax":"1"}}]}`,
	`{"Notifications":[{}]}`,
	`{"notifications":[]}`,
	`{"notifications":null}`,
	`null`,
	`{}`,
	`{"notifications":[{}],"notifications":[{},{}]}`,
	`{"notes":[]}`,
	`{"notifications":5}`,
	`[]`,
	`{"notifications":[{}]} x`,
	`{"notifications":[{}]}` + "\n",
	`{"notifications":[{},{"channel":`,
	`{"notifications":[{"data":{"a":[1,{"b":null}]},"to":{"push":{"token":"t"}}}]}`,
}

// DecodeBatch decodes what decoding the batch and then each notification
// decoded, in one pass; it refuses data after the object, which the two
// passes ignored.
func TestDecodeBatch(t *testing.T) {
	for _, s := range batchSeeds {
		checkDecodeBatch(t, []byte(s))
	}
	items, err := DecodeBatch([]byte(batchSeeds[0]))
	if err != nil || len(items) != 6 {
		t.Fatalf("%v %d", err, len(items))
	}
	var ie *InvalidError
	for i, field := range []string{"", "priority", "colour", "", "(document)", "fax"} {
		if field == "" {
			if items[i].Err != nil {
				t.Fatalf("item %d: %v", i, items[i].Err)
			}
			continue
		}
		if !errors.As(items[i].Err, &ie) || !strings.HasSuffix(ie.Field, field) {
			t.Fatalf("item %d: %v, want an error naming %s", i, items[i].Err, field)
		}
	}
	if items, err := DecodeBatch([]byte(`{"notifications":[{}],"notifications":[{},{}]}`)); err != nil || len(items) != 2 {
		t.Fatalf("repeated key: %v %d, want the last list", err, len(items))
	}
	for _, bad := range []string{`{"notes":[]}`, `{"notifications":5}`, `[]`, `{"notifications":[{}]} x`, `{"notifications":[{},{"channel":`} {
		if _, err := DecodeBatch([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%s: %v, want ErrMalformed", bad, err)
		}
	}
}

func FuzzDecodeBatch(f *testing.F) {
	for _, s := range batchSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkDecodeBatch(t, data) })
}

package notify

import (
	"bytes"
	"encoding/json"
	"testing"
)

// encodeSeeds are notification documents with every field, empty and
// odd values: strings that encoding/json escapes (HTML characters, control
// characters, U+2028, invalid UTF-8), free-form data and push values.
var encodeSeeds = []string{
	`{}`,
	`{"channel":"webhook","to":{"webhook":"https://h.example/x?a=1&b=<2>"},"content":{"text":"hi"}}`,
	`{"channels":["webhook","email"],"to":{"email":"a@example.com","phone":"+821012345678","webhook":"https://x"},` +
		`"template":"otp","locale":"ko","data":{"code":"1234","n":1.5,"list":[1,"<a>"],"m":{"z":null,"a":true}},` +
		`"priority":0,"class":"advertising","send_at":"2026-01-02T03:04:05Z","expires_at":"2026-01-02T03:04:05+09:00",` +
		`"tenant":"t\u2028","tags":["a","\u0001b\"\\"],"idempotency_key":"k\ud800"}`,
	`{"channel":"push","to":{"push":{ "token" : "abc",  "data":{"k":"<v>"} }},"content":{"subject":"s","html":"<b>&amp;</b>","media":["https://m/1"]}}`,
	`{"channel":"sms","to":{"phone":"+1"},"priority":9,"content":{},"channels":[],"tags":[],"data":{}}`,
	"{\"channel\":\"e\xffmail\",\"content\":{\"text\":\"\\u0000\\t\\n\\r\\b\\f\x7f\"}}",
}

func checkAppendJSON(t *testing.T, doc []byte) {
	t.Helper()
	var n Notification
	if json.Unmarshal(doc, &n) != nil {
		return
	}
	want, werr := json.Marshal(&n)
	got, gerr := n.AppendJSON([]byte("prefix"))
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("%s: AppendJSON error %v, json.Marshal error %v", doc, gerr, werr)
	}
	if werr != nil {
		return
	}
	if !bytes.HasPrefix(got, []byte("prefix")) || !bytes.Equal(got[len("prefix"):], want) {
		t.Fatalf("%s:\nAppendJSON   %s\njson.Marshal %s", doc, got, want)
	}
}

// AppendJSON writes what json.Marshal writes, byte for byte.
func TestAppendJSONMatchesMarshal(t *testing.T) {
	for _, doc := range encodeSeeds {
		var n Notification
		if err := json.Unmarshal([]byte(doc), &n); err != nil {
			t.Fatalf("seed %s: %v", doc, err)
		}
		checkAppendJSON(t, []byte(doc))
	}
}

func FuzzAppendJSON(f *testing.F) {
	for _, doc := range encodeSeeds {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, doc []byte) { checkAppendJSON(t, doc) })
}

func BenchmarkAppendJSON(b *testing.B) {
	var n Notification
	json.Unmarshal([]byte(encodeSeeds[1]), &n)
	b.Run("AppendJSON", func(b *testing.B) {
		buf := make([]byte, 0, 512)
		for b.Loop() {
			buf, _ = n.AppendJSON(buf[:0])
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		for b.Loop() {
			json.Marshal(&n)
		}
	})
}

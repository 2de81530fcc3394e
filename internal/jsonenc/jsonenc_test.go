package jsonenc

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
)

func TestStringMatchesEncodingJSON(t *testing.T) {
	cases := []string{"", "plain", `quote " and \ backslash`, "<b>&amp;</b>", "tab\tnew\nline\rcr\bbs\fff",
		"\x00\x01\x1f\x7f", "한국어 텍스트", "emoji 🎉", "\u2028 and \u2029", "bad \xff utf-8 \xc3", "\xe2\x80"}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := make([]byte, rng.IntN(24))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := String(nil, s); string(got) != string(want) {
			t.Fatalf("String(%q) = %s, encoding/json %s", s, got, want)
		}
	}
	for _, ss := range [][]string{nil, {}, {"a"}, {"a", "<b>"}} {
		want, _ := json.Marshal(ss)
		if got := Strings(nil, ss); string(got) != string(want) {
			t.Fatalf("Strings(%q) = %s, encoding/json %s", ss, got, want)
		}
	}
}

func TestTimeMatchesEncodingJSON(t *testing.T) {
	seoul := time.FixedZone("KST", 9*3600)
	for _, tm := range []time.Time{{}, time.Unix(1700000000, 123456789).UTC(), time.Unix(1700000000, 0).In(seoul),
		time.Date(2026, 12, 5, 21, 0, 0, 500, time.UTC)} {
		want, err := json.Marshal(tm)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := Time(nil, tm); !ok || string(got) != string(want) {
			t.Fatalf("Time(%v) = %s, %v; encoding/json %s", tm, got, ok, want)
		}
	}
	for _, tm := range []time.Time{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if _, err := json.Marshal(tm); err == nil {
			t.Fatalf("encoding/json took %v", tm)
		}
		if got, ok := Time(nil, tm); ok || len(got) != 0 {
			t.Fatalf("Time(%v) = %s, %v; want refused", tm, got, ok)
		}
	}
}

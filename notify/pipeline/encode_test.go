package pipeline

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/unifiedms/ums/notify"
)

// The job and webhook encoders write what json.Marshal writes.
func TestEncodersMatchMarshal(t *testing.T) {
	prio := 9
	n := &notify.Notification{Channels: []string{"webhook", "email"}, To: notify.Recipient{Email: "a@example.com",
		Webhook: "https://h.example/?a=<1>&b"}, Data: map[string]any{"x": []any{1.0, "y"}}, Priority: &prio,
		Content: &notify.Content{Subject: "s\u2028", HTML: "<p>"}, Tags: []string{"t"}, Tenant: "acme"}
	seoul := time.FixedZone("KST", 9*3600)
	for _, j := range []*job{
		{ID: "01", N: n, Channels: []string{"webhook", "email"}, Accepted: time.Unix(1700000000, 123456789).UTC()},
		{ID: "02", N: n, Channels: []string{"email"}, CI: 0, Attempt: 3, Hops: 4, Step: 7, LastError: "550 <no>",
			Accepted: time.Unix(1700000000, 0).In(seoul), ExpiresAt: time.Unix(1800000000, 5).In(seoul)},
		{ID: "03", N: nil, Channels: nil},
	} {
		want, err := json.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		got, err := j.appendJSON(nil)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("job %s:\nappendJSON   %s (%v)\njson.Marshal %s", j.ID, got, err, want)
		}
		w := webhookBody{ID: j.ID, Attempt: j.Attempt, Notification: j.N}
		if j.N != nil {
			w.Content = *j.N.Content
		}
		want, _ = json.Marshal(w)
		if got, err = w.appendJSON(nil); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("webhook body %s:\nappendJSON   %s (%v)\njson.Marshal %s", j.ID, got, err, want)
		}
	}
	// A time JSON cannot hold fails as json.Marshal fails.
	bad := &job{ID: "04", N: n, Channels: []string{"email"}, Accepted: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	if _, err := json.Marshal(bad); err == nil {
		t.Fatal("json.Marshal took year 10000")
	}
	if _, err := bad.appendJSON(nil); err == nil {
		t.Fatal("appendJSON took year 10000")
	}
}

// jobSeeds are job bodies, good and bad, for the job decoder.
var jobSeeds = []string{
	`{"id":"01","notification":{"channel":"webhook","to":{"webhook":"https://x"},"content":{"text":"a"}},"channels":["webhook"],"channel_index":0,"attempt":1,"accepted_at":"2026-01-02T03:04:05Z","step":1}`,
	`{"id":"02","notification":{"channels":["email","webhook"],"to":{"email":"a@example.com"},"data":{"n":[1,{"x":null}]}},"channels":["email","webhook"],"channel_index":1,"attempt":0,"accepted_at":"2026-01-02T03:04:05+09:00","hops":3,"step":4}` + "\n",
	`{"id":"03"} {"id":"04"}`,
	`{"id":"05","attempt":"x"}`,
	`{"id":"06","notification":{`,
	`{"id":"07"}]`,
	``,
	`null`,
	`{"id":"08","channels":["sms"]}`,
	`{"id":"09","notification":{"to":{"push":{"token":"t","data":{"a":"b"}},"phone":"+821012345678"},"template":"otp","data":{"code":"123456"},"priority":9,"tags":["a","b"],"content":{"subject":"s","text":"t","html":"<p>","media":["https://m/1"]}},"channels":["push"],"channel_index":0,"attempt":2,"accepted_at":"2026-01-02T03:04:05.123456789Z","expires_at":"2027-01-02T03:04:05Z","last_error":"503","step":3}`,
	`{"id":"10\u00e9\n","notification":{"content":{"text":"caf\u00e9 \"q\" \ud83d\ude00","subject":"\u2028"}},"last_error":"\/"}`,
	"{\"id\":\"11\xff\xfe\",\"last_error\":\"\xe2\x82\"}",
	`{"id":"12","id":"13"}`,
	`{"ID":"14","Step":2}`,
	`{"id":null,"notification":null,"channels":null,"step":null}`,
	`{"id":"15","notification":{"to":{"push":null},"data":null,"content":null,"priority":null}}`,
	`{"id":"16","step":1.0,"attempt":1e2,"hops":-0,"channel_index":01}`,
	`{"id":"17","accepted_at":"2026-13-02T03:04:05Z"}`,
	`{"id":"18","accepted_at":"2026\u002d01-02T03:04:05Z"}`,
	`{"id":"19","notification":{"to":{"push":[1,2,{"x":tru}]}}}`,
	`{"id":"20","notification":{"data":{"x":[1,2,3]},"to":{"push":"tok"}},"channels":[]}`,
	` {"id" : "21" , "channels" : [ "a" , "b" ] , "step" : 7 } `,
	`{"id":"22","step":99999999999999999999}`,
	`{"id":"23","last_error":"tab\there","notification":{"tenant":"ctl\u0001"}}`,
}

// Jobs as the pipeline writes them take the parser's way, not
// json.Unmarshal's, and come out as json.Unmarshal would have them.
func TestParseJobTakesEncodedJobs(t *testing.T) {
	prio := 0
	seoul := time.FixedZone("KST", 9*3600)
	for _, j := range []*job{
		{ID: "01", N: &notify.Notification{Channel: "webhook", To: notify.Recipient{Webhook: "https://h.example/?a=<1>&b"},
			Content: &notify.Content{Text: "hello \"there\" caf\u00e9 \u2028"}}, Channels: []string{"webhook"},
			Accepted: time.Unix(1700000000, 123456789).UTC(), Step: 1},
		{ID: "02", N: &notify.Notification{Channels: []string{"push", "sms"}, To: notify.Recipient{Phone: "+821012345678",
			Push: json.RawMessage(`{"token":"abc","apns":{"x":[1,2.5,true,null]}}`)}, Template: "otp", Locale: "ko",
			Data: map[string]any{"code": "123456", "n": 3.0, "list": []any{"a", nil}}, Priority: &prio, Class: "critical",
			SendAt: "2026-01-02T03:04:05Z", ExpiresAt: "2026-01-03T03:04:05Z", Tenant: "acme", Tags: []string{"a", "b"},
			IdempotencyKey: "order-1"}, Channels: []string{"push", "sms"}, CI: 1, Attempt: 4, Hops: 5,
			Accepted: time.Unix(1700000000, 0).In(seoul), ExpiresAt: time.Unix(1800000000, 5).In(seoul),
			LastError: "550 <no>\n", Step: 9},
		{ID: "03", N: &notify.Notification{Channel: "sms", To: notify.Recipient{Phone: "+1"},
			Content: &notify.Content{Text: "x", Media: []string{"https://m.example/1.png"}}, Tags: []string{}},
			Channels: []string{"sms"}, Accepted: time.Unix(0, 0).UTC()},
	} {
		body, err := j.appendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		var got, want job
		if !parseJob(body, &got) {
			t.Fatalf("job %s not parsed: %s", j.ID, body)
		}
		if err := json.Unmarshal(body, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("job %s:\nparsed         %+v\njson.Unmarshal %+v", j.ID, got, want)
		}
	}
}

// decodeAlike checks that decoding a, then b, through one jobDecoder gives
// what json.Unmarshal gives for each.
func decodeAlike(t *testing.T, bodies ...[]byte) {
	t.Helper()
	var d jobDecoder
	for _, body := range bodies {
		var got, want job
		gerr := d.decode(body, &got)
		werr := json.Unmarshal(body, &want)
		if (gerr == nil) != (werr == nil) || (gerr != nil && gerr.Error() != werr.Error()) {
			t.Fatalf("%q: error %v, json.Unmarshal %v", body, gerr, werr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\ndecoded      %+v\njson.Unmarshal %+v", body, got, want)
		}
	}
}

// The job decoder decodes and refuses what json.Unmarshal does, and a bad
// body does not spoil the next.
func TestJobDecoderMatchesUnmarshal(t *testing.T) {
	var all [][]byte
	for _, s := range jobSeeds {
		all = append(all, []byte(s))
	}
	decodeAlike(t, all...)
	for _, a := range all {
		for _, b := range all {
			decodeAlike(t, a, b, a)
		}
	}
	big := []byte(`{"id":"big","last_error":"` + strings.Repeat("x", maxStreamedJob) + `"}`)
	decodeAlike(t, all[0], big, all[0])
}

func FuzzJobDecoder(f *testing.F) {
	for _, a := range jobSeeds {
		f.Add([]byte(a), []byte(jobSeeds[0]))
	}
	f.Fuzz(func(t *testing.T, a, b []byte) { decodeAlike(t, a, b, a) })
}

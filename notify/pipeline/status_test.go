package pipeline

import (
	"fmt"
	"testing"
	"time"

	"github.com/unifiedms/ums/notify"
)

// The store keeps about the configured number of the newest records,
// lists them newest first with filters, and forgets evicted ones with
// their provider ids.
func TestStatusStoreKeepsTheNewest(t *testing.T) {
	st := newStatusStore(64)
	t0 := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	for i := range 1000 {
		j := &job{ID: fmt.Sprintf("n%04d", i), N: &notify.Notification{Tenant: []string{"a", "b"}[i%2]},
			Channels: []string{"email"}, Accepted: t0.Add(time.Duration(i) * time.Second)}
		st.create(j, "/", notify.StatusQueued, j.Accepted)
		st.update(j.ID, notify.StatusSent, "email", "", j.Accepted, &Attempt{Provider: "smtp", ProviderID: j.ID})
	}
	all := st.list(Filter{Limit: 10000})
	if len(all) < 32 || len(all) > 64 {
		t.Fatalf("%d records kept, want about 64", len(all))
	}
	for i := 1; i < len(all); i++ {
		if !all[i-1].CreatedAt.After(all[i].CreatedAt) {
			t.Fatalf("not newest first at %d: %v then %v", i, all[i-1].CreatedAt, all[i].CreatedAt)
		}
	}
	if all[0].ID != "n0999" {
		t.Fatalf("newest is %s", all[0].ID)
	}
	if _, ok := st.get("n0000"); ok {
		t.Fatal("the oldest record was kept")
	}
	if _, ok := st.byProviderID("smtp", "n0000"); ok {
		t.Fatal("an evicted record is still found by its provider id")
	}
	if r, ok := st.byProviderID("smtp", "n0999"); !ok || r.Status != notify.StatusSent {
		t.Fatalf("by provider id: %+v %v", r, ok)
	}
	for _, r := range st.list(Filter{Tenant: "a", Limit: 5}) {
		if r.Tenant != "a" {
			t.Fatalf("filter by tenant returned %+v", r)
		}
	}
	if n := len(st.list(Filter{Tenant: "a", Limit: 5})); n != 5 {
		t.Fatalf("limit 5 returned %d", n)
	}
}

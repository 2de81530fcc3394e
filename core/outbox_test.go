package core

import (
	"bytes"
	"net"
	"sync"
	"testing"
)

// drainOutbox takes and "writes" everything queued, as an adapter's writer
// does, and returns the bytes in order.
func drainOutbox(o *Outbox) []byte {
	bufs, _ := o.Take(nil)
	var out bytes.Buffer
	bufs.WriteTo(&out)
	o.Written()
	return out.Bytes()
}

// TestOutboxOrder: frames appended from several goroutines come out whole
// and in the order each goroutine appended them, with bodies queued by
// reference in their place.
func TestOutboxOrder(t *testing.T) {
	o := NewOutbox(0, nil)
	big := bytes.Repeat([]byte{'x'}, 20<<10)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				b := o.Lock()
				b = append(b, '<', byte('a'+g), byte(i>>8), byte(i))
				if i%50 == 0 {
					b = o.AppendRef(b, big)
				}
				o.Unlock(append(b, '>'))
			}
		})
	}
	var got []byte
	done := make(chan struct{})
	go func() {
		defer close(done)
		for len(got) < 4*(500*5+10*len(big)) {
			<-o.Wake()
			got = append(got, drainOutbox(o)...)
		}
	}()
	wg.Wait()
	<-done
	next := map[byte]int{}
	for len(got) > 0 {
		if got[0] != '<' {
			t.Fatalf("frame starts with %q", got[0])
		}
		g, i := got[1], int(got[2])<<8|int(got[3])
		if i != next[g] {
			t.Fatalf("goroutine %c: frame %d after %d", g, i, next[g]-1)
		}
		next[g]++
		got = got[4:]
		if i%50 == 0 {
			if !bytes.Equal(got[:len(big)], big) {
				t.Fatalf("goroutine %c frame %d: body not in place", g, i)
			}
			got = got[len(big):]
		}
		if got[0] != '>' {
			t.Fatalf("goroutine %c frame %d: ends with %q", g, i, got[0])
		}
		got = got[1:]
	}
	if o.Size() != 0 {
		t.Fatalf("size after draining: %d", o.Size())
	}
}

// TestOutboxFlowControl: Ready says no at the limit and keeps saying no
// until the writer has brought the outbox under half the limit, when
// Written calls Kick exactly once; Over reports more than the limit.
func TestOutboxFlowControl(t *testing.T) {
	kicks := 0
	o := NewOutbox(1000, func() { kicks++ })
	add := func(n int) {
		b := o.Lock()
		o.Unlock(append(b, make([]byte, n)...))
	}
	add(600)
	if !o.Ready() || o.Over() {
		t.Fatal("600 of 1000 bytes: want ready and not over")
	}
	add(400)
	if o.Ready() {
		t.Fatal("1000 of 1000 bytes: Ready said yes")
	}
	add(1)
	if !o.Over() {
		t.Fatal("1001 of 1000 bytes: Over said no")
	}
	bufs, n := o.Take(nil)
	if n != 1001 || len(bufs) == 0 {
		t.Fatalf("Take: %d bytes in %d buffers, want 1001", n, len(bufs))
	}
	if o.Over() {
		t.Fatal("Over after Take")
	}
	add(600) // appended while the batch is being written
	o.Written()
	if kicks != 0 || o.Ready() {
		t.Fatalf("600 bytes left (over half the limit): kicks %d, ready %v; want 0 and not ready", kicks, o.Ready())
	}
	drainOutbox(o)
	if kicks != 1 {
		t.Fatalf("kicks after draining: %d, want 1", kicks)
	}
	if !o.Ready() {
		t.Fatal("not ready after draining")
	}
	drainOutbox(o)
	if kicks != 1 {
		t.Fatalf("kicked again without being held: %d", kicks)
	}
}

// TestOutboxReuse: written buffers are reused instead of allocated again.
func TestOutboxReuse(t *testing.T) {
	o := NewOutbox(0, nil)
	var bufs net.Buffers
	allocs := testing.AllocsPerRun(100, func() {
		b := o.Lock()
		o.Unlock(append(b, "frame"...))
		bufs, _ = o.Take(bufs[:0])
		clear(bufs)
		o.Written()
	})
	if allocs > 0 {
		t.Fatalf("%.1f allocations per frame, want 0", allocs)
	}
}

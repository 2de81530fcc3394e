package store

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAppendSync measures durable appends on the real file system:
// each writer appends a record and waits for its done before the next, as
// a publisher waiting for confirms one at a time would. records/s is the
// total rate, fsyncs/op shows the group commit (1 = no batching), and the
// latency percentiles are from Append to done.
func BenchmarkAppendSync(b *testing.B) {
	for _, size := range []int{16, 1024} {
		for _, writers := range []int{1, 16, 256} {
			b.Run(fmt.Sprintf("size=%d/writers=%d", size, writers), func(b *testing.B) {
				benchAppend(b, size, writers, Options{})
			})
		}
	}
}

// BenchmarkSyncWindow compares group-commit windows (see Options.SyncWindow
// and the package documentation for the choice of the default).
func BenchmarkSyncWindow(b *testing.B) {
	for _, window := range []time.Duration{0, 100 * time.Microsecond, time.Millisecond} {
		for _, writers := range []int{1, 16, 256} {
			b.Run(fmt.Sprintf("window=%v/writers=%d", window, writers), func(b *testing.B) {
				benchAppend(b, 1024, writers, Options{SyncWindow: window})
			})
		}
	}
}

func benchAppend(b *testing.B, size, writers int, o Options) {
	o.Logger = quiet
	l, _, err := OpenLog(OS(), b.TempDir(), o)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	data := make([]byte, size)
	lat := make([][]time.Duration, writers)
	for w := range lat {
		lat[w] = make([]time.Duration, 0, b.N/writers+1)
	}
	syncs := l.Stats().Syncs
	var next atomic.Int64
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			ch := make(chan error, 1)
			done := func(err error) { ch <- err }
			for next.Add(1) <= int64(b.N) {
				start := time.Now()
				l.Append(data, 1, done)
				if err := <-ch; err != nil {
					b.Error(err)
					return
				}
				lat[w] = append(lat[w], time.Since(start))
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(l.Stats().Syncs-syncs)/float64(b.N), "fsyncs/op")
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
	}
}

// BenchmarkRecovery measures OpenLog plus Replay of a log of 1,000,000 (-short: 10,000)
// records of 64 bytes with 1 to 100 parts (every tenth record with a part
// released) on the real file system.
func BenchmarkRecovery(b *testing.B) {
	n, name := 1_000_000, "records=1M"
	if testing.Short() {
		n, name = 10_000, "records=10k"
		b.Logf("-short: %d records instead of 1,000,000", n)
	}
	dir := b.TempDir()
	l, _, err := OpenLog(OS(), dir, Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 64)
	for i := range n {
		id := l.Append(data, 1+i%100, nil)
		if i%10 == 0 {
			l.Release(id, 0)
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	b.Run(name, func(b *testing.B) {
		b.ReportAllocs()
		var disk int64
		for b.Loop() {
			l, rep, err := OpenLog(OS(), dir, Options{Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			count := 0
			err = l.Replay(func(id uint64, live []int, data []byte) error {
				count++
				return nil
			})
			if err != nil || count != n-n/100 || rep.LiveRecords != count {
				b.Fatalf("replayed %d, report %+v, err %v", count, rep, err)
			}
			disk = l.Stats().DiskBytes
			l.Close()
		}
		b.SetBytes(disk)
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
}

// BenchmarkDiskBytes reports the disk bytes per record (frame and header
// overhead included), and the bytes of a release.
func BenchmarkDiskBytes(b *testing.B) {
	for _, size := range []int{16, 64, 1024} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			l, _ := mustOpen(b, NewMemFS(), "/l", Options{SegmentSize: 1 << 30})
			defer l.Close()
			data := make([]byte, size)
			base := l.Stats().DiskBytes
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				l.Append(data, 1, nil)
			}
			if err := barrier(b, l); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(l.Stats().DiskBytes-base)/float64(b.N), "disk-B/record")
		})
	}
	b.Run("release", func(b *testing.B) {
		l, _ := mustOpen(b, NewMemFS(), "/l", Options{SegmentSize: 1 << 30})
		defer l.Close()
		var ids []uint64
		for range b.N {
			ids = append(ids, l.Append(nil, 2, nil))
		}
		if err := barrier(b, l); err != nil {
			b.Fatal(err)
		}
		base := l.Stats().DiskBytes
		b.ResetTimer()
		for _, id := range ids {
			l.Release(id, 0)
		}
		if err := barrier(b, l); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(l.Stats().DiskBytes-base)/float64(b.N), "disk-B/release")
	})
}

// BenchmarkStreaming measures a writer that does not wait for each done
// (a publisher with many confirms outstanding), for several backpressure
// limits (Options.MaxPendingBytes).
func BenchmarkStreaming(b *testing.B) {
	for _, limit := range []int64{1 << 20, 4 << 20, 16 << 20, 64 << 20} {
		b.Run(fmt.Sprintf("pending=%dMiB", limit>>20), func(b *testing.B) {
			l, _, err := OpenLog(OS(), b.TempDir(), Options{Logger: quiet, MaxPendingBytes: limit})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			data := make([]byte, 1024)
			var failed atomic.Int64
			done := func(err error) {
				if err != nil {
					failed.Add(1)
				}
			}
			syncs := l.Stats().Syncs
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				l.Append(data, 1, done)
			}
			if err := barrier(b, l); err != nil || failed.Load() != 0 { // timed: count until durable
				b.Fatal(err, failed.Load())
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(l.Stats().Syncs-syncs)/float64(b.N), "fsyncs/op")
		})
	}
}

package broker

import (
	"bufio"
	"fmt"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// watchResources raises the core's memory and disk alarms when usage
// crosses the configured watermarks, and clears them when it falls back.
func (b *Broker) watchResources(stop <-chan struct{}) {
	memLimit := memoryLimit(b.cfg.MemoryHighWatermark)
	setMemoryLimit(memLimit)
	samples := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	rec := newReclaimer()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		rec.check(time.Now())
		if memLimit > 0 {
			// What the kernel sees (RSS: the heap, stacks, the runtime's
			// own memory and anything mapped outside Go), or the runtime's
			// count where /proc cannot be read.
			used := processRSS()
			if used == 0 {
				metrics.Read(samples)
				used = samples[0].Value.Uint64() - samples[1].Value.Uint64()
			}
			b.Core.SetAlarm("memory", fmt.Sprintf("resident memory %d bytes above the high watermark %d", used, memLimit), used > memLimit)
		}
		if limit := b.cfg.DiskFreeLimit; limit > 0 {
			var fs syscall.Statfs_t
			if err := syscall.Statfs(b.cfg.DataDir, &fs); err == nil {
				free := int64(fs.Bavail) * int64(fs.Bsize)
				b.Core.SetAlarm("disk", fmt.Sprintf("free disk %d bytes below the limit %d", free, limit), free < limit)
			}
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

// memoryLimit is the memory use above which the memory alarm is raised:
// fraction of the machine's memory; 0 when off or unknown.
func memoryLimit(fraction float64) uint64 {
	if fraction <= 0 {
		return 0
	}
	return uint64(float64(totalMemory()) * fraction)
}

// totalMemory reads MemTotal from /proc/meminfo; 0 when unknown.
func totalMemory() uint64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseUint(fields[1], 10, 64)
			if err == nil {
				return kb * 1024
			}
		}
	}
	return 0
}

package main

import (
	"bufio"
	"context"
	"math"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"
)

// memSample is the process's memory at one moment.
type memSample struct {
	HeapObjects uint64 // bytes in live and not yet collected heap objects
	HeapLive    uint64 // heap marked live by the last GC
	RSS         uint64
	Goroutines  int
}

func sampleMem() memSample {
	ms := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/gc/heap/live:bytes"},
	}
	metrics.Read(ms)
	s := memSample{Goroutines: runtime.NumGoroutine()}
	if ms[0].Value.Kind() == metrics.KindUint64 {
		s.HeapObjects = ms[0].Value.Uint64()
	}
	if ms[1].Value.Kind() == metrics.KindUint64 {
		s.HeapLive = ms[1].Value.Uint64()
	}
	s.RSS, _ = procStatus("VmRSS")
	return s
}

// procStatus reads a kB figure of /proc/self/status, in bytes.
func procStatus(field string) (uint64, bool) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != field {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, false
		}
		return kb << 10, true
	}
	return 0, false
}

// sampler keeps the peaks of the process's memory while it runs.
type sampler struct {
	mu   sync.Mutex
	peak memSample
	last memSample
}

func (s *sampler) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		s.take()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *sampler) take() memSample {
	m := sampleMem()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = m
	s.peak.HeapObjects = max(s.peak.HeapObjects, m.HeapObjects)
	s.peak.HeapLive = max(s.peak.HeapLive, m.HeapLive)
	s.peak.RSS = max(s.peak.RSS, m.RSS)
	s.peak.Goroutines = max(s.peak.Goroutines, m.Goroutines)
	return m
}

func (s *sampler) peaks() memSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// heapShares splits the live heap between the simulation (this program
// and the fake runtime) and everything else (store, etcd, server), by the
// first frame of each sampled allocation outside the standard library.
// It is an estimate: the heap profile samples one allocation every 512 KiB
// and is scaled up, as pprof does.
func heapShares() (sim, server uint64) {
	runtime.GC()
	runtime.GC() // the profile reflects the last completed cycle
	var recs []runtime.MemProfileRecord
	n, _ := runtime.MemProfile(nil, false)
	for {
		recs = make([]runtime.MemProfileRecord, n+50)
		var ok bool
		n, ok = runtime.MemProfile(recs, false)
		if ok {
			recs = recs[:n]
			break
		}
	}
	rate := float64(runtime.MemProfileRate)
	for _, r := range recs {
		inuse := r.InUseBytes()
		if inuse <= 0 || r.AllocObjects == 0 {
			continue
		}
		avg := float64(r.AllocBytes) / float64(r.AllocObjects)
		scaled := uint64(float64(inuse) / (1 - math.Exp(-avg/rate)))
		if simFrame(r.Stack()) {
			sim += scaled
		} else {
			server += scaled
		}
	}
	return sim, server
}

// simFrame reports whether the first frame outside the standard library
// belongs to the simulation.
func simFrame(stack []uintptr) bool {
	frames := runtime.CallersFrames(stack)
	for {
		fr, more := frames.Next()
		fn := fr.Function
		// Type arguments of generic functions may hold other packages'
		// paths: only the function's own name counts.
		pkg, _, _ := strings.Cut(fn, "[")
		if i := strings.LastIndex(pkg, "/"); i >= 0 {
			pkg = pkg[:i+strings.IndexByte(pkg[i:], '.')]
		} else if j := strings.IndexByte(pkg, '.'); j >= 0 {
			pkg = pkg[:j]
		}
		first, _, _ := strings.Cut(pkg, "/")
		switch {
		case pkg == "main", strings.HasPrefix(fn, "github.com/drover-org/drover/test/bench/sim."):
			// The second form is this package's name in its test binary.
			return true
		case strings.HasPrefix(fn, "github.com/drover-org/drover/internal/runtime/fake."):
			return true
		case strings.Contains(first, "."):
			return false // a module outside the standard library
		}
		if !more {
			return false
		}
	}
}

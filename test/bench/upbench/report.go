package main

import (
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"
	"time"
)

// result holds every measurement of one N.
type result struct {
	n          int
	drover     []time.Duration
	droverDown []time.Duration
	ctr        []time.Duration
	clientSeq  []time.Duration
	clientConc []time.Duration
	breakdown  *breakdown
	load       []float64 // 1-minute load average at the start of each run
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func minimum(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	m := ds[0]
	for _, d := range ds[1:] {
		m = min(m, d)
	}
	return m
}

func secs(d time.Duration) string { return fmt.Sprintf("%.3f s", d.Seconds()) }

func ratio(a, b time.Duration) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", float64(a)/float64(b))
}

func all(ds []time.Duration) string {
	var parts []string
	for _, d := range ds {
		parts = append(parts, fmt.Sprintf("%.3f", d.Seconds()))
	}
	return strings.Join(parts, " ")
}

func loads(ls []float64) string {
	var parts []string
	for _, l := range ls {
		parts = append(parts, fmt.Sprintf("%.2f", l))
	}
	return strings.Join(parts, " ")
}

// printResult prints the table of one N.
func printResult(w io.Writer, r result) {
	fmt.Fprintf(w, "\nN = %d replicas, %d runs\n", r.n, len(r.drover))
	fmt.Fprintf(w, "  host load average (1 min) at the start of each run: %s (%d CPUs)\n", loads(r.load), runtime.NumCPU())
	fmt.Fprintf(w, "  %-40s %10s %10s   %s\n", "method", "median", "min", "all runs (s)")
	rows := []struct {
		name string
		ds   []time.Duration
	}{
		{"drover up -d (CLI wall time)", r.drover},
		{"ctr run -d, N sequential invocations", r.ctr},
		{"containerd Go client, sequential", r.clientSeq},
		{"containerd Go client, N goroutines", r.clientConc},
		{"(drover down, for reference)", r.droverDown},
	}
	for _, row := range rows {
		fmt.Fprintf(w, "  %-40s %10s %10s   %s\n", row.name, secs(median(row.ds)), secs(minimum(row.ds)), all(row.ds))
	}
	fmt.Fprintf(w, "  %-40s %10s %10s\n", "drover / ctr", ratio(median(r.drover), median(r.ctr)), ratio(minimum(r.drover), minimum(r.ctr)))
	fmt.Fprintf(w, "  %-40s %10s %10s\n", "drover / Go client concurrent", ratio(median(r.drover), median(r.clientConc)),
		ratio(minimum(r.drover), minimum(r.clientConc)))
	if r.breakdown != nil {
		fmt.Fprintf(w, "\n%s\n%s", r.breakdown.summary, r.breakdown.timeline)
	}
}

// printSummary prints one Markdown table of the medians (and minimums) of
// every N, ready for docs/benchmarks.md.
func printSummary(w io.Writer, rs []result, runs int) {
	fmt.Fprintf(w, "\nSummary: median (min) of %d runs, seconds\n\n", runs)
	fmt.Fprintln(w, "| N | drover up -d | ctr run -d (seq.) | Go client seq. | Go client conc. | drover/ctr | drover/client conc. |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|")
	cell := func(ds []time.Duration) string {
		return fmt.Sprintf("%.2f (%.2f)", median(ds).Seconds(), minimum(ds).Seconds())
	}
	for _, r := range rs {
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %s |\n", r.n, cell(r.drover), cell(r.ctr), cell(r.clientSeq), cell(r.clientConc),
			ratio(median(r.drover), median(r.ctr)), ratio(median(r.drover), median(r.clientConc)))
	}
}

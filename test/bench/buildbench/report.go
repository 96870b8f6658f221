package main

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"time"
)

// results holds every measurement of one benchmark run.
type results struct {
	services int
	loads    []string // load averages (1, 5, 15 min) at the start of each run
	loadEnd  string

	droverCold, ctlCold, ctlColdLoad       []time.Duration
	droverCached, ctlCached, ctlCachedLoad []time.Duration
	up                                     map[string][]upTimes // by upSide.key
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func minimum(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return slices.Min(ds)
}

// sum adds two series run by run.
func sum(a, b []time.Duration) []time.Duration {
	out := make([]time.Duration, min(len(a), len(b)))
	for i := range out {
		out[i] = a[i] + b[i]
	}
	return out
}

func part(ts []upTimes, f func(upTimes) time.Duration) []time.Duration {
	out := make([]time.Duration, len(ts))
	for i, t := range ts {
		out[i] = f(t)
	}
	return out
}

func totals(ts []upTimes) []time.Duration {
	return part(ts, func(t upTimes) time.Duration { return t.total })
}

func ratio(a, b time.Duration) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", float64(a)/float64(b))
}

// cell is "median (min)" in seconds.
func cell(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f (%.2f)", median(ds).Seconds(), minimum(ds).Seconds())
}

func all(ds []time.Duration) string {
	var parts []string
	for _, d := range ds {
		parts = append(parts, fmt.Sprintf("%.2f", d.Seconds()))
	}
	return strings.Join(parts, " ")
}

func upName(s upSide) string {
	switch s.key {
	case sideDrover.key:
		return "drover up -d --build"
	case sideHand.key:
		return "by hand, same end state"
	default:
		return "by hand, this host only"
	}
}

// printRuns prints every measurement, run by run.
func printRuns(w io.Writer, r *results) {
	fmt.Fprintf(w, "\nEvery run (seconds), %d CPUs; load average (1, 5, 15 min) at the start of each run: %s; after the last: %s\n",
		runtime.NumCPU(), strings.Join(r.loads, " | "), r.loadEnd)
	rows := []struct {
		name string
		ds   []time.Duration
	}{
		{"drover build --no-cache", r.droverCold},
		{"buildctl build --no-cache", r.ctlCold},
		{"  then drover image load of its archive", r.ctlColdLoad},
		{"drover build (cached)", r.droverCached},
		{"buildctl build (cached)", r.ctlCached},
		{"  then drover image load of its archive", r.ctlCachedLoad},
	}
	for _, row := range rows {
		fmt.Fprintf(w, "  %-52s %s\n", row.name, all(row.ds))
	}
	for _, s := range []upSide{sideDrover, sideHand, sideLocal} {
		ts := r.up[s.key]
		fmt.Fprintf(w, "  %-52s %s\n", upName(s)+": total", all(totals(ts)))
		fmt.Fprintf(w, "  %-52s %s\n", "  builds", all(part(ts, func(t upTimes) time.Duration { return t.builds })))
		if s.key == sideHand.key {
			fmt.Fprintf(w, "  %-52s %s\n", "  image loads", all(part(ts, func(t upTimes) time.Duration { return t.loads })))
		}
		fmt.Fprintf(w, "  %-52s %s\n", "  up", all(part(ts, func(t upTimes) time.Duration { return t.up })))
	}
}

// printSummary prints the two Markdown tables for docs/benchmarks.md.
func printSummary(w io.Writer, r *results, runs int) {
	fmt.Fprintf(w, "\nSummary: seconds, median (min) of %d runs; ratios of the medians (of the minimums)\n\n", runs)
	fmt.Fprintln(w, "| 3-stage Dockerfile | `drover build` | `buildctl build` | `buildctl build` + `drover image load` | drover / buildctl | drover / (buildctl + load) |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|")
	row := func(name string, d, c, l []time.Duration) {
		cl := sum(c, l)
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s (%s) | %s (%s) |\n", name, cell(d), cell(c), cell(cl),
			ratio(median(d), median(c)), ratio(minimum(d), minimum(c)),
			ratio(median(d), median(cl)), ratio(minimum(d), minimum(cl)))
	}
	row("cold (`--no-cache`)", r.droverCold, r.ctlCold, r.ctlColdLoad)
	row("cached (unchanged context)", r.droverCached, r.ctlCached, r.ctlCachedLoad)

	fmt.Fprintf(w, "\n| %d services, each context changed | total | builds | image loads | `up` | drover / this |\n", r.services)
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|")
	dr := totals(r.up[sideDrover.key])
	for _, s := range []upSide{sideDrover, sideHand, sideLocal} {
		ts := r.up[s.key]
		loads := "-"
		if s.key == sideHand.key {
			loads = cell(part(ts, func(t upTimes) time.Duration { return t.loads }))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s (%s) |\n", upName(s), cell(totals(ts)),
			cell(part(ts, func(t upTimes) time.Duration { return t.builds })), loads,
			cell(part(ts, func(t upTimes) time.Duration { return t.up })),
			ratio(median(dr), median(totals(ts))), ratio(minimum(dr), minimum(totals(ts))))
	}
}

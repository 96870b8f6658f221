package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/drover-org/drover/api"
	drt "github.com/drover-org/drover/internal/runtime"
	"github.com/drover-org/drover/internal/runtime/containerd"
	"github.com/drover-org/drover/test/harness"
)

// svcTimes is what one service's task went through, as absolute times.
type svcTimes struct {
	name, via string    // via: the dependency whose health released it (latest healthy)
	created   time.Time // event create
	prepared  time.Time // task.json written: agent took it, image ensured
	attached  time.Time // log "attached" (network component): CNI ADD done
	logger    time.Time // container.log created by the shim logger
	started   time.Time // log "container started": the driver's Start returned
	running   time.Time // event start: running status stored
	t0, ready time.Time // inside the container: command began; /tmp/ready made
	probes    []time.Time
	healthy   time.Time // event "health_status: healthy"
	k         int       // probes up to and including the first that passed
}

// detail is one run's breakdown plus the isolated measurements.
type detail struct {
	start, end time.Time
	deployed   time.Time
	svcs       map[string]*svcTimes
	ensure     []time.Duration // EnsureImage of the image, repeated
	exec       []time.Duration // one probe's exec, repeated on a running container
	notes      []string
}

// gather collects the events, server log lines, task files and the
// containers' own files of the run, then times EnsureImage and a probe's
// exec on their own (after the run, on the same containerd).
func (b *bench) gather(ctx context.Context, v variant, tasks []api.Task, start, end time.Time, logOffset int64) *detail {
	d := &detail{start: start, end: end, svcs: map[string]*svcTimes{}}
	ev := map[string]map[string]time.Time{} // task -> action -> first time
	if rc, err := b.srv.Client.Events(ctx, v.project, false); err == nil {
		dec := json.NewDecoder(rc)
		for {
			var e api.Event
			if dec.Decode(&e) != nil {
				break
			}
			if e.Time.Before(start) {
				continue
			}
			if ev[e.ID] == nil {
				ev[e.ID] = map[string]time.Time{}
			}
			if _, seen := ev[e.ID][e.Action]; !seen {
				ev[e.ID][e.Action] = e.Time
			}
		}
		rc.Close()
	} else {
		d.notes = append(d.notes, "events: "+err.Error())
	}
	lg := map[string]map[string]time.Time{} // msg -> task -> first time
	if f, err := os.Open(b.srv.LogPath); err == nil {
		_, _ = f.Seek(logOffset, io.SeekStart)
		raw, _ := io.ReadAll(f)
		f.Close()
		sc := bufio.NewScanner(bytes.NewReader(raw))
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			kv := parseLine(sc.Text())
			ts, err := time.Parse(time.RFC3339Nano, kv["time"])
			if err != nil {
				continue
			}
			msg := kv["msg"]
			if msg == "stack deployed" && kv["stack"] == v.project && d.deployed.IsZero() {
				d.deployed = ts
			}
			if kv["task"] == "" {
				continue
			}
			if msg == "health changed" {
				msg += " " + kv["health"]
			}
			if lg[msg] == nil {
				lg[msg] = map[string]time.Time{}
			}
			if _, seen := lg[msg][kv["task"]]; !seen {
				lg[msg][kv["task"]] = ts
			}
		}
	}
	deps := map[string][]string{}
	for _, s := range services {
		deps[s.name] = s.deps
	}
	var dbID string
	for _, t := range tasks {
		tdir := filepath.Join(b.srv.DataDir, "agent", "tasks", t.ID)
		root := fmt.Sprintf("/proc/%d/root/tmp", t.Status.PID)
		st := &svcTimes{name: t.Service, created: ev[t.ID]["create"], prepared: mtime(filepath.Join(tdir, "task.json")),
			attached: lg["attached"][t.ID], logger: mtime(filepath.Join(tdir, "container.log")),
			started: lg["container started"][t.ID], running: ev[t.ID]["start"], healthy: ev[t.ID]["health_status: healthy"],
			t0: mtime(filepath.Join(root, "t0")), ready: mtime(filepath.Join(root, "ready"))}
		if es, err := os.ReadDir(root); err == nil {
			for _, e := range es {
				if strings.HasPrefix(e.Name(), "probe.") {
					st.probes = append(st.probes, mtime(filepath.Join(root, e.Name())))
				}
			}
		}
		slices.SortFunc(st.probes, func(a, b time.Time) int { return a.Compare(b) })
		for _, p := range st.probes {
			if p.Before(st.healthy) {
				st.k++
			}
		}
		d.svcs[t.Service] = st
		if t.Service == "db" {
			dbID = t.ID
		}
	}
	for _, s := range d.svcs {
		for _, dep := range deps[s.name] {
			if s.via == "" || d.svcs[dep].healthy.After(d.svcs[s.via].healthy) {
				s.via = dep
			}
		}
	}

	// The same containerd, through the driver the agent uses.
	sock := filepath.Join(b.srv.DataDir, "agent", "containerd", "containerd.sock")
	drv, err := containerd.Open(ctx, containerd.Config{Address: sock})
	if err != nil {
		d.notes = append(d.notes, "containerd: "+err.Error())
		return d
	}
	defer drv.Close()
	for i := 0; i < 10; i++ {
		t := time.Now()
		if err := drv.EnsureImage(ctx, harness.Image); err != nil {
			d.notes = append(d.notes, "EnsureImage: "+err.Error())
			break
		}
		d.ensure = append(d.ensure, time.Since(t))
	}
	for i := 0; i < 10 && dbID != ""; i++ {
		var out bytes.Buffer
		t := time.Now()
		code, err := drv.Exec(ctx, dbID, drt.ExecSpec{Cmd: []string{"/bin/sh", "-c", "test -f /tmp/ready"}, Stdout: &out, Stderr: &out})
		if err != nil || code != 0 {
			d.notes = append(d.notes, fmt.Sprintf("exec: code %d, %v %s", code, err, out.String()))
			break
		}
		d.exec = append(d.exec, time.Since(t))
	}
	return d
}

func mtime(p string) time.Time {
	fi, err := os.Stat(p)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// segments of one service, each from the end of the one before.
var segNames = []string{"gate", "cni", "start", "report", "health"}

// segs splits a service's time from its release (its dependency's healthy
// event, or its own creation) to its own healthy event.
func (d *detail) segs(s *svcTimes) []time.Duration {
	release := s.created
	if s.via != "" {
		release = later(release, d.svcs[s.via].healthy)
	}
	return []time.Duration{
		s.prepared.Sub(release), s.attached.Sub(s.prepared), s.started.Sub(s.attached),
		s.running.Sub(s.started), s.healthy.Sub(s.running),
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func (d *detail) ms(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return fmt.Sprintf("%.0f", float64(t.Sub(d.start).Microseconds())/1000)
}

func msd(x time.Duration) string { return fmt.Sprintf("%.0f", float64(x.Microseconds())/1000) }

func (d *detail) print(w io.Writer) {
	fmt.Fprintf(w, "\nBreakdown of the first chain run (ms since `drover up -d --wait` started; it returned at %s; stack deployed at %s)\n\n",
		d.ms(d.end), d.ms(d.deployed))
	fmt.Fprintln(w, "| service | released by | created | prepared | attached | logger | started | running | t0 (in ctr) | ready (in ctr) | probes to healthy | healthy |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, s0 := range services {
		s := d.svcs[s0.name]
		if s == nil {
			continue
		}
		var ps []string
		for _, p := range s.probes[:s.k] {
			ps = append(ps, d.ms(p))
		}
		via := s.via
		if via == "" {
			via = "-"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d (%s) | %s |\n", s.name, via, d.ms(s.created), d.ms(s.prepared),
			d.ms(s.attached), d.ms(s.logger), d.ms(s.started), d.ms(s.running), d.ms(s.t0), d.ms(s.ready), s.k, strings.Join(ps, ", "), d.ms(s.healthy))
	}

	// The critical path: back from the service that got healthy last.
	var last *svcTimes
	for _, s := range d.svcs {
		if last == nil || s.healthy.After(last.healthy) {
			last = s
		}
	}
	var path []*svcTimes
	for s := last; s != nil; {
		path = append([]*svcTimes{s}, path...)
		if s.via == "" {
			break
		}
		s = d.svcs[s.via]
	}
	fmt.Fprintln(w, "\nCritical path (ms; gate = release -> task.json: reconcile, placement, agent long poll, image ensure, status write;")
	fmt.Fprintln(w, "cni = -> attached; start = -> container started; report = -> running stored; health = running -> healthy event,")
	fmt.Fprintf(w, "of which intervals = probes x start_interval %s spent in the prober's timer)\n\n", startInterval)
	fmt.Fprintln(w, "| service | gate | cni | start | report | health | of it: intervals | of it: exec start | of it: probe -> healthy stored | level total |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	tot := make([]time.Duration, len(segNames))
	var totWait, totExec time.Duration
	for _, s := range path {
		sg := d.segs(s)
		wait := time.Duration(s.k) * startInterval
		var sum time.Duration
		for i, x := range sg {
			tot[i] += x
			sum += x
		}
		totWait += wait
		var lastProbe time.Duration // running -> the last probe before healthy ran in the container
		if s.k > 0 {
			lastProbe = s.probes[s.k-1].Sub(s.running)
		}
		totExec += lastProbe - wait
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", s.name, msd(sg[0]), msd(sg[1]), msd(sg[2]), msd(sg[3]),
			msd(sg[4]), msd(wait), msd(lastProbe-wait), msd(sg[4]-lastProbe), msd(sum))
	}
	head := path[0].created.Sub(d.start)
	tail := d.end.Sub(last.healthy)
	var sum time.Duration
	for _, x := range tot {
		sum += x
	}
	fmt.Fprintf(w, "| **path total** | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", msd(tot[0]), msd(tot[1]), msd(tot[2]), msd(tot[3]),
		msd(tot[4]), msd(totWait), msd(totExec), msd(tot[4]-totWait-totExec), msd(sum))
	fmt.Fprintf(w, "\nhead (up started -> %s created): %s ms; tail (last healthy -> up returned, CLI's 200 ms poll): %s ms; head + path + tail = %s ms (wall %s ms)\n",
		path[0].name, msd(head), msd(tail), msd(head+sum+tail), msd(d.end.Sub(d.start)))
	fmt.Fprintf(w, "waiting in health-check intervals on the path: %s ms (%.0f%%); everything else (Drover, containerd, runc, CNI, CLI): %s ms\n",
		msd(totWait), 100*totWait.Seconds()/d.end.Sub(d.start).Seconds(), msd(d.end.Sub(d.start)-totWait))

	fmt.Fprintln(w, "\nPer phase over all 10 services (ms): sum, median, max")
	for i, n := range segNames {
		var xs []time.Duration
		for _, s := range d.svcs {
			xs = append(xs, d.segs(s)[i])
		}
		var total time.Duration
		for _, x := range xs {
			total += x
		}
		fmt.Fprintf(w, "  %-7s %7s %7s %7s\n", n, msd(total), msd(median(xs)), msd(slices.Max(xs)))
	}
	var create, run []time.Duration
	for _, s := range d.svcs {
		create, run = append(create, s.logger.Sub(s.attached)), append(run, s.started.Sub(s.logger))
	}
	fmt.Fprintf(w, "  start = attached -> shim logger up (container.log created) median %s, then -> started median %s\n", msd(median(create)), msd(median(run)))
	var lag, ready, k []time.Duration
	for _, s := range d.svcs {
		if len(s.probes) > 0 {
			lag = append(lag, s.probes[0].Sub(s.running)-startInterval)
		}
		ready = append(ready, s.ready.Sub(s.started))
		k = append(k, time.Duration(s.k))
	}
	fmt.Fprintf(w, "  first probe ran (in the container) %s ms (median) after running was stored + start_interval; max %s\n", msd(median(lag)), msd(slices.Max(lag)))
	fmt.Fprintf(w, "  /tmp/ready existed %s ms (median) after `container started`; probes to healthy: median %d, max %d\n", msd(median(ready)), median(k), slices.Max(k))
	if len(d.ensure) > 0 {
		fmt.Fprintf(w, "  isolated, after the run: EnsureImage (image present and unpacked) median %s ms, max %s ms (10 calls)\n", msd(median(d.ensure)), msd(slices.Max(d.ensure)))
	}
	if len(d.exec) > 0 {
		fmt.Fprintf(w, "  isolated, after the run: one probe's exec (`sh -c 'test -f /tmp/ready'`) median %s ms, max %s ms (10 calls)\n", msd(median(d.exec)), msd(slices.Max(d.exec)))
	}
	for _, n := range d.notes {
		fmt.Fprintln(w, "  note:", n)
	}
}

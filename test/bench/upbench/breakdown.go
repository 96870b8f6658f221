package main

import (
	"bufio"
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/drover-org/drover/api"
)

// breakdownInput is what one drover round leaves to look at.
type breakdownInput struct {
	start, end time.Time // `drover up -d` ran from start to end
	tasks      []api.Task
	files      map[string]taskFiles // by task ID
	log        []byte               // the server log written during the round
}

// taskFiles are the modification times of a task's files on the agent.
type taskFiles struct {
	taskJSON     time.Time // written once the agent took the task and checked the image
	hosts        time.Time // written right after the CNI ADD
	containerLog time.Time // created by the shim logger as the task is created
}

// breakdown is the result: a summary and the per-task timeline.
type breakdown struct {
	n        int
	summary  string
	timeline string
}

// Phases of one task, in the order the drover server and agent go through
// them.
var phases = []struct{ key, what string }{
	{"created", "task created (reconciler's etcd txn; log \"task created\")"},
	{"prepared", "agent took it (task.json written; after the assignment long poll, image check, 1st status write)"},
	{"attached", "CNI ADD done (loopback + bridge; log \"attached\")"},
	{"logopen", "shim logger started (container.log created)"},
	{"started", "container started (task Start returned; log \"container started\")"},
	{"reported", "running status stored in etcd (status.updatedAt)"},
}

// analyse turns the gathered times into offsets from the start of `up`.
func analyse(in *breakdownInput, n int) *breakdown {
	logT := parseLog(in.log)
	per := map[string]map[string]time.Time{}
	for _, t := range in.tasks {
		f := in.files[t.ID]
		per[t.ID] = map[string]time.Time{
			"created":  logT.task["task created"][t.ID],
			"prepared": f.taskJSON,
			"attached": logT.task["attached"][t.ID],
			"logopen":  f.containerLog,
			"started":  logT.task["container started"][t.ID],
			"reported": t.Status.UpdatedAt,
		}
	}
	ms := func(t time.Time) float64 {
		if t.IsZero() {
			return -1
		}
		return float64(t.Sub(in.start).Microseconds()) / 1000
	}

	var sb strings.Builder
	fmt.Fprintf(&sb, "Breakdown of one `drover up -d` of %d replicas (ms since the command started; %.0f ms in all)\n",
		n, ms(in.end))
	if d := logT.global["stack deployed"]; !d.IsZero() {
		fmt.Fprintf(&sb, "  %-8s %8.0f  stack and services written to etcd (log \"stack deployed\")\n", "deployed", ms(d))
	}
	fmt.Fprintf(&sb, "  %-8s %8s %8s %8s  %s\n", "phase", "first", "median", "last", "")
	for _, p := range phases {
		var xs []float64
		for _, t := range in.tasks {
			if v := per[t.ID][p.key]; !v.IsZero() {
				xs = append(xs, ms(v))
			}
		}
		if len(xs) == 0 {
			fmt.Fprintf(&sb, "  %-8s %8s %8s %8s  %s\n", p.key, "-", "-", "-", p.what)
			continue
		}
		sort.Float64s(xs)
		fmt.Fprintf(&sb, "  %-8s %8.0f %8.0f %8.0f  %s\n", p.key, xs[0], xs[len(xs)/2], xs[len(xs)-1], p.what)
	}
	fmt.Fprintf(&sb, "  %-8s %8.0f  `drover up -d` returned (the CLI polls the task list every 200 ms)\n", "returned", ms(in.end))
	fmt.Fprintf(&sb, "  Per task, between phases (ms): %8s %8s %8s\n", "min", "median", "max")
	for i := 1; i < len(phases); i++ {
		var xs []float64
		for _, t := range in.tasks {
			a, b := per[t.ID][phases[i-1].key], per[t.ID][phases[i].key]
			if !a.IsZero() && !b.IsZero() {
				xs = append(xs, float64(b.Sub(a).Microseconds())/1000)
			}
		}
		if len(xs) == 0 {
			continue
		}
		sort.Float64s(xs)
		fmt.Fprintf(&sb, "    %-9s -> %-9s %8.0f %8.0f %8.0f\n", phases[i-1].key, phases[i].key, xs[0], xs[len(xs)/2], xs[len(xs)-1])
	}

	var tl strings.Builder
	fmt.Fprintf(&tl, "# ms since `drover up -d` started; it returned at %.0f\n%-24s", ms(in.end), "task")
	for _, p := range phases {
		fmt.Fprintf(&tl, " %9s", p.key)
	}
	tl.WriteString("\n")
	tasks := append([]api.Task(nil), in.tasks...)
	sort.Slice(tasks, func(i, j int) bool { return tasks[i].Slot < tasks[j].Slot })
	for _, t := range tasks {
		fmt.Fprintf(&tl, "%-24s", t.Name())
		for _, p := range phases {
			fmt.Fprintf(&tl, " %9.0f", ms(per[t.ID][p.key]))
		}
		tl.WriteString("\n")
	}
	return &breakdown{n: n, summary: sb.String(), timeline: tl.String()}
}

// logTimes are the times of the server log lines the breakdown uses: by
// message and task ID, and by message for lines without a task.
type logTimes struct {
	task   map[string]map[string]time.Time
	global map[string]time.Time
}

// parseLog reads slog text lines (time=... level=... msg=... key=value).
func parseLog(b []byte) logTimes {
	lt := logTimes{task: map[string]map[string]time.Time{}, global: map[string]time.Time{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		kv := parseLine(sc.Text())
		ts, err := time.Parse(time.RFC3339Nano, kv["time"])
		if err != nil || kv["msg"] == "" {
			continue
		}
		msg := kv["msg"]
		if id := kv["task"]; id != "" {
			if lt.task[msg] == nil {
				lt.task[msg] = map[string]time.Time{}
			}
			if _, seen := lt.task[msg][id]; !seen {
				lt.task[msg][id] = ts
			}
			continue
		}
		if _, seen := lt.global[msg]; !seen {
			lt.global[msg] = ts
		}
	}
	return lt
}

// parseLine splits one slog text line into its keys and values.
func parseLine(line string) map[string]string {
	kv := map[string]string{}
	for line != "" {
		line = strings.TrimLeft(line, " ")
		eq := strings.IndexByte(line, '=')
		if eq <= 0 {
			break
		}
		key := line[:eq]
		line = line[eq+1:]
		var val string
		if strings.HasPrefix(line, `"`) {
			q, err := strconv.QuotedPrefix(line)
			if err != nil {
				break
			}
			val, _ = strconv.Unquote(q)
			line = line[len(q):]
		} else {
			sp := strings.IndexByte(line, ' ')
			if sp < 0 {
				sp = len(line)
			}
			val, line = line[:sp], line[sp:]
		}
		kv[key] = val
	}
	return kv
}

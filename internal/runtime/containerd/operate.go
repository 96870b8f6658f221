package containerd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/containerd/typeurl/v2"

	"github.com/drover-org/drover/internal/runtime"
)

var _ runtime.Operator = (*Driver)(nil)

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Stats reads a running container's resource usage from its cgroups, and
// its network traffic from its network namespace.
func (d *Driver) Stats(ctx context.Context, id string) (runtime.Stats, error) {
	ctx = d.ctx(ctx)
	_, task, err := d.runningTask(ctx, id, true)
	if err != nil {
		return runtime.Stats{}, err
	}
	m, err := task.Metrics(ctx)
	if err != nil {
		return runtime.Stats{}, mapErr(err, "stats of container %s", id)
	}
	data, err := typeurl.UnmarshalAny(m.Data)
	if err != nil {
		return runtime.Stats{}, fmt.Errorf("stats of container %s: %w", id, err)
	}
	st := runtime.Stats{Time: time.Now()}
	if m.Timestamp != nil {
		st.Time = m.Timestamp.AsTime()
	}
	switch s := data.(type) {
	case *v1.Metrics:
		statsV1(&st, s)
	case *v2.Metrics:
		statsV2(&st, s)
	default:
		return runtime.Stats{}, fmt.Errorf("stats of container %s: unknown metrics type %T", id, data)
	}
	st.NetRxBytes, st.NetTxBytes, err = netDev(int(task.Pid()))
	if err != nil {
		d.logger.Debug("network stats", "container", id, "err", err)
	}
	return st, nil
}

// unlimited is the least limit the kernel reports for "no limit" (v1 gives
// PAGE_COUNTER_MAX pages in bytes, v2 max).
const unlimited = 1 << 62

func statsV1(st *runtime.Stats, m *v1.Metrics) {
	if mem := m.Memory; mem != nil && mem.Usage != nil {
		// Docker's usage: without the inactive page cache, which the
		// kernel drops first.
		st.MemoryBytes = mem.Usage.Usage
		if mem.TotalInactiveFile < st.MemoryBytes {
			st.MemoryBytes -= mem.TotalInactiveFile
		}
		if mem.Usage.Limit < unlimited {
			st.MemoryLimit = mem.Usage.Limit
		}
	}
	if m.CPU != nil && m.CPU.Usage != nil {
		st.CPUNanos = m.CPU.Usage.Total
	}
	if m.Pids != nil {
		st.PIDs = m.Pids.Current
	}
	if m.Blkio != nil {
		for _, e := range m.Blkio.IoServiceBytesRecursive {
			switch strings.ToLower(e.Op) {
			case "read":
				st.BlockRead += e.Value
			case "write":
				st.BlockWrite += e.Value
			}
		}
	}
}

func statsV2(st *runtime.Stats, m *v2.Metrics) {
	if mem := m.Memory; mem != nil {
		st.MemoryBytes = mem.Usage
		if mem.InactiveFile < st.MemoryBytes {
			st.MemoryBytes -= mem.InactiveFile
		}
		if mem.UsageLimit < unlimited {
			st.MemoryLimit = mem.UsageLimit
		}
	}
	if m.CPU != nil {
		st.CPUNanos = m.CPU.UsageUsec * 1000
	}
	if m.Pids != nil {
		st.PIDs = m.Pids.Current
	}
	if m.Io != nil {
		for _, e := range m.Io.Usage {
			st.BlockRead += e.Rbytes
			st.BlockWrite += e.Wbytes
		}
	}
}

// netDev sums the received and sent bytes of a process's network
// namespace, loopback aside.
func netDev(pid int) (rx, tx uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/dev", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(name) == "lo" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 9 {
			continue
		}
		r, err1 := strconv.ParseUint(f[0], 10, 64)
		t, err2 := strconv.ParseUint(f[8], 10, 64)
		if err1 != nil || err2 != nil {
			continue // the header
		}
		rx += r
		tx += t
	}
	return rx, tx, nil
}

// Pause freezes every process of a running container.
func (d *Driver) Pause(ctx context.Context, id string) error {
	ctx = d.ctx(ctx)
	_, task, err := d.runningTask(ctx, id, false)
	if err != nil {
		return err
	}
	if err := task.Pause(ctx); err != nil {
		return mapErr(err, "pausing container %s", id)
	}
	return nil
}

// Resume thaws a paused container.
func (d *Driver) Resume(ctx context.Context, id string) error {
	ctx = d.ctx(ctx)
	_, task, err := d.runningTask(ctx, id, true)
	if err != nil {
		return err
	}
	if err := task.Resume(ctx); err != nil {
		return mapErr(err, "resuming container %s", id)
	}
	return nil
}

// Kill sends a signal (name or number; "" is SIGKILL) to the container's
// main process and returns at once.
func (d *Driver) Kill(ctx context.Context, id string, signal string) error {
	ctx = d.ctx(ctx)
	if signal == "" {
		signal = "SIGKILL"
	}
	sig, err := parseSignal(signal)
	if err != nil {
		return err
	}
	_, task, err := d.runningTask(ctx, id, true)
	if err != nil {
		return err
	}
	if err := task.Kill(ctx, sig); err != nil {
		return mapErr(err, "signalling container %s", id)
	}
	return nil
}

// Top lists the processes of a running container, with user names from
// the container's /etc/passwd.
func (d *Driver) Top(ctx context.Context, id string) ([]runtime.Process, error) {
	ctx = d.ctx(ctx)
	_, task, err := d.runningTask(ctx, id, true)
	if err != nil {
		return nil, err
	}
	pids, err := task.Pids(ctx)
	if err != nil {
		return nil, mapErr(err, "processes of container %s", id)
	}
	users := passwdNames(fmt.Sprintf("/proc/%d/root", task.Pid()))
	var out []runtime.Process
	for _, p := range pids {
		pr, ok := readProcess(int(p.Pid), users)
		if ok {
			out = append(out, pr)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out, nil
}

// readProcess reads a host process's parent, user and command line; false
// if it is gone.
func readProcess(pid int, users map[int]string) (runtime.Process, bool) {
	dir := fmt.Sprintf("/proc/%d", pid)
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return runtime.Process{}, false
	}
	p := runtime.Process{PID: pid}
	// pid (comm) state ppid ...: comm may hold spaces and parentheses.
	var comm string
	if i, j := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')'); i >= 0 && j > i {
		comm = string(stat[i+1 : j])
		if f := strings.Fields(string(stat[j+1:])); len(f) >= 2 {
			p.PPID, _ = strconv.Atoi(f[1])
		}
	}
	if status, err := os.Open(dir + "/status"); err == nil {
		sc := bufio.NewScanner(status)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "Uid:"); ok {
				if f := strings.Fields(rest); len(f) > 0 {
					uid, _ := strconv.Atoi(f[0])
					p.User = users[uid]
					if p.User == "" {
						p.User = f[0]
					}
				}
				break
			}
		}
		status.Close()
	}
	cmdline, _ := os.ReadFile(dir + "/cmdline")
	p.Command = strings.TrimSpace(string(bytes.ReplaceAll(bytes.TrimRight(cmdline, "\x00"), []byte{0}, []byte{' '})))
	if p.Command == "" {
		p.Command = "[" + comm + "]"
	}
	return p, true
}

// passwdNames maps user IDs to names from the /etc/passwd of a root
// filesystem, read without following symlinks out of it; empty if
// unreadable.
func passwdNames(rootDir string) map[int]string {
	names := map[int]string{}
	root, err := os.OpenRoot(rootDir)
	if err != nil {
		return names
	}
	defer root.Close()
	f, err := root.Open("etc/passwd")
	if err != nil {
		return names
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) < 3 {
			continue
		}
		if uid, err := strconv.Atoi(fields[2]); err == nil {
			if _, seen := names[uid]; !seen {
				names[uid] = fields[0]
			}
		}
	}
	return names
}

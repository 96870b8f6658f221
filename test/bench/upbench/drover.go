package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/test/harness"
)

// droverNamespace is where drover's agent keeps its containers.
const droverNamespace = "drover"

// droverBench deploys one service with N replicas through the CLI.
type droverBench struct {
	srv     *harness.Server
	cd      *containerdBench
	logger  *slog.Logger
	project string
	dir     string // parent of the project directory
}

// composeFile is the benchmark's project: one service of n sleeping
// replicas. SIGKILL as stop signal only keeps `down` from waiting out the
// grace period (sleep as PID 1 ignores SIGTERM); it does not touch `up`.
func composeFile(n int) string {
	return fmt.Sprintf(`services:
  sleeper:
    image: %s
    command: ["sleep", "3600"]
    stop_signal: SIGKILL
    deploy:
      replicas: %d
`, harness.Image, n)
}

// round times `drover up -d` of n replicas, checks through the API that n
// tasks run, then times `drover down` and waits until the host is clean.
// With bd it also gathers what the breakdown needs.
func (d *droverBench) round(ctx context.Context, n int, bd *breakdownInput) (up, down time.Duration, err error) {
	dir := filepath.Join(d.dir, d.project)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, 0, err
	}
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(composeFile(n)), 0o644); err != nil {
		return 0, 0, err
	}
	var logOffset int64
	if bd != nil {
		if fi, err := os.Stat(d.srv.LogPath); err == nil {
			logOffset = fi.Size()
		}
	}

	deployed := true
	defer func() {
		if deployed { // up failed half-way: take it down before anything else
			_, _ = d.srv.DroverIn(dir, "-p", d.project, "down")
		}
	}()
	start := time.Now()
	out, err := d.srv.DroverIn(dir, "-p", d.project, "up", "-d")
	up = time.Since(start)
	if err != nil {
		return 0, 0, fmt.Errorf("drover up -d: %w\n%s", err, out)
	}
	end := time.Now()
	tasks, err := d.srv.Client.Tasks(ctx, d.project)
	if err != nil {
		return 0, 0, fmt.Errorf("listing tasks: %w", err)
	}
	running := 0
	for _, t := range tasks {
		if t.DesiredState == api.DesiredRunning && t.Status.State == api.StateRunning {
			running++
		}
	}
	if running != n {
		return 0, 0, fmt.Errorf("drover up -d returned with %d of %d tasks running", running, n)
	}
	if bd != nil {
		d.gather(bd, tasks, start, end, logOffset)
	}
	// Only this project's bridge: other Drovers may share the host.
	bridge := d.srv.BridgeFor(d.project, "default")

	start = time.Now()
	out, err = d.srv.DroverIn(dir, "-p", d.project, "down")
	down = time.Since(start)
	if err != nil {
		return 0, 0, fmt.Errorf("drover down: %w\n%s", err, out)
	}
	deployed = false
	return up, down, d.waitClean(ctx, bridge)
}

// waitClean waits until drover's containers, network namespaces and
// bridges are gone, so that one round does not pay for the last one's
// teardown.
func (d *droverBench) waitClean(ctx context.Context, bridge string) error {
	nsDir := filepath.Join(d.srv.DataDir, "agent", "network", "netns")
	return settle(ctx, "drover's containers, netns and bridges to go", time.Minute, func() (bool, error) {
		cs, err := d.cd.c.Containers(namespaces.WithNamespace(ctx, droverNamespace))
		if err != nil {
			return false, err
		}
		if len(cs) > 0 {
			return false, fmt.Errorf("%d containers left", len(cs))
		}
		if entries, err := os.ReadDir(nsDir); err == nil && len(entries) > 0 {
			return false, fmt.Errorf("%d network namespaces left", len(entries))
		}
		if _, err := net.InterfaceByName(bridge); err == nil {
			return false, fmt.Errorf("bridge %s left", bridge)
		}
		return true, nil
	})
}

// gather reads the task files, statuses and server log lines of the run
// for the breakdown, before `down` removes them.
func (d *droverBench) gather(bd *breakdownInput, tasks []api.Task, start, end time.Time, logOffset int64) {
	bd.start, bd.end, bd.tasks = start, end, tasks
	bd.files = map[string]taskFiles{}
	for _, t := range tasks {
		dir := filepath.Join(d.srv.DataDir, "agent", "tasks", t.ID)
		bd.files[t.ID] = taskFiles{
			taskJSON:     mtime(filepath.Join(dir, "task.json")),
			hosts:        mtime(filepath.Join(dir, "hosts")),
			containerLog: mtime(filepath.Join(dir, "container.log")),
		}
	}
	f, err := os.Open(d.srv.LogPath)
	if err != nil {
		d.logger.Warn("reading the server log", "err", err)
		return
	}
	defer f.Close()
	if _, err := f.Seek(logOffset, io.SeekStart); err == nil {
		bd.log, _ = io.ReadAll(f)
	}
}

func mtime(p string) time.Time {
	fi, err := os.Stat(p)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

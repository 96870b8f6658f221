package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// commandTimeout bounds every command the benchmark runs.
const commandTimeout = 5 * time.Minute

// tools runs drover's CLI against the benchmark's server and buildctl
// against that server's buildkitd.
type tools struct {
	drover   string // the drover binary the harness built
	host     string // DROVER_HOST of the server
	buildctl string // the buildctl binary
	addr     string // unix://<data-dir>/agent/buildkit/buildkitd.sock
}

// result is one command's output and wall time; mark is when the last
// output line holding the marker arrived (0: none).
type result struct {
	out  string
	took time.Duration
	mark time.Duration
}

// markWriter keeps a command's output and notes when a complete line
// holding marker arrives.
type markWriter struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	start   time.Time
	marker  []byte
	scanned int
	last    time.Duration
}

func (w *markWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if len(w.marker) > 0 {
		rest := w.buf.Bytes()[w.scanned:]
		if nl := bytes.LastIndexByte(rest, '\n'); nl >= 0 {
			if bytes.Contains(rest[:nl], w.marker) {
				w.last = time.Since(w.start)
			}
			w.scanned += nl + 1
		}
	}
	return len(p), nil
}

// run runs bin with args in dir and times it from start to exit.
func (t *tools) run(ctx context.Context, dir, marker, bin string, args ...string) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DROVER_HOST="+t.host)
	w := &markWriter{marker: []byte(marker)}
	cmd.Stdout, cmd.Stderr = w, w
	w.start = time.Now()
	err := cmd.Run()
	took := time.Since(w.start)
	w.mu.Lock()
	defer w.mu.Unlock()
	r := result{out: w.buf.String(), took: took, mark: w.last}
	if err != nil {
		return r, fmt.Errorf("%s %s: %w\n%s", bin, strings.Join(args, " "), err, tail(r.out, 40))
	}
	return r, nil
}

// droverCmd runs drover's CLI in dir.
func (t *tools) droverCmd(ctx context.Context, dir, marker string, args ...string) (result, error) {
	return t.run(ctx, dir, marker, t.drover, args...)
}

// ctlBuild is one `buildctl build` of a Dockerfile context, with the
// frontend options drover's CLI sets (internal/build) and the exports
// asked for.
type ctlBuild struct {
	context string // the context dir, which holds the Dockerfile
	noCache bool
	name    string // full image name
	// archive, when set, adds drover's second export: an OCI archive,
	// here a file.
	archive string
}

// buildctlCmd runs the build and checks that BuildKit reported the
// image's digest.
func (t *tools) buildctlCmd(ctx context.Context, b ctlBuild, metaFile string) (result, error) {
	args := []string{"--addr", t.addr, "build",
		"--frontend", "dockerfile.v0",
		"--local", "context=" + b.context, "--local", "dockerfile=" + b.context,
		"--opt", "filename=Dockerfile",
		"--opt", "image-resolve-mode=local",
		"--progress", "plain",
		"--output", "type=image,name=" + b.name + ",unpack=true",
		"--metadata-file", metaFile,
	}
	if b.archive != "" {
		args = append(args, "--output", "type=oci,name="+b.name+",dest="+b.archive)
	}
	if b.noCache {
		args = append(args, "--no-cache")
	}
	_ = os.Remove(metaFile)
	r, err := t.run(ctx, "", "", t.buildctl, args...)
	if err != nil {
		return r, err
	}
	raw, err := os.ReadFile(metaFile)
	if err != nil {
		return r, fmt.Errorf("buildctl's metadata file: %w", err)
	}
	var meta map[string]any
	if err := json.Unmarshal(raw, &meta); err != nil {
		return r, fmt.Errorf("buildctl's metadata file: %w", err)
	}
	if d, _ := meta["containerimage.digest"].(string); !strings.HasPrefix(d, "sha256:") {
		return r, fmt.Errorf("buildctl build of %s reported no image digest: %s", b.name, raw)
	}
	return r, nil
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

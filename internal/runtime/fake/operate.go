package fake

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/drover-org/drover/internal/runtime"
)

// file is a file or directory written into a container by CopyTo.
type file struct {
	dir  bool
	mode int64
	data []byte
}

// liveLocked finds a running (or paused) container; the Runtime is locked.
func (r *Runtime) liveLocked(id string) (*container, error) {
	c, ok := r.containers[id]
	if !ok {
		return nil, notFound(id)
	}
	if !c.alive() {
		return nil, fmt.Errorf("container %s is not running", id)
	}
	return c, nil
}

// Exec "runs" a process: it writes the script's ExecOutput to stdout and
// returns its ExecExitCode.
func (d *Driver) Exec(ctx context.Context, id string, spec runtime.ExecSpec) (int, error) {
	if len(spec.Cmd) == 0 {
		return 0, errors.New("exec without a command")
	}
	if err := d.enter("Exec"); err != nil {
		return 0, err
	}
	c, err := d.rt.liveLocked(id)
	if err != nil {
		d.rt.mu.Unlock()
		return 0, err
	}
	b := c.behavior
	d.rt.mu.Unlock()
	if b.ExecOutput != "" && spec.Stdout != nil {
		if _, err := io.WriteString(spec.Stdout, b.ExecOutput); err != nil {
			return 0, fmt.Errorf("exec in container %s: output: %w", id, err)
		}
	}
	return b.ExecExitCode, nil
}

// Stats reports the script's Stats for a running container.
func (d *Driver) Stats(ctx context.Context, id string) (runtime.Stats, error) {
	if err := d.enter("Stats"); err != nil {
		return runtime.Stats{}, err
	}
	defer d.rt.mu.Unlock()
	c, err := d.rt.liveLocked(id)
	if err != nil {
		return runtime.Stats{}, err
	}
	st := c.behavior.Stats
	if st.PIDs == 0 {
		st.PIDs = 1
	}
	st.Time = d.rt.now()
	return st, nil
}

// Pause freezes a running container.
func (d *Driver) Pause(ctx context.Context, id string) error {
	if err := d.enter("Pause"); err != nil {
		return err
	}
	defer d.rt.mu.Unlock()
	c, err := d.rt.liveLocked(id)
	if err != nil {
		return err
	}
	if c.state == runtime.StatePaused {
		return fmt.Errorf("container %s is already paused", id)
	}
	c.state = runtime.StatePaused
	return nil
}

// Resume thaws a paused container.
func (d *Driver) Resume(ctx context.Context, id string) error {
	if err := d.enter("Resume"); err != nil {
		return err
	}
	defer d.rt.mu.Unlock()
	c, err := d.rt.liveLocked(id)
	if err != nil {
		return err
	}
	if c.state != runtime.StatePaused {
		return fmt.Errorf("container %s is not paused", id)
	}
	c.state = runtime.StateRunning
	return nil
}

// Kill sends a signal ("" is SIGKILL) and returns at once. The container
// exits with 128+signal unless it ignores the signal.
func (d *Driver) Kill(ctx context.Context, id string, sig string) error {
	signal := syscall.SIGKILL
	if sig != "" {
		var err error
		if signal, err = parseSignal(sig); err != nil {
			return err
		}
	}
	if err := d.enter("Kill"); err != nil {
		return err
	}
	r := d.rt
	c, err := r.liveLocked(id)
	if err != nil {
		r.mu.Unlock()
		return err
	}
	es, exited := r.signalLocked(c, signal)
	r.mu.Unlock()
	if exited {
		r.notify(id, es)
	}
	return nil
}

// Top lists the container's one process.
func (d *Driver) Top(ctx context.Context, id string) ([]runtime.Process, error) {
	if err := d.enter("Top"); err != nil {
		return nil, err
	}
	defer d.rt.mu.Unlock()
	c, err := d.rt.liveLocked(id)
	if err != nil {
		return nil, err
	}
	cmd := c.command
	if cmd == "" {
		cmd = c.image
	}
	return []runtime.Process{{PID: c.pid, User: "root", Command: cmd}}, nil
}

// CopyTo unpacks a tar into dir inside the container; the files are kept
// in memory for CopyFrom.
func (d *Driver) CopyTo(ctx context.Context, id, dir string, rd io.Reader) error {
	if !path.IsAbs(dir) {
		return fmt.Errorf("copy into container %s: %q is not an absolute path", id, dir)
	}
	// The tar is read before taking the lock: the reader may be slow.
	got := map[string]file{}
	tr := tar.NewReader(rd)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("copy into container %s: %w", id, err)
		}
		p := path.Join(dir, hdr.Name)
		if !strings.HasPrefix(p+"/", path.Clean(dir)+"/") && p != path.Clean(dir) {
			return fmt.Errorf("copy into container %s: %q leaves %s", id, hdr.Name, dir)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			got[p] = file{dir: true, mode: hdr.Mode}
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			if err != nil {
				return fmt.Errorf("copy into container %s: %w", id, err)
			}
			got[p] = file{mode: hdr.Mode, data: b}
		}
	}
	if err := d.enter("CopyTo"); err != nil {
		return err
	}
	defer d.rt.mu.Unlock()
	c, err := d.rt.liveLocked(id)
	if err != nil {
		return err
	}
	if c.files == nil {
		c.files = map[string]file{}
	}
	for p, f := range got {
		c.files[p] = f
	}
	return nil
}

// CopyFrom writes a tar of a path that CopyTo put into the container, its
// entries named from the path's base name, as `docker cp` does.
func (d *Driver) CopyFrom(ctx context.Context, id, p string, w io.Writer) error {
	p = path.Clean(p)
	if err := d.enter("CopyFrom"); err != nil {
		return err
	}
	c, err := d.rt.liveLocked(id)
	if err != nil {
		d.rt.mu.Unlock()
		return err
	}
	var paths []string
	files := map[string]file{}
	for fp, f := range c.files {
		if fp == p || strings.HasPrefix(fp, p+"/") {
			paths = append(paths, fp)
			files[fp] = f
		}
	}
	d.rt.mu.Unlock()
	if len(paths) == 0 {
		return fmt.Errorf("container %s: %s: no such file or directory: %w", id, p, runtime.ErrNotFound)
	}
	sort.Strings(paths)
	tw := tar.NewWriter(w)
	base := path.Base(p)
	for _, fp := range paths {
		f := files[fp]
		name := base + strings.TrimPrefix(fp, p)
		hdr := &tar.Header{Name: name, Mode: f.mode, ModTime: time.Unix(0, 0)}
		if f.dir {
			hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
		} else {
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	return tw.Close()
}

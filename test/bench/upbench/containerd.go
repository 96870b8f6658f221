package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
)

// benchNamespace keeps the reference containers apart from drover's.
const benchNamespace = "bench"

// sleepArgs is what every container of the benchmark runs.
var sleepArgs = []string{"sleep", "3600"}

func lookCtr(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found on PATH (apt-get install containerd): %w", name, err)
	}
	return p, nil
}

// containerdBench starts containers without drover, on drover's containerd.
type containerdBench struct {
	sock   string
	ctr    string
	c      *client.Client
	img    client.Image
	ref    string
	logger *slog.Logger
	round  int
	// removeRuncDir: the runc state dir of the bench namespace did not
	// exist before, so close removes it (runc leaves it empty).
	removeRuncDir bool
}

// runcNamespaceDir is where runc keeps the state of the bench namespace's
// containers: ctr and the Go client give no runc root, so the shim uses
// runc's default.
const runcNamespaceDir = "/run/containerd/runc/" + benchNamespace

func openContainerd(ctx context.Context, sock, ctr string, logger *slog.Logger) (*containerdBench, error) {
	c, err := client.New(sock, client.WithDefaultNamespace(benchNamespace))
	if err != nil {
		return nil, fmt.Errorf("connecting to drover's containerd at %s: %w", sock, err)
	}
	_, err = os.Stat(runcNamespaceDir)
	return &containerdBench{sock: sock, ctr: ctr, c: c, logger: logger, removeRuncDir: os.IsNotExist(err)}, nil
}

func (b *containerdBench) nsCtx(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, benchNamespace)
}

// ctrCmd runs ctr against drover's containerd in the bench namespace.
func (b *containerdBench) ctrCmd(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, b.ctr, append([]string{"--address", b.sock, "--namespace", benchNamespace}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ctr %v: %w: %s", args, err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

// importImage imports the archive drover loaded, so that every method
// starts from the same, already unpacked image.
func (b *containerdBench) importImage(ctx context.Context, archive, ref string) error {
	if err := b.ctrCmd(ctx, "images", "import", archive); err != nil {
		return err
	}
	img, err := b.c.GetImage(b.nsCtx(ctx), ref)
	if err != nil {
		return fmt.Errorf("image %s after ctr images import: %w", ref, err)
	}
	ok, err := img.IsUnpacked(b.nsCtx(ctx), "overlayfs")
	if err != nil {
		return err
	}
	if !ok {
		if err := img.Unpack(b.nsCtx(ctx), "overlayfs"); err != nil {
			return fmt.Errorf("unpacking %s: %w", ref, err)
		}
	}
	b.img, b.ref = img, ref
	return nil
}

// ctrRound runs n `ctr run -d` one after another and returns their total
// wall time. --null-io, as the Go client's cio.NullIO: nothing reads the
// output of a detached ctr anyway.
func (b *containerdBench) ctrRound(ctx context.Context, n int) (time.Duration, error) {
	b.round++
	defer b.clean(ctx)
	start := time.Now()
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("ctr-%d-%d", b.round, i)
		args := append([]string{"run", "-d", "--null-io", b.ref, id}, sleepArgs...)
		if err := b.ctrCmd(ctx, args...); err != nil {
			return 0, err
		}
	}
	d := time.Since(start)
	return d, b.checkRunning(ctx, n)
}

// clientRound creates and starts n containers with the Go client, one
// after another or all at once, and returns the wall time.
func (b *containerdBench) clientRound(ctx context.Context, n int, concurrent bool) (time.Duration, error) {
	b.round++
	defer b.clean(ctx)
	kind := "seq"
	if concurrent {
		kind = "conc"
	}
	start := time.Now()
	if concurrent {
		errs := make(chan error, n)
		for i := 0; i < n; i++ {
			go func() { errs <- b.startOne(ctx, fmt.Sprintf("go-%s-%d-%d", kind, b.round, i)) }()
		}
		var first error
		for i := 0; i < n; i++ {
			if err := <-errs; err != nil && first == nil {
				first = err
			}
		}
		if first != nil {
			return 0, first
		}
	} else {
		for i := 0; i < n; i++ {
			if err := b.startOne(ctx, fmt.Sprintf("go-%s-%d-%d", kind, b.round, i)); err != nil {
				return 0, err
			}
		}
	}
	d := time.Since(start)
	return d, b.checkRunning(ctx, n)
}

// startOne is what `ctr run -d` does, without the process: container with
// a new snapshot and the image's config, then task create and start.
func (b *containerdBench) startOne(ctx context.Context, id string) error {
	ctx = b.nsCtx(ctx)
	c, err := b.c.NewContainer(ctx, id,
		client.WithImage(b.img),
		client.WithNewSnapshot(id, b.img),
		client.WithNewSpec(oci.WithImageConfig(b.img), oci.WithProcessArgs(sleepArgs...)),
	)
	if err != nil {
		return fmt.Errorf("container %s: %w", id, err)
	}
	task, err := c.NewTask(ctx, cio.NullIO)
	if err != nil {
		_ = c.Delete(context.WithoutCancel(ctx), client.WithSnapshotCleanup)
		return fmt.Errorf("task of %s: %w", id, err)
	}
	if err := task.Start(ctx); err != nil {
		return fmt.Errorf("starting %s: %w", id, err)
	}
	return nil
}

// checkRunning confirms that the namespace holds n running tasks.
func (b *containerdBench) checkRunning(ctx context.Context, n int) error {
	ctx = b.nsCtx(ctx)
	cs, err := b.c.Containers(ctx)
	if err != nil {
		return err
	}
	running := 0
	for _, c := range cs {
		t, err := c.Task(ctx, nil)
		if err != nil {
			continue
		}
		if st, err := t.Status(ctx); err == nil && st.Status == client.Running {
			running++
		}
	}
	if running != n {
		return fmt.Errorf("%d of %d containers run", running, n)
	}
	return nil
}

// clean kills and deletes every container of the bench namespace with its
// task and snapshot.
func (b *containerdBench) clean(ctx context.Context) {
	ctx, cancel := context.WithTimeout(b.nsCtx(context.WithoutCancel(ctx)), 2*time.Minute)
	defer cancel()
	cs, err := b.c.Containers(ctx)
	if err != nil {
		b.logger.Warn("listing bench containers", "err", err)
		return
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, c := range cs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if t, err := c.Task(ctx, nil); err == nil {
				if _, err := t.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
					b.logger.Warn("deleting bench task", "container", c.ID(), "err", err)
				}
			}
			if err := c.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
				b.logger.Warn("deleting bench container", "container", c.ID(), "err", err)
			}
		}()
	}
	wg.Wait()
}

// close removes the containers, the image and the namespace, then
// disconnects.
func (b *containerdBench) close() {
	ctx, cancel := context.WithTimeout(b.nsCtx(context.Background()), 2*time.Minute)
	defer cancel()
	b.clean(ctx)
	is := b.c.ImageService()
	if imgs, err := is.List(ctx); err == nil {
		for _, img := range imgs {
			if err := is.Delete(ctx, img.Name, images.SynchronousDelete()); err != nil {
				b.logger.Warn("deleting bench image", "image", img.Name, "err", err)
			}
		}
	}
	if err := b.c.NamespaceService().Delete(ctx, benchNamespace); err != nil && !errdefs.IsNotFound(err) {
		b.logger.Warn("deleting the bench namespace", "err", err)
	}
	_ = b.c.Close()
	if b.removeRuncDir {
		_ = os.Remove(runcNamespaceDir) // only if empty
	}
}

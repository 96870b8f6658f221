package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/test/harness"
)

// droverNamespace is the agent's containerd namespace, where BuildKit's
// containerd worker stores what it builds.
const droverNamespace = "drover"

// bench holds the server and what the measurements share.
type bench struct {
	srv      *harness.Server
	tools    tools
	cd       *client.Client // the agent's containerd
	logger   *slog.Logger
	dir      string // temp dir for archives and metadata files
	threeDir string // the 3-stage project
	upDirs   map[string]string
	services int
}

// checkCache checks a build's plain progress output: with --no-cache no
// RUN or COPY step may be CACHED, without it (an unchanged context) all
// must be. There are five: the two stages' COPY data/ are one step to
// BuildKit (same base, same source, same destination).
func checkCache(what, out string, noCache bool) error {
	steps := map[string]string{} // "#7" -> "RUN ..."
	cached := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		id, rest, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(id, "#") {
			continue
		}
		if rest == "CACHED" {
			cached[id] = true
		} else if _, instr, ok := strings.Cut(rest, "] "); ok && strings.HasPrefix(rest, "[") {
			steps[id] = instr
		}
	}
	n, ran := 0, 0
	for id, instr := range steps {
		if !strings.HasPrefix(instr, "RUN ") && !strings.HasPrefix(instr, "COPY ") {
			continue
		}
		if cached[id] {
			n++
		} else {
			ran++
		}
	}
	switch {
	case noCache && (n > 0 || ran < 5):
		return fmt.Errorf("%s --no-cache: %d RUN and COPY steps ran, %d CACHED; want 5 and 0\n%s", what, ran, n, tail(out, 60))
	case !noCache && (n < 5 || ran > 0):
		return fmt.Errorf("%s of an unchanged context: %d RUN and COPY steps CACHED, %d ran; want 5 and 0\n%s", what, n, ran, tail(out, 60))
	}
	return nil
}

// droverBuild times `drover build` of the 3-stage project.
func (b *bench) droverBuild(ctx context.Context, noCache bool) (time.Duration, error) {
	args := []string{"-p", threeProject, "build", "--build-progress", "plain"}
	if noCache {
		args = append(args, "--no-cache")
	}
	r, err := b.tools.droverCmd(ctx, b.threeDir, "", append(args, "app")...)
	if err != nil {
		return 0, err
	}
	if err := checkCache("drover build", r.out, noCache); err != nil {
		return 0, err
	}
	return r.took, b.checkStored(ctx, threeImage)
}

// buildctlBuild times `buildctl build` of the same context with the same
// two exports (into containerd, and an OCI archive, here to a file), then
// `drover image load` of that archive, which ends where `drover build`
// ends: the image in the node's containerd and in the cluster's store.
func (b *bench) buildctlBuild(ctx context.Context, noCache bool) (build, load time.Duration, err error) {
	archive := filepath.Join(b.dir, "three-ctl.tar")
	_ = os.Remove(archive)
	defer os.Remove(archive)
	r, err := b.tools.buildctlCmd(ctx, ctlBuild{context: b.threeDir, noCache: noCache, name: fullName(threeCtl), archive: archive},
		filepath.Join(b.dir, "three-ctl.json"))
	if err != nil {
		return 0, 0, err
	}
	if err := checkCache("buildctl build", r.out, noCache); err != nil {
		return 0, 0, err
	}
	if err := b.checkContainerd(ctx, threeCtl); err != nil {
		return 0, 0, err
	}
	l, err := b.tools.droverCmd(ctx, "", "", "image", "load", "-i", archive)
	if err != nil {
		return 0, 0, err
	}
	return r.took, l.took, b.checkStored(ctx, threeCtl)
}

// checkStored confirms that the cluster's store holds the image.
func (b *bench) checkStored(ctx context.Context, ref string) error {
	imgs, err := b.srv.Client.Images(ctx)
	if err != nil {
		return fmt.Errorf("listing images: %w", err)
	}
	for _, im := range imgs {
		if im.Name == fullName(ref) && im.Stored {
			return nil
		}
	}
	return fmt.Errorf("image %s is not in the cluster's store", ref)
}

// checkContainerd confirms that the agent's containerd holds the image.
func (b *bench) checkContainerd(ctx context.Context, ref string) error {
	if _, err := b.cd.GetImage(namespaces.WithNamespace(ctx, droverNamespace), fullName(ref)); err != nil {
		return fmt.Errorf("image %s in the agent's containerd: %w", ref, err)
	}
	return nil
}

// upTimes is one run of one side of part (c). builds, loads and up are
// the parts; for drover, builds is when up printed its last "Built" line.
type upTimes struct {
	total, builds, loads, up time.Duration
}

// upRun brings the side's 5-service project up once, after a new nonce in
// every context, checks that every service runs its new image, and takes
// it down.
func (b *bench) upRun(ctx context.Context, s upSide, nonce string) (upTimes, error) {
	dir := b.upDirs[s.key]
	if err := writeNonces(dir, nonce, b.services); err != nil {
		return upTimes{}, err
	}
	var t upTimes
	var err error
	switch s.key {
	case sideDrover.key:
		t, err = b.upDrover(ctx, dir, s)
	default:
		t, err = b.upByHand(ctx, dir, s)
	}
	if err != nil {
		_, _ = b.tools.droverCmd(ctx, dir, "", "-p", s.project, "down")
		return upTimes{}, err
	}
	if err := b.verify(ctx, dir, s, nonce); err != nil {
		_, _ = b.tools.droverCmd(ctx, dir, "", "-p", s.project, "down")
		return upTimes{}, err
	}
	return t, b.down(ctx, dir, s)
}

// upDrover is `drover up -d --build`: it builds every service (one
// after another, as internal/build does), stores each image in the
// cluster and deploys.
func (b *bench) upDrover(ctx context.Context, dir string, s upSide) (upTimes, error) {
	r, err := b.tools.droverCmd(ctx, dir, "  Built", "-p", s.project, "up", "-d", "--build", "--build-progress", "plain")
	if err != nil {
		return upTimes{}, err
	}
	if r.mark == 0 {
		return upTimes{}, fmt.Errorf("drover up --build printed no Built line:\n%s", tail(r.out, 40))
	}
	return upTimes{total: r.took, builds: r.mark, up: r.took - r.mark}, nil
}

// upByHand builds each service's image with buildctl on the same
// buildkitd, then deploys. Side "hand" ends where `drover up --build`
// ends: each image also exported as an OCI archive and loaded into the
// cluster's store (`drover image load`), then `up -d --no-build` of the
// same file (build: sections and all). Side "local" is the floor on one
// host: the images into this node's containerd only, then `up -d` of a
// file without build:, which runs the node's copies.
func (b *bench) upByHand(ctx context.Context, dir string, s upSide) (upTimes, error) {
	var t upTimes
	for i := 1; i <= b.services; i++ {
		cb := ctlBuild{context: filepath.Join(dir, fmt.Sprintf("s%d", i)), name: fullName(s.imageOf(i))}
		if s.build {
			cb.archive = filepath.Join(b.dir, fmt.Sprintf("%s-s%d.tar", s.key, i))
			_ = os.Remove(cb.archive)
		}
		r, err := b.tools.buildctlCmd(ctx, cb, filepath.Join(b.dir, fmt.Sprintf("%s-s%d.json", s.key, i)))
		if err != nil {
			return upTimes{}, err
		}
		t.builds += r.took
		if cb.archive != "" {
			l, err := b.tools.droverCmd(ctx, "", "", "image", "load", "-i", cb.archive)
			_ = os.Remove(cb.archive)
			if err != nil {
				return upTimes{}, err
			}
			t.loads += l.took
		}
	}
	args := []string{"-p", s.project, "up", "-d"}
	if s.build {
		args = append(args, "--no-build")
	}
	r, err := b.tools.droverCmd(ctx, dir, "", args...)
	if err != nil {
		return upTimes{}, err
	}
	t.up = r.took
	t.total = t.builds + t.loads + t.up
	return t, nil
}

// verify checks that every service of the side runs and serves the file
// of this run's context.
func (b *bench) verify(ctx context.Context, dir string, s upSide, nonce string) error {
	tasks, err := b.srv.Client.Tasks(ctx, s.project)
	if err != nil {
		return fmt.Errorf("listing tasks: %w", err)
	}
	running := 0
	for _, t := range tasks {
		if t.DesiredState == api.DesiredRunning && t.Status.State == api.StateRunning {
			running++
		}
	}
	if running != b.services {
		return fmt.Errorf("%s: up returned with %d of %d tasks running", s.project, running, b.services)
	}
	for i := 1; i <= b.services; i++ {
		r, err := b.tools.droverCmd(ctx, dir, "", "-p", s.project, "exec", "-T", fmt.Sprintf("s%d", i), "cat", "/app/nonce")
		if err != nil {
			return err
		}
		if want := fmt.Sprintf("%s s%d", nonce, i); strings.TrimSpace(r.out) != want {
			return fmt.Errorf("%s: service s%d runs an image with nonce %q, want %q", s.project, i, strings.TrimSpace(r.out), want)
		}
	}
	return nil
}

// down takes the side's project down and waits until its containers and
// bridge are gone, so that a run does not pay for the last one's
// teardown.
func (b *bench) down(ctx context.Context, dir string, s upSide) error {
	bridge := b.srv.BridgeFor(s.project, "default")
	if _, err := b.tools.droverCmd(ctx, dir, "", "-p", s.project, "down"); err != nil {
		return err
	}
	return settle(ctx, s.project+"'s containers and bridge to go", time.Minute, func() (bool, error) {
		cs, err := b.cd.Containers(namespaces.WithNamespace(ctx, droverNamespace))
		if err != nil {
			return false, err
		}
		if len(cs) > 0 {
			return false, fmt.Errorf("%d containers left", len(cs))
		}
		if _, err := net.InterfaceByName(bridge); err == nil {
			return false, fmt.Errorf("bridge %s left", bridge)
		}
		return true, nil
	})
}

// settle waits until cond holds, polling, or fails after d.
func settle(ctx context.Context, what string, d time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(d)
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New("still not")
			}
			return fmt.Errorf("timed out after %s waiting for %s: %w", d, what, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

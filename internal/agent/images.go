package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/content"
	drt "github.com/drover-org/drover/internal/runtime"
)

// ClusterImporter is the driver's optional ability to run images of the
// cluster's content store: the containerd driver has it, the fake one
// does not (its tasks pull nothing).
type ClusterImporter interface {
	HasImage(ctx context.Context, ref string) (bool, error)
	ImportFromStore(ctx context.Context, st *content.Store, rec content.ImageRecord) (drt.Image, error)
}

// ImageRemover is the driver's optional ability to delete an image.
type ImageRemover interface {
	RemoveImage(ctx context.Context, ref string) error
}

// imageSource says where a task's image is to come from, given what the
// server's content store and this node's runtime hold. The server's record
// wins over a local image of the same name that differs from it: a
// re-loaded tag is to run everywhere, not the copy a node kept.
type imageSource int

const (
	fromLocal    imageSource = iota // the runtime has it, as the cluster does
	fromCluster                     // fetch what is missing, then import
	fromRegistry                    // not in the cluster: the runtime's own pull (or its copy)
)

// chooseSource picks the image's source; pull_policy "always" goes to
// the registry first (the caller falls back to the cluster's copy when
// that fails), "never" never does.
func chooseSource(policy string, inCluster, localMatches bool) imageSource {
	switch {
	case policy == "always":
		return fromRegistry
	case inCluster && localMatches:
		return fromLocal
	case inCluster:
		return fromCluster
	default:
		return fromRegistry
	}
}

// contentFetcher reaches the server's content store with the agent's own
// connection to the server: mutual TLS for a remote agent, the unix
// socket for the server's own.
func (a *Agent) contentFetcher() *content.Fetcher {
	hc, base := a.cfg.Server.HTTP()
	return &content.Fetcher{Client: hc, BaseURL: base + "/v1/content"}
}

// contentDir is the node's own content store, where fetched blobs are
// kept: a broken fetch resumes from it, even after a restart, and an image
// that containerd lost is imported again without a transfer.
func (a *Agent) contentDir() string { return filepath.Join(a.cfg.DataDir, "content") }

// ensureImage makes the task's image ready to run on this node: from the
// cluster's content store when the server has it (fetching only the blobs
// this node lacks), else as the runtime finds it (its own copy or a
// registry pull). Errors name the image.
func (a *Agent) ensureImage(ctx context.Context, t api.Task) error {
	ref := t.Spec.Image
	// Tasks of one image starting together fetch and import it once.
	unlock := a.lockImage(ref)
	defer unlock()
	imp, ok := a.cfg.Driver.(ClusterImporter)
	if !ok || a.cfg.Server == nil {
		a.report(ctx, t, api.TaskStatus{State: api.StatePreparing, Message: "pulling image " + ref})
		return a.cfg.Driver.EnsureImage(ctx, ref)
	}
	f := a.contentFetcher()
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	rec, err := f.Image(qctx, ref)
	cancel()
	inCluster := err == nil
	if err != nil && !errors.Is(err, api.ErrNotFound) {
		// The server may be out of reach for a while: a node that
		// has the image still runs it.
		a.log.Warn("cannot ask the server for an image; using this node's or the registry's", "image", ref, "err", err)
	}
	var st *content.Store
	localMatches := false
	if inCluster {
		if st, err = a.contentStore(); err != nil {
			return fmt.Errorf("image %s: this node's content store: %w", ref, err)
		}
		if local, err := st.Image(rec.Name); err == nil && local.Manifest.Digest == rec.Manifest.Digest {
			localMatches, _ = imp.HasImage(ctx, rec.Name)
		}
	}
	policy := t.Spec.PullPolicy
	switch chooseSource(policy, inCluster, localMatches) {
	case fromLocal:
		return nil
	case fromCluster:
		return a.fetchImage(ctx, t, f, st, rec, imp)
	}
	if policy == "always" {
		a.report(ctx, t, api.TaskStatus{State: api.StatePreparing, Message: "pulling image " + ref})
		puller, ok := a.cfg.Driver.(interface {
			PullImage(ctx context.Context, ref string) error
		})
		perr := fmt.Errorf("the runtime cannot pull")
		if ok {
			if perr = puller.PullImage(ctx, ref); perr == nil {
				return nil
			}
		}
		switch {
		case inCluster:
			a.log.Warn("pull_policy always: the registry pull failed; running the cluster's copy", "image", ref, "err", perr)
			if localMatches {
				return nil
			}
			return a.fetchImage(ctx, t, f, st, rec, imp)
		default:
			if has, _ := imp.HasImage(ctx, ref); has {
				a.log.Warn("pull_policy always: the registry pull failed; running this node's copy", "image", ref, "err", perr)
				return nil
			}
		}
		return fmt.Errorf("image %s (pull_policy: always): %w", ref, perr)
	}
	if has, _ := imp.HasImage(ctx, ref); has {
		return nil
	}
	if policy == "never" {
		return fmt.Errorf("image %s is neither on this node nor loaded into the cluster, and pull_policy is never: load it with `drover image load`: %w", ref, api.ErrNotFound)
	}
	a.report(ctx, t, api.TaskStatus{State: api.StatePreparing, Message: "pulling image " + ref})
	// Its error names the image and says to load it.
	return a.cfg.Driver.EnsureImage(ctx, ref)
}

// fetchImage copies the blobs of rec this node lacks from the server,
// reporting progress as the task's status message, and imports the image
// into the runtime.
func (a *Agent) fetchImage(ctx context.Context, t api.Task, f *content.Fetcher, st *content.Store, rec content.ImageRecord, imp ClusterImporter) error {
	start := time.Now()
	log := a.log.With("task", t.ID, "image", rec.Name)
	// Status reports go out from their own goroutine: a report that
	// waits on a cut link must not hold the transfer (or its watchdog).
	p := newFetchProgress(rec.Name, rec.Size)
	rctx, stopReports := context.WithCancel(ctx)
	reported := make(chan struct{})
	go func() {
		defer close(reported)
		sent := ""
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			if msg := p.message(); msg != sent {
				sent = msg
				a.report(rctx, t, api.TaskStatus{State: api.StatePreparing, Message: msg})
			}
			select {
			case <-rctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	err := fetchResuming(ctx, fetchStall, fetchGiveUp,
		func(ctx context.Context, progress func(done, total int64)) error {
			return f.FetchImage(ctx, rec, st, progress)
		},
		p.update,
		func(err error, have int64) {
			log.Warn("image transfer broke; resuming", "have_bytes", have, "of_bytes", rec.Size, "err", err)
		})
	stopReports()
	<-reported
	if errors.Is(err, api.ErrInvalid) {
		return fmt.Errorf("fetching image %s from the server: %w (the server's copy is damaged: load the image again with `drover image load`, then `drover up`)", rec.Name, err)
	}
	if err != nil {
		return fmt.Errorf("fetching image %s from the server: %w", rec.Name, err)
	}
	a.report(ctx, t, api.TaskStatus{State: api.StatePreparing, Message: "importing image " + rec.Name})
	if _, err := imp.ImportFromStore(ctx, st, rec); err != nil {
		return fmt.Errorf("importing image %s: %w", rec.Name, err)
	}
	log.Info("image fetched from the server", "digest", rec.Manifest.Digest, "bytes", rec.Size,
		"took", time.Since(start).Round(time.Millisecond))
	return nil
}

// A transfer that moves no byte for fetchStall is broken off and resumed
// (a cut link stalls a TCP connection rather than breaking it); one that
// moved none for fetchGiveUp, over all its tries, fails the task.
const (
	fetchStall  = 10 * time.Second
	fetchGiveUp = 2 * time.Minute
)

var errStalled = errors.New("transfer stalled")

// fetchResuming runs fetch until it succeeds, trying again (each try
// resumes where the last stopped, as content.Fetcher does) after a broken
// or stalled transfer, and giving up on a final error (a missing or
// corrupt blob, refused access), on ctx's end, or after giveUp without
// progress. onRetry hears of each new try, with the bytes there so far.
func fetchResuming(ctx context.Context, stall, giveUp time.Duration,
	fetch func(ctx context.Context, progress func(done, total int64)) error,
	progress func(done, total int64), onRetry func(err error, have int64)) error {
	var mu sync.Mutex
	lastMove := time.Now()
	var have int64
	moved := func(done, total int64) {
		mu.Lock()
		if done > have {
			have, lastMove = done, time.Now()
		}
		mu.Unlock()
		if progress != nil {
			progress(done, total)
		}
	}
	idle := func() (time.Duration, int64) {
		mu.Lock()
		defer mu.Unlock()
		return time.Since(lastMove), have
	}
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithCancelCause(ctx)
		watched := make(chan struct{})
		go func() {
			tick := time.NewTicker(stall / 4)
			defer tick.Stop()
			for {
				select {
				case <-watched:
					return
				case <-tick.C:
					if d, _ := idle(); d > stall {
						cancel(errStalled)
						return
					}
				}
			}
		}()
		err := fetch(actx, moved)
		close(watched)
		stalled := errors.Is(context.Cause(actx), errStalled)
		cancel(nil)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case stalled:
			err = fmt.Errorf("%w for %s", errStalled, stall)
		case !retryableFetch(err):
			return err
		}
		d, n := idle()
		if d > giveUp {
			return fmt.Errorf("no progress for %s: %w", d.Round(time.Second), err)
		}
		if onRetry != nil {
			onRetry(err, n)
		}
		wait := time.Duration(min(attempt, 5)) * stall / 10
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// retryableFetch says whether a failed fetch may succeed when tried
// again: not a missing or corrupt blob, nor refused access.
func retryableFetch(err error) bool {
	for _, final := range []error{api.ErrNotFound, api.ErrInvalid, api.ErrForbidden} {
		if errors.Is(err, final) {
			return false
		}
	}
	return true
}

// fetchProgress keeps the latest byte count of a transfer as the task's
// status message ("fetching image X: 12.3/50.0 MB").
type fetchProgress struct {
	image string
	mu    sync.Mutex
	done  int64
	total int64
}

func newFetchProgress(image string, total int64) *fetchProgress {
	return &fetchProgress{image: image, total: total}
}

func (p *fetchProgress) update(done, total int64) {
	p.mu.Lock()
	p.done, p.total = done, total
	p.mu.Unlock()
}

func (p *fetchProgress) message() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprintf("fetching image %s: %.1f/%.1f MB", p.image, float64(p.done)/1e6, float64(p.total)/1e6)
}

// removeImage deletes an image from the runtime and this node's content
// store (`drover image rm`).
func (a *Agent) removeImage(w http.ResponseWriter, r *http.Request) {
	name, err := content.NormalizeName(r.PathValue("name"))
	if err != nil {
		writeError(w, err)
		return
	}
	rm, ok := a.cfg.Driver.(ImageRemover)
	if !ok {
		writeError(w, api.Errorf(api.ErrUnavailable, "this node's runtime cannot remove images"))
		return
	}
	if err := rm.RemoveImage(r.Context(), name); err != nil && !errors.Is(err, api.ErrNotFound) {
		writeError(w, err)
		return
	}
	if st, err := a.contentStore(); err == nil {
		if err := st.DeleteImage(name); err == nil {
			if _, err := st.GC(r.Context()); err != nil {
				a.log.Warn("content store GC failed", "err", err)
			}
		}
	}
	a.log.Info("image removed", "image", name)
	w.WriteHeader(http.StatusNoContent)
}

// lockImage serializes the preparation of one image on this node.
func (a *Agent) lockImage(ref string) func() {
	a.mu.Lock()
	if a.imageLocks == nil {
		a.imageLocks = map[string]*sync.Mutex{}
	}
	l := a.imageLocks[ref]
	if l == nil {
		l = &sync.Mutex{}
		a.imageLocks[ref] = l
	}
	a.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// contentStore is this node's one content store (a store's index is kept
// in memory, so there must be one per directory).
func (a *Agent) contentStore() (*content.Store, error) {
	a.contentOnce.Do(func() { a.content, a.contentErr = content.NewStore(a.contentDir()) })
	return a.content, a.contentErr
}

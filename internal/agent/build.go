package agent

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/drover-org/drover/api"
)

// Builder is the node's BuildKit daemon (package buildkitd): Dial starts
// it on first use.
type Builder interface {
	Dial(ctx context.Context) (net.Conn, error)
}

// buildSession hands the caller a raw connection to this node's buildkitd,
// over which the CLI's BuildKit client speaks gRPC (the build context and
// secrets travel in BuildKit's own session, inside it). The images named by
// ?image= are the build's FROM images: those that the cluster's store holds
// are made ready in this node's containerd first, so that BuildKit finds
// them without a registry.
func (a *Agent) buildSession(w http.ResponseWriter, r *http.Request) {
	if a.cfg.Builder == nil {
		writeError(w, api.Errorf(api.ErrUnavailable, "this node cannot build images (no BuildKit)"))
		return
	}
	for _, ref := range r.URL.Query()["image"] {
		if err := a.prepareBuildImage(r.Context(), ref); err != nil {
			writeError(w, err)
			return
		}
	}
	bk, err := a.cfg.Builder.Dial(r.Context())
	if err != nil {
		writeError(w, api.Errorf(api.ErrUnavailable, "node %s: %v", a.cfg.Hostname, err))
		return
	}
	defer bk.Close()
	hj, ok := w.(http.Hijacker)
	if !ok {
		writeError(w, api.Errorf(api.ErrUnavailable, "a build needs a connection upgrade"))
		return
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	_, _ = conn.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + api.UpgradeBuild + "\r\n\r\n"))
	splice(conn, brw.Reader, bk)
}

// splice copies both ways between the client (whose bytes already read
// are in buffered) and buildkitd until either side ends.
func splice(client net.Conn, buffered io.Reader, bk net.Conn) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, _ = io.Copy(bk, buffered)
		if cw, ok := bk.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	}()
	go func() {
		defer wg.Done()
		_, _ = io.Copy(client, bk)
		_ = client.Close() // ends the other copy's read
	}()
	wg.Wait()
}

// prepareBuildImage imports a FROM image from the cluster's store into
// this node's containerd when the store has it. An image the cluster does
// not hold is left to BuildKit (a registry pull, or its own error).
func (a *Agent) prepareBuildImage(ctx context.Context, ref string) error {
	if a.cfg.Server == nil {
		return nil
	}
	if _, ok := a.cfg.Driver.(ClusterImporter); !ok {
		return nil
	}
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, err := a.contentFetcher().Image(qctx, ref)
	cancel()
	if errors.Is(err, api.ErrNotFound) {
		return nil
	}
	if err != nil {
		a.log.Warn("cannot ask the server for a build's base image; leaving it to BuildKit", "image", ref, "err", err)
		return nil
	}
	// No task: ensureImage reports no status for it.
	return a.ensureImage(ctx, api.Task{Spec: api.ServiceSpec{Image: ref}})
}

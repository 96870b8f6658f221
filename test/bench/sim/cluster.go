package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/server"
	"github.com/drover-org/drover/internal/store"
)

// serverAPI is what the simulated nodes and the benchmark ask of the
// server; *api.Client has it too.
type serverAPI interface {
	RegisterNode(ctx context.Context, reg api.NodeRegistration) (api.Node, error)
	Heartbeat(ctx context.Context, nodeID string) error
	ReportStatus(ctx context.Context, taskID string, st api.TaskStatus) error
	Deploy(ctx context.Context, spec api.StackSpec, o api.DeployOptions) (api.DeployResult, error)
}

// controlPlane is the real server side: embedded etcd, the store, the
// server with its controller.
type controlPlane struct {
	dir     string
	tempDir bool
	emb     *store.Embedded
	st      *store.Store
	srv     *server.Server
	api     serverAPI
	httpSrv *http.Server

	stopController context.CancelFunc
	// controllerDone is closed when RunController returns, with its error
	// in controllerErr: a server whose controller stops (it lost its
	// leader lease) is broken, and drover server exits on it.
	controllerDone chan struct{}
	controllerErr  error
}

func startControlPlane(ctx context.Context, cfg config) (*controlPlane, error) {
	cp := &controlPlane{dir: cfg.dataDir}
	if cp.dir == "" {
		// Not "drover-...": test harnesses clean up those, and etcd exits
		// at once when its files go.
		d, err := os.MkdirTemp("", "simulation-etcd-")
		if err != nil {
			return nil, err
		}
		cp.dir, cp.tempDir = d, true
	}
	emb, err := store.StartEmbedded(ctx, filepath.Join(cp.dir, "etcd"), cfg.log.With("component", "etcd"))
	if err != nil {
		cp.close()
		return nil, err
	}
	cp.emb = emb
	cp.st = store.New(emb.Client)
	cp.srv = server.New(server.Config{Logger: cfg.log, NodeGrace: cfg.nodeGrace, Version: "sim"}, cp.st)

	switch cfg.transport {
	case "unix":
		sock := filepath.Join(cp.dir, "api.sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			cp.close()
			return nil, err
		}
		cp.httpSrv = &http.Server{Handler: cp.srv.Handler(), ReadHeaderTimeout: time.Minute}
		go func() { _ = cp.httpSrv.Serve(l) }()
		c, err := api.NewClient("unix://" + sock)
		if err != nil {
			cp.close()
			return nil, err
		}
		cp.api = c
	default:
		cp.api = inproc{h: cp.srv.Handler()}
	}

	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	cp.stopController = cancel
	cp.controllerDone = make(chan struct{})
	go func() {
		cp.controllerErr = cp.srv.RunController(cctx, "sim-server")
		close(cp.controllerDone)
	}()
	return cp, nil
}

// stopControllerAndWait stops the reconcile loop; a pass under way ends
// first (the loop checks its context between passes).
func (cp *controlPlane) stopControllerAndWait() {
	if cp.stopController == nil {
		return
	}
	cp.stopController()
	cp.stopController = nil
	select {
	case <-cp.controllerDone:
	case <-time.After(2 * time.Minute):
	}
}

// close stops the controller and etcd and removes a temp data dir.
func (cp *controlPlane) close() {
	cp.stopControllerAndWait()
	if cp.httpSrv != nil {
		_ = cp.httpSrv.Close()
	}
	if cp.emb != nil {
		cp.emb.Close()
	}
	if cp.tempDir {
		_ = os.RemoveAll(cp.dir)
	}
}

// inproc calls the server's HTTP handler in-process: the request and the
// answer are encoded and routed as on the wire, without a socket.
type inproc struct{ h http.Handler }

// recorder is the least http.ResponseWriter the handlers need.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (c inproc) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader = http.NoBody
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://drover"+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	w := &recorder{header: http.Header{}}
	c.h.ServeHTTP(w, req)
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.status >= 300 {
		e := &api.Error{}
		if json.Unmarshal(w.body.Bytes(), e) != nil || e.Code == "" {
			e = &api.Error{Code: api.CodeInternal, Message: fmt.Sprintf("%s %s: status %d: %s", method, path, w.status, w.body.String())}
		}
		e.Status = w.status
		return e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(w.body.Bytes(), out); err != nil {
		return fmt.Errorf("%s %s: bad answer: %w", method, path, err)
	}
	return nil
}

func (c inproc) RegisterNode(ctx context.Context, reg api.NodeRegistration) (api.Node, error) {
	var n api.Node
	return n, c.do(ctx, http.MethodPost, "/v1/nodes", reg, &n)
}

func (c inproc) Heartbeat(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodPost, "/v1/nodes/"+id+"/heartbeat", nil, nil)
}

func (c inproc) ReportStatus(ctx context.Context, id string, st api.TaskStatus) error {
	return c.do(ctx, http.MethodPut, "/v1/tasks/"+id+"/status", st, nil)
}

func (c inproc) Deploy(ctx context.Context, spec api.StackSpec, _ api.DeployOptions) (api.DeployResult, error) {
	var r api.DeployResult
	return r, c.do(ctx, http.MethodPut, "/v1/stacks/"+spec.Name, spec, &r)
}

// isNotFound reports an API answer the agent treats as "the task is gone".
func isNotFound(err error) bool { return errors.Is(err, api.ErrNotFound) }

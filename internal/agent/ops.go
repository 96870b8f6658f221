package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"

	"github.com/drover-org/drover/api"
	drt "github.com/drover-org/drover/internal/runtime"
)

func (a *Agent) operator(w http.ResponseWriter) (drt.Operator, bool) {
	op, ok := a.cfg.Driver.(drt.Operator)
	if !ok {
		writeError(w, api.Errorf(api.ErrUnavailable, "this node's runtime cannot do that"))
	}
	return op, ok
}

func (a *Agent) containerStats(w http.ResponseWriter, r *http.Request) {
	op, ok := a.operator(w)
	if !ok {
		return
	}
	id := r.PathValue("id")
	st, err := op.Stats(r.Context(), id)
	if err != nil {
		writeError(w, notFoundOr(err, id))
		return
	}
	writeJSON(w, http.StatusOK, api.ContainerStats{Task: id, CPUNanos: st.CPUNanos, MemoryBytes: st.MemoryBytes,
		MemoryLimit: st.MemoryLimit, PIDs: st.PIDs, NetRxBytes: st.NetRxBytes, NetTxBytes: st.NetTxBytes,
		BlockRead: st.BlockRead, BlockWrite: st.BlockWrite, Time: st.Time})
}

func (a *Agent) containerTop(w http.ResponseWriter, r *http.Request) {
	op, ok := a.operator(w)
	if !ok {
		return
	}
	id := r.PathValue("id")
	ps, err := op.Top(r.Context(), id)
	if err != nil {
		writeError(w, notFoundOr(err, id))
		return
	}
	out := []api.ContainerProcess{}
	for _, p := range ps {
		out = append(out, api.ContainerProcess{PID: p.PID, PPID: p.PPID, User: p.User, Command: p.Command})
	}
	writeJSON(w, http.StatusOK, out)
}

// containerSignal pauses, resumes or signals a container.
func (a *Agent) containerSignal(w http.ResponseWriter, r *http.Request) {
	op, ok := a.operator(w)
	if !ok {
		return
	}
	id := r.PathValue("id")
	var err error
	switch action := r.PathValue("action"); action {
	case "pause":
		err = op.Pause(r.Context(), id)
	case "unpause":
		err = op.Resume(r.Context(), id)
	case "kill":
		sig := r.URL.Query().Get("signal")
		if sig == "" {
			sig = "SIGKILL"
		}
		err = op.Kill(r.Context(), id, sig)
	default:
		err = api.Errorf(api.ErrNotFound, "no such action %q", action)
	}
	if err != nil {
		writeError(w, notFoundOr(err, id))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *Agent) archiveGet(w http.ResponseWriter, r *http.Request) {
	op, ok := a.operator(w)
	if !ok {
		return
	}
	id, path := r.PathValue("id"), r.URL.Query().Get("path")
	// Stream the tar; errors after the first byte can only cut it short.
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(op.CopyFrom(r.Context(), id, path, pw)) }()
	buf := make([]byte, 1)
	n, err := io.ReadFull(pr, buf)
	if err != nil && n == 0 {
		writeError(w, notFoundOr(err, id))
		return
	}
	w.Header().Set("Content-Type", "application/x-tar")
	_, _ = w.Write(buf[:n])
	_, _ = io.Copy(w, pr)
}

func (a *Agent) archivePut(w http.ResponseWriter, r *http.Request) {
	op, ok := a.operator(w)
	if !ok {
		return
	}
	id, path := r.PathValue("id"), r.URL.Query().Get("path")
	if err := op.CopyTo(r.Context(), id, path, r.Body); err != nil {
		writeError(w, notFoundOr(err, id))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func notFoundOr(err error, id string) error {
	if errorsIsNotFound(err) {
		return api.Errorf(api.ErrNotFound, "container %s is not on this node or not running: %v", id, err)
	}
	return api.Errorf(api.ErrInvalid, "%v", err)
}

// frameWriter sends one stream of an exec as frames.
type frameWriter struct {
	mu   *sync.Mutex
	conn io.Writer
	kind byte
}

func (f frameWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for off := 0; off < len(p); off += api.MaxFrame {
		end := min(off+api.MaxFrame, len(p))
		if err := api.WriteFrame(f.conn, f.kind, p[off:end]); err != nil {
			return off, err
		}
	}
	return len(p), nil
}

// containerExec runs a process in a container over an upgraded connection
// carrying frames (see api.WriteFrame).
func (a *Agent) containerExec(w http.ResponseWriter, r *http.Request) {
	ex, ok := a.cfg.Driver.(drt.Execer)
	if !ok {
		writeError(w, api.Errorf(api.ErrUnavailable, "this node's runtime cannot exec"))
		return
	}
	id := r.PathValue("id")
	var req api.ExecRequest
	if err := json.Unmarshal([]byte(r.URL.Query().Get("spec")), &req); err != nil || len(req.Cmd) == 0 {
		writeError(w, api.Errorf(api.ErrInvalid, "exec: want a spec with a command"))
		return
	}
	if st, err := a.cfg.Driver.Inspect(r.Context(), id); err != nil || st.State != drt.StateRunning {
		writeError(w, api.Errorf(api.ErrConflict, "container %s is not running", id))
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		writeError(w, api.Errorf(api.ErrUnavailable, "exec needs a connection upgrade"))
		return
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	_, _ = conn.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: drover-exec\r\n\r\n"))
	runExec(r.Context(), ex, id, req, conn, brw.Reader)
}

func runExec(ctx context.Context, ex drt.Execer, id string, req api.ExecRequest, conn net.Conn, in *bufio.Reader) {
	var mu sync.Mutex
	resize := make(chan drt.TermSize, 4)
	var stdin io.Reader
	var stdinW *io.PipeWriter
	if req.Interactive {
		var pr *io.PipeReader
		pr, stdinW = io.Pipe()
		stdin = pr
	}
	go func() {
		defer func() {
			if stdinW != nil {
				stdinW.Close()
			}
		}()
		for {
			kind, p, err := api.ReadFrame(in)
			if err != nil {
				return
			}
			switch kind {
			case api.FrameStdin:
				if stdinW == nil {
					continue
				}
				if len(p) == 0 {
					stdinW.Close()
					stdinW = nil
					continue
				}
				if _, err := stdinW.Write(p); err != nil {
					return
				}
			case api.FrameResize:
				if len(p) == 4 {
					select {
					case resize <- drt.TermSize{Width: uint16(p[0])<<8 | uint16(p[1]), Height: uint16(p[2])<<8 | uint16(p[3])}:
					default:
					}
				}
			}
		}
	}()
	code, err := ex.Exec(ctx, id, drt.ExecSpec{
		Cmd: req.Cmd, Env: req.Env, User: req.User, WorkingDir: req.WorkingDir, Tty: req.Tty,
		Stdin: stdin, Stdout: frameWriter{&mu, conn, api.FrameStdout}, Stderr: frameWriter{&mu, conn, api.FrameStderr},
		Resize: resize,
	})
	mu.Lock()
	defer mu.Unlock()
	if err != nil {
		_ = api.WriteFrame(conn, api.FrameError, []byte(err.Error()))
		code = 126
	}
	_ = api.WriteFrame(conn, api.FrameExit, []byte(strconv.Itoa(code)))
}

func errorsIsNotFound(err error) bool { return errors.Is(err, drt.ErrNotFound) }

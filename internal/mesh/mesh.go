package mesh

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/drover-org/drover/internal/lb"
)

// Config is what the agent hands the mesh process.
type Config struct {
	Frontends []lb.Frontend `json:"frontends"`
	// Allowed are the "proto ip:port" addresses of this node's tasks that
	// other nodes' balancers may reach through the tunnel.
	Allowed []string `json:"allowed"`
}

// Paths of the mesh process's files under its directory.
const (
	socketName = "mesh.sock"
	configName = "config.json"
	pidName    = "mesh.pid"
	logName    = "mesh.log"
)

// Process is the mesh process's side: it serves the agent's socket and
// the tunnel, and runs the balancer.
type Process struct {
	Dir string
	// Tunnel is where other nodes' balancers connect (ADDR:PORT); "" for
	// a node outside a cluster.
	Tunnel string
	Logger *slog.Logger

	mu      sync.Mutex
	allowed map[string]bool
	bal     *lb.Balancer
}

// Run serves until ctx ends.
func (p *Process) Run(ctx context.Context) error {
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	log := p.Logger.With("component", "mesh")
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return err
	}
	p.bal = lb.New(lb.Config{Logger: p.Logger})
	defer p.bal.Close()
	if b, err := os.ReadFile(filepath.Join(p.Dir, configName)); err == nil {
		var cfg Config
		if err := json.Unmarshal(b, &cfg); err == nil {
			p.apply(cfg, log)
		}
	}
	if p.Tunnel != "" {
		ln, err := net.Listen("tcp", p.Tunnel)
		if err != nil {
			return fmt.Errorf("mesh tunnel %s: %w", p.Tunnel, err)
		}
		defer ln.Close()
		t := &lb.Tunnel{Allowed: p.isAllowed, Logger: p.Logger}
		go func() { _ = t.Serve(ln) }()
	}
	sock := filepath.Join(p.Dir, socketName)
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("mesh socket: %w", err)
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		ln.Close()
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/config", func(w http.ResponseWriter, r *http.Request) {
		var cfg Config
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<20)).Decode(&cfg); err != nil {
			http.Error(w, "bad configuration: "+err.Error(), http.StatusBadRequest)
			return
		}
		errs := p.apply(cfg, log)
		if b, err := json.Marshal(cfg); err == nil {
			writeFileAtomic(filepath.Join(p.Dir, configName), b)
		}
		msgs := []string{}
		for _, e := range errs {
			msgs = append(msgs, e.Error())
		}
		_ = json.NewEncoder(w).Encode(msgs)
	})
	mux.HandleFunc("GET /v1/active", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(p.bal.Active())
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		hs.Close()
	}()
	log.Info("mesh ready", "socket", sock, "tunnel", p.Tunnel)
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (p *Process) apply(cfg Config, log *slog.Logger) []error {
	allowed := make(map[string]bool, len(cfg.Allowed))
	for _, a := range cfg.Allowed {
		allowed[a] = true
	}
	p.mu.Lock()
	p.allowed = allowed
	p.mu.Unlock()
	errs := p.bal.Sync(cfg.Frontends)
	for _, err := range errs {
		log.Error("cannot publish a port of the routing mesh on this node", "err", err)
	}
	return errs
}

func (p *Process) isAllowed(proto, addr string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.allowed[proto+" "+addr]
}

func writeFileAtomic(path string, b []byte) {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err == nil {
		_ = os.Rename(tmp, path)
	}
}

// Client is the agent's side: it hands the mesh process its
// configuration, starting the process when it does not answer.
type Client struct {
	Dir    string
	Binary string // the drover binary, run as `drover mesh`
	Tunnel string // passed to the process (see Process.Tunnel)
	Logger *slog.Logger

	mu   sync.Mutex
	once sync.Once
	hc   *http.Client
}

// http is the client of the mesh process's socket, made once so that its
// connection is reused rather than one left open per call.
func (c *Client) http() *http.Client {
	c.once.Do(func() {
		sock := filepath.Join(c.Dir, socketName)
		c.hc = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			},
		}}
	})
	return c.hc
}

// Sync hands cfg to the mesh process and returns the ports it could not
// publish.
func (c *Client) Sync(ctx context.Context, cfg Config) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	msgs, err := c.put(ctx, b)
	if err == nil {
		return msgs, nil
	}
	// Not running (first start, or it died): start it and try again.
	if serr := c.start(ctx); serr != nil {
		return nil, fmt.Errorf("start the mesh process: %w (after: %v)", serr, err)
	}
	return c.put(ctx, b)
}

func (c *Client) put(ctx context.Context, body []byte) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, "http://mesh/v1/config", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("mesh process answered %s", resp.Status)
	}
	var msgs []string
	if err := json.NewDecoder(resp.Body).Decode(&msgs); err != nil {
		return nil, err
	}
	return msgs, nil
}

// Active asks the mesh process for its open connections per task.
func (c *Client) Active(ctx context.Context) (map[string]int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://mesh/v1/active", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]int{}
	return out, json.NewDecoder(resp.Body).Decode(&out)
}

// start runs `drover mesh` in a session of its own (it outlives the
// agent, as containerd does) and waits until it answers.
func (c *Client) start(ctx context.Context) error {
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return err
	}
	_ = StopOwn(c.Dir) // one that does not answer is of no use
	logf, err := os.OpenFile(filepath.Join(c.Dir, logName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	args := []string{"mesh", "--dir", c.Dir}
	if c.Tunnel != "" {
		args = append(args, "--tunnel", c.Tunnel)
	}
	cmd := exec.Command(c.Binary, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	pid := cmd.Process.Pid
	_ = os.WriteFile(filepath.Join(c.Dir, pidName), []byte(strconv.Itoa(pid)+"\n"), 0o600)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if conn, err := net.Dial("unix", filepath.Join(c.Dir, socketName)); err == nil {
			conn.Close()
			if c.Logger != nil {
				c.Logger.Info("mesh process started", "pid", pid)
			}
			return nil
		}
		select {
		case err := <-exited:
			b, _ := os.ReadFile(filepath.Join(c.Dir, logName))
			return fmt.Errorf("the mesh process exited: %v: %s", err, lastLine(b))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("the mesh process did not answer on %s within 10s", filepath.Join(c.Dir, socketName))
}

// StopOwn stops the mesh process of dir (by its pid file) and waits until
// it is gone. No process is not an error.
func StopOwn(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, pidName))
	if err != nil {
		return nil
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || !isMesh(pid, dir) {
		_ = os.Remove(filepath.Join(dir, pidName))
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 100; i++ {
		if syscall.Kill(pid, 0) != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = os.Remove(filepath.Join(dir, pidName))
	return nil
}

// isMesh reports whether pid is a mesh process of dir (a pid file may
// outlive its process, and the pid be reused).
func isMesh(pid int, dir string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := splitNUL(b)
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "--dir" && args[i+1] == dir {
			return len(args) > 1 && args[1] == "mesh"
		}
	}
	return false
}

func splitNUL(b []byte) []string { return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00") }

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

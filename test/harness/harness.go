package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/buildkitd"
	"github.com/drover-org/drover/internal/imagebuild"
	"github.com/drover-org/drover/internal/mesh"
	"github.com/drover-org/drover/internal/network"
	"github.com/drover-org/drover/internal/runtime/containerd"
	"github.com/drover-org/drover/internal/testenv"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// RepoRoot is the module's root directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// Binaries builds bin/drover and the test image archive once per test
// process and returns (drover binary, image archive).
func Binaries(t testing.TB) (string, string) {
	t.Helper()
	testenv.RequireContainerd(t)
	testenv.RequireCNI(t)
	testenv.RequireFile(t, "/bin/busybox", "apt-get install busybox-static")
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "drover-it-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", buildDir+"/", "./cmd/drover", "./cmd/drover-logger")
		cmd.Dir = RepoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		// The test image is busybox plus the project's small test programs,
		// built static.
		udpecho := filepath.Join(buildDir, "udpecho")
		cmd = exec.Command("go", "build", "-o", udpecho, "./test/testprogs/udpecho")
		cmd.Dir = RepoRoot(t)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build udpecho: %v\n%s", err, out)
			return
		}
		prog, err := os.ReadFile(udpecho)
		if err != nil {
			buildErr = err
			return
		}
		img, err := imagebuild.Build(imagebuild.Options{Files: map[string]imagebuild.File{"/bin/udpecho": {Mode: 0o755, Data: prog}}})
		if err != nil {
			buildErr = err
			return
		}
		f, err := os.Create(filepath.Join(buildDir, "busybox.tar"))
		if err != nil {
			buildErr = err
			return
		}
		defer f.Close()
		buildErr = imagebuild.WriteOCIArchive(f, img, imagebuild.DefaultRef)
	})
	if buildErr != nil {
		t.Fatalf("building test binaries: %v", buildErr)
	}
	return filepath.Join(buildDir, "drover"), filepath.Join(buildDir, "busybox.tar")
}

// Image is the reference of the test image.
const Image = imagebuild.DefaultRef

var poolCounter int
var poolMu sync.Mutex

// Server is a running `drover server`.
type Server struct {
	t       testing.TB
	Bin     string
	Archive string
	DataDir string
	Sock    string
	Pool    string
	LogPath string
	cmd     *exec.Cmd
	done    chan struct{}
	Client  *api.Client
	extra   []string
}

// StartServer starts a server with its own data dir, socket, containerd
// and address pool, waits until its node is ready and loads the test image.
func StartServer(t testing.TB) *Server {
	t.Helper()
	return StartServerArgs(t)
}

// StartServerArgs is StartServer with more `drover server` flags.
func StartServerArgs(t testing.TB, extra ...string) *Server {
	t.Helper()
	bin, archive := Binaries(t)
	dir, err := os.MkdirTemp("", "drv")
	if err != nil {
		t.Fatal(err)
	}
	poolMu.Lock()
	poolCounter++
	// Each server in this process gets its own /16 so bridges never share
	// a subnet, whatever ran before.
	pool := fmt.Sprintf("10.%d.0.0/16", 150+(os.Getpid()+poolCounter)%60)
	poolMu.Unlock()
	s := &Server{t: t, Bin: bin, Archive: archive, DataDir: filepath.Join(dir, "data"), Sock: filepath.Join(dir, "drover.sock"),
		Pool: pool, LogPath: filepath.Join(dir, "server.log"), extra: extra}
	s.Client, err = api.NewClient("unix://" + s.Sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.cleanup()
		if !t.Failed() {
			os.RemoveAll(dir)
		} else {
			t.Logf("server log kept at %s", s.LogPath)
		}
	})
	s.Start()
	out, err := s.Drover("image", "load", "-i", archive)
	if err != nil {
		t.Fatalf("image load: %v\n%s", err, out)
	}
	return s
}

// For returns a view of the server whose checks fail t (a subtest) rather
// than the test that started it.
func (s *Server) For(t testing.TB) *Server {
	c := *s
	c.t = t
	return &c
}

// Start (re)starts the server process on the same data dir and waits until
// its node is ready.
func (s *Server) Start() {
	s.t.Helper()
	logf, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	args := append([]string{"server", "--data-dir", s.DataDir, "--listen", "unix://" + s.Sock,
		"--address-pool", s.Pool, "--log-level", "debug"}, s.extra...)
	cmd := exec.Command(s.Bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start server: %v", err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(s.done) }()
	s.WaitFor("node ready", 60*time.Second, func() bool {
		nodes, err := s.Client.Nodes(context.Background())
		return err == nil && len(nodes) == 1 && nodes[0].State == api.NodeReady
	})
}

// Kill9 kills the server process (not its containerd or containers).
func (s *Server) Kill9() {
	s.t.Helper()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
	s.cmd = nil
}

// Stop ends the server with SIGTERM.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
		<-s.done
	}
	s.cmd = nil
}

// Drover runs the CLI against this server; it returns stdout and stderr
// together.
func (s *Server) Drover(args ...string) (string, error) {
	return s.DroverIn("", args...)
}

// DroverIn runs the CLI in dir.
func (s *Server) DroverIn(dir string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.Bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DROVER_HOST=unix://"+s.Sock)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// MustDrover runs the CLI and fails the test on error.
func (s *Server) MustDrover(dir string, args ...string) string {
	s.t.Helper()
	out, err := s.DroverIn(dir, args...)
	if err != nil {
		s.t.Fatalf("drover %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// WaitFor polls cond until it holds or the deadline passes.
func (s *Server) WaitFor(what string, d time.Duration, cond func() bool) {
	s.t.Helper()
	WaitFor(s.t, what, d, cond)
}

// WaitFor polls cond every 100ms until it holds; it fails the test after d.
func WaitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Tasks lists a project's tasks.
func (s *Server) Tasks(project string) []api.Task {
	s.t.Helper()
	ts, err := s.Client.Tasks(context.Background(), project)
	if err != nil {
		s.t.Fatalf("tasks: %v", err)
	}
	return ts
}

// PS runs `drover ps --format json` and decodes its lines.
func (s *Server) PS(dir string, args ...string) []map[string]any {
	s.t.Helper()
	out := s.MustDrover(dir, append([]string{"ps", "--format", "json"}, args...)...)
	var rows []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			s.t.Fatalf("ps line %q: %v", line, err)
		}
		rows = append(rows, m)
	}
	return rows
}

// cleanup takes down every project, then the server, its containerd and
// anything left on the host.
func (s *Server) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if s.cmd != nil {
		if stacks, err := s.Client.Stacks(ctx); err == nil {
			for _, st := range stacks {
				_, _ = s.Drover("-p", st.Stack.Name, "down")
			}
		}
	}
	s.Stop()
	agentDir := filepath.Join(s.DataDir, "agent")
	// Whatever a failed test left: containers first, then networks.
	if drv, err := containerd.Open(ctx, containerd.Config{DataDir: agentDir}); err == nil {
		if sts, err := drv.Recover(ctx); err == nil {
			for _, st := range sts {
				_ = drv.Destroy(ctx, st.ID)
			}
		}
		drv.Close()
	}
	_ = buildkitd.StopOwn(agentDir)
	_ = containerd.StopOwnContainerd(agentDir)
	_ = mesh.StopOwn(filepath.Join(agentDir, "mesh"))
	if m, err := network.New(network.Config{StateDir: filepath.Join(agentDir, "network")}); err == nil {
		entries, _ := os.ReadDir(filepath.Join(agentDir, "tasks"))
		for _, e := range entries {
			var t api.Task
			if b, err := os.ReadFile(filepath.Join(agentDir, "tasks", e.Name(), "task.json")); err == nil && json.Unmarshal(b, &t) == nil {
				req := network.Request{ID: t.ID}
				for _, n := range t.Networks {
					req.Networks = append(req.Networks, network.Network{Name: n.Network.FullName, Bridge: n.Network.Bridge, Subnet: n.Network.Subnet, Gateway: n.Network.Gateway})
				}
				for _, p := range t.Spec.Ports {
					if p.Published != 0 {
						req.Ports = append(req.Ports, network.PortMapping{HostIP: p.HostIP, HostPort: p.Published, ContainerPort: p.Target, Protocol: p.Protocol})
					}
				}
				_ = m.Detach(ctx, req)
			}
		}
		// Only this server's own networks (those with a list in its state
		// directory): other drv- bridges on the host belong to tests of
		// other packages running at the same time.
		if nets, err := m.Networks(); err == nil {
			for _, n := range nets {
				if n.Name != "" {
					_ = m.RemoveNetwork(ctx, n)
				}
			}
		}
	}
}

// HostIP is an IPv4 address of this host that is not loopback and not on
// a bridge of Drover's or CNI's.
func HostIP(t testing.TB) string {
	t.Helper()
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 ||
			strings.HasPrefix(ifc.Name, "drv-") || strings.HasPrefix(ifc.Name, "veth") || strings.HasPrefix(ifc.Name, "cni") {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
				return ipn.IP.String()
			}
		}
	}
	t.Fatal("no non-loopback IPv4 address on this host")
	return ""
}

// WriteProject writes a compose.yaml into a new project directory named
// name and returns the directory.
func WriteProject(t testing.TB, name, compose string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// FreePort returns a TCP port free on all addresses right now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// BridgeFor is the bridge name the server gives a project's network.
func (s *Server) BridgeFor(project, network string) string {
	s.t.Helper()
	info, err := s.Client.Stack(context.Background(), project)
	if err == nil {
		for _, n := range info.Stack.Networks {
			if n.Name == network {
				return n.Bridge
			}
		}
	}
	return "drv-unknown-" + project
}

// RemoveBinaries deletes what Binaries built; a package's TestMain calls it
// after its tests ran.
func RemoveBinaries() {
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
}

// ImageArchive builds a busybox image with opts and writes it, tagged ref,
// as an OCI archive in a temporary directory of t; it returns the path.
func ImageArchive(t testing.TB, ref string, opts imagebuild.Options) string {
	t.Helper()
	img, err := imagebuild.Build(opts)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "image.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := imagebuild.WriteOCIArchive(f, img, ref); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

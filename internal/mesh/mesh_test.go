package mesh

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/drover-org/drover/internal/lb"
)

func echoServer(t *testing.T, greeting string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, greeting)
			c.Close()
		}
	}()
	return ln.Addr().String()
}

func freePort(t *testing.T) uint16 {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

func runProcess(t *testing.T, dir string) context.CancelFunc {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&Process{Dir: dir}).Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("unix", filepath.Join(dir, socketName)); err == nil {
			c.Close()
			return cancel
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("mesh process did not answer")
	return cancel
}

func get(t *testing.T, port uint16) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(int(port)), 2*time.Second)
	if err != nil {
		return "dial: " + err.Error()
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	b, _ := io.ReadAll(c)
	return string(b)
}

// The agent's configuration reaches the balancer through the socket, and
// a restarted mesh process starts from the last configuration it got.
func TestConfigThroughSocketAndAfterRestart(t *testing.T) {
	dir, err := os.MkdirTemp("", "mesh-") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	backend := echoServer(t, "hello")
	port := freePort(t)
	cancel := runProcess(t, dir)
	c := &Client{Dir: dir}
	cfg := Config{Frontends: []lb.Frontend{{Proto: "tcp", HostIP: "127.0.0.1", Port: port, Backends: []lb.Backend{{ID: "t1", Addr: backend}}}}}
	msgs, err := c.Sync(context.Background(), cfg)
	if err != nil || len(msgs) != 0 {
		t.Fatalf("Sync: %v %v", msgs, err)
	}
	if got := get(t, port); got != "hello" {
		t.Fatalf("through the mesh: %q", got)
	}
	if _, err := c.Active(context.Background()); err != nil {
		t.Fatalf("Active: %v", err)
	}
	cancel()
	time.Sleep(100 * time.Millisecond)
	if got := get(t, port); got == "hello" {
		t.Fatal("port still answers after the process ended")
	}
	runProcess(t, dir)
	if got := get(t, port); got != "hello" {
		t.Fatalf("after a restart: %q", got)
	}
}

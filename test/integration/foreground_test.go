package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drover-org/drover/test/harness"
)

func TestCLI(t *testing.T) {
	s := harness.StartServer(t)
	t.Run("UpForegroundStreamsLogsAndCtrlCStops", func(t *testing.T) { testUpForeground(t, s) })
	t.Run("ConfigWarnsUnsupportedKeys", func(t *testing.T) { testConfig(t, s) })
	t.Run("PublishedUDPPortAndHostIP", func(t *testing.T) { testUDPAndHostIP(t, s) })
}

func testUpForeground(t *testing.T, s *harness.Server) {
	s = s.For(t)
	dir := harness.WriteProject(t, "fg", fmt.Sprintf(`
services:
  ticker:
    image: %s
    command: ["sh", "-c", "i=0; while true; do i=$$((i+1)); echo tick $$i; sleep 0.2; done"]
    stop_grace_period: 1s
`, harness.Image))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.Bin, "up")
	cmd.Dir = dir
	cmd.Env = append(cmd.Environ(), "DROVER_HOST=unix://"+s.Sock)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
	}()
	deadline := time.After(60 * time.Second)
	var seen []string
wait:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("up ended early:\n%s", strings.Join(seen, "\n"))
			}
			seen = append(seen, l)
			if strings.Contains(l, "fg-ticker-1") && strings.Contains(l, "| tick 3") {
				break wait
			}
		case <-deadline:
			t.Fatalf("up did not stream the container's log:\n%s", strings.Join(seen, "\n"))
		}
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	pw.Close()
	if err != nil {
		t.Errorf("up after Ctrl-C: %v", err)
	}
	if _, err := s.Client.Stack(context.Background(), "fg"); err == nil {
		t.Errorf("project fg still deployed after Ctrl-C of a foreground up")
	}
}

func testConfig(t *testing.T, s *harness.Server) {
	s = s.For(t)
	dir := harness.WriteProject(t, "cfg", `
services:
  web:
    image: ${IMG:-busybox}
    userns_mode: host
`)
	out := s.MustDrover(dir, "config")
	if !strings.Contains(out, "image: busybox") || !strings.Contains(out, "name: cfg") {
		t.Errorf("config does not print the normalized model:\n%s", out)
	}
	if !strings.Contains(out, "WARN") || !strings.Contains(out, "compose.yaml:5") || !strings.Contains(out, "userns_mode") {
		t.Errorf("config does not warn of the unsupported key with its line:\n%s", out)
	}
}

func testUDPAndHostIP(t *testing.T, s *harness.Server) {
	s = s.For(t)
	udp := harness.FreePort(t)
	tcp := harness.FreePort(t)
	dir := harness.WriteProject(t, "udp", fmt.Sprintf(`
services:
  echo:
    image: %s
    command: ["sh", "-c", "echo ok > /www/index.html; httpd -p 80 -h /www; exec udpecho -p 9000"]
    stop_grace_period: 1s
    ports:
      - target: 9000
        published: "%d"
        protocol: udp
      - "127.0.0.1:%d:80"
`, harness.Image, udp, tcp))
	s.MustDrover(dir, "up", "-d")
	s.WaitFor("UDP reply on the published port", 30*time.Second, func() bool {
		c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", udp))
		if err != nil {
			return false
		}
		defer c.Close()
		_, _ = c.Write([]byte("ping\n"))
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		return err == nil && strings.Contains(string(buf[:n]), "pong")
	})
	// Published on 127.0.0.1 only: loopback answers, the host address not.
	s.WaitFor("TCP on 127.0.0.1", 20*time.Second, func() bool { return portAnswers(fmt.Sprintf("127.0.0.1:%d", tcp)) })
	if body, err := httpGet(fmt.Sprintf("http://%s:%d/", harness.HostIP(t), tcp)); err == nil {
		t.Errorf("port published on 127.0.0.1 answers on the host address too: %q", body)
	}
	s.MustDrover(dir, "down")
}

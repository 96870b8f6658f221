package integration

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/drover-org/drover/test/harness"
)

// The CLI on another machine reaches the server over TLS with an API token
// (pinned to the cluster CA); without it, or with a wrong one, it is
// refused with a message that says what to do.
func TestRemoteCLI(t *testing.T) {
	port := harness.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	s := harness.StartServerArgs(t, "--advertise", addr, "--mesh-port", fmt.Sprint(harness.FreePort(t)))
	token := strings.Fields(s.MustDrover("", "client", "token"))[0]
	remote := func(tok string, args ...string) (string, error) {
		cmd := exec.Command(s.Bin, args...)
		cmd.Env = append(os.Environ(), "DROVER_HOST=tcp://"+addr, "DROVER_TOKEN="+tok)
		cmd.Dir = harness.WriteProject(t, "remote", fmt.Sprintf(`
services:
  box:
    image: %s
    command: ["sh", "-c", "echo remote-hello; sleep 3600"]
    stop_grace_period: 1s
`, harness.Image))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := remote(token, "up", "-d"); err != nil {
		t.Fatalf("remote up: %v\n%s", err, out)
	}
	s.WaitFor("the remote project's log", 20_000_000_000, func() bool {
		out, _ := remote(token, "logs", "box")
		return strings.Contains(out, "remote-hello")
	})
	if out, err := remote(token, "exec", "-T", "box", "echo", "via-tls"); err != nil || !strings.Contains(out, "via-tls") {
		t.Errorf("remote exec: %v\n%s", err, out)
	}
	if out, err := remote(token, "node", "token"); err == nil || !strings.Contains(out, "unix socket") {
		t.Errorf("remote node token must be refused: %v\n%s", err, out)
	}
	bad := token[:len(token)-4] + "aaaa"
	if out, err := remote(bad, "ps"); err == nil || !strings.Contains(out, "API token is wrong") {
		t.Errorf("a wrong API token: %v\n%s", err, out)
	}
	if out, err := remote("", "ps"); err == nil || !strings.Contains(out, "DROVER_TOKEN") {
		t.Errorf("no API token: %v\n%s", err, out)
	}
	if out, err := remote(token, "down"); err != nil {
		t.Errorf("remote down: %v\n%s", err, out)
	}

	// Tokens are listed by ID and name, and a revoked one is refused
	// from its next call, saying so; the others keep working.
	out := s.MustDrover("", "client", "token", "--name", "laptop")
	laptop := strings.Fields(out)[0]
	m := regexp.MustCompile(`Token ID ([0-9a-f]{12})`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("client token does not give the token's ID:\n%s", out)
	}
	if out, err := remote(laptop, "ls"); err != nil {
		t.Fatalf("remote ls with the new token: %v\n%s", err, out)
	}
	if ls := s.MustDrover("", "client", "ls"); !regexp.MustCompile(m[1]+`\s+laptop\s`).MatchString(ls) || strings.Contains(ls, laptop) {
		t.Fatalf("client ls: want %s named laptop, and no secret:\n%s", m[1], ls)
	}
	s.MustDrover("", "client", "revoke", m[1])
	if out, err := remote(laptop, "ls"); err == nil || !strings.Contains(out, "was revoked") {
		t.Errorf("a revoked token: %v\n%s", err, out)
	}
	if out, err := remote(token, "ls"); err != nil {
		t.Errorf("another token after a revoke: %v\n%s", err, out)
	}
	if out, err := remote(token, "client", "revoke", m[1]); err == nil || !strings.Contains(out, "unix socket") {
		t.Errorf("remote client revoke must be refused: %v\n%s", err, out)
	}
}

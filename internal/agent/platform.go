package agent

import (
	"fmt"
	"strings"

	"github.com/containerd/platforms"

	"github.com/drover-org/drover/api"
	drt "github.com/drover-org/drover/internal/runtime"
)

// canRun refuses, before anything is prepared, a task this node cannot run:
// a platform: of another architecture (Drover does not emulate one), or a
// runtime: the node does not have. The node is the authority on both: the
// host that ran `drover up` may differ from it.
func (a *Agent) canRun(t api.Task) error {
	// A containerd shim other than runc's (wasm, a VM) runs what it
	// runs: the node's own platform says nothing about it.
	shim := strings.HasPrefix(t.Spec.Runtime, "io.containerd.") && !strings.HasPrefix(t.Spec.Runtime, "io.containerd.runc.")
	if err := platformFits(t.Spec.Platform, platforms.DefaultSpec()); err != nil && !shim {
		return fmt.Errorf("service %q: %w", t.Service, err)
	}
	if rc, ok := a.cfg.Driver.(drt.RuntimeChecker); ok {
		if err := rc.CheckRuntime(t.Spec.Runtime); err != nil {
			return fmt.Errorf("service %q: %w", t.Service, err)
		}
	}
	return nil
}

// platformFits reports why a node of platform node cannot run a service
// asking for want ("" fits every node).
func platformFits(want string, node platforms.Platform) error {
	if want == "" {
		return nil
	}
	p, err := platforms.Parse(want)
	if err != nil {
		return fmt.Errorf("platform %q: %w", want, err)
	}
	if !platforms.Only(node).Match(p) {
		return fmt.Errorf("platform %s: this node is %s and Drover does not emulate other platforms; run it on a node of that platform", want, platforms.Format(platforms.Normalize(node)))
	}
	return nil
}

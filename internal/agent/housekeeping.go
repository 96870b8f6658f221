package agent

import (
	"context"
	"net"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/network"
)

// ensureDNS serves DNS on a network's gateway once its bridge exists.
func (a *Agent) ensureDNS(n network.Network) {
	a.mu.Lock()
	if a.listening[n.Name] == n.Gateway {
		a.mu.Unlock()
		return
	}
	a.mu.Unlock()
	ip := net.ParseIP(n.Gateway)
	if ip == nil {
		return
	}
	if err := a.cfg.DNS.Listen(n.Name, ip); err != nil {
		a.log.Error("cannot serve DNS on the network's gateway; containers there cannot resolve names", "network", n.Name, "gateway", n.Gateway, "err", err)
		return
	}
	a.mu.Lock()
	a.listening[n.Name] = n.Gateway
	a.mu.Unlock()
}

// housekeeping keeps DNS listeners and bridges only for networks that a
// task of this node uses.
func (a *Agent) housekeeping(ctx context.Context, asg api.Assignments) {
	used := map[string]bool{}
	for _, t := range asg.Tasks {
		for _, n := range t.Networks {
			used[n.Network.FullName] = true
		}
	}
	a.mu.Lock()
	for _, w := range a.workers {
		if w.removed {
			continue
		}
		for _, n := range w.latest.Networks {
			used[n.Network.FullName] = true
		}
	}
	var gone []network.Network
	var attached []network.Network
	for name, n := range a.bridges {
		if !used[name] {
			gone = append(gone, n)
			delete(a.bridges, name)
		} else {
			attached = append(attached, n)
		}
	}
	a.mu.Unlock()

	for _, n := range attached {
		a.ensureDNS(n)
	}
	a.syncOverlays(asg)
	a.syncIngress(ctx, asg)
	for _, n := range gone {
		a.cfg.DNS.Unlisten(n.Name)
		a.mu.Lock()
		delete(a.listening, n.Name)
		a.mu.Unlock()
		if err := a.cfg.Network.RemoveNetwork(ctx, n); err != nil {
			a.log.Warn("cannot remove network", "network", n.Name, "err", err)
		} else {
			a.log.Info("network removed", "network", n.Name)
		}
	}
}

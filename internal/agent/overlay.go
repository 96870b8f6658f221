package agent

import (
	"encoding/json"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/network"
)

// adoptOverlays takes over the overlays a previous run of the agent made, so
// that those no longer wanted are removed.
func (a *Agent) adoptOverlays() {
	nets, err := a.cfg.Network.OverlayNetworks()
	if err != nil {
		a.log.Warn("cannot list this host's overlays", "err", err)
		return
	}
	a.mu.Lock()
	for _, n := range nets {
		if _, ok := a.overlays[n]; !ok {
			a.overlays[n] = ""
		}
	}
	a.mu.Unlock()
}

// syncOverlays connects this node's networks to the other nodes running
// them, and takes down the overlays of networks it no longer runs or that
// no other node runs. Overlays that did not change are left alone.
func (a *Agent) syncOverlays(asg api.Assignments) {
	bridges := map[string]api.Network{}
	for _, t := range asg.Tasks {
		for _, n := range t.Networks {
			bridges[n.Network.FullName] = n.Network
		}
	}
	want := map[string]network.Overlay{}
	for _, o := range asg.Overlays {
		n, ok := bridges[o.Network]
		if !ok || len(o.Peers) == 0 {
			continue
		}
		ov := network.Overlay{Network: o.Network, Bridge: n.Bridge, Internal: n.Internal, VNI: o.VNI, Subnet: o.Subnet,
			LocalAddr: o.LocalAddr, LocalSubnet: o.LocalSubnet, Subnet6: o.Subnet6, LocalSubnet6: o.LocalSubnet6}
		for _, p := range o.Peers {
			ov.Peers = append(ov.Peers, network.Peer{Addr: p.Addr, Subnet: p.Subnet, Subnet6: p.Subnet6})
		}
		want[o.Network] = ov
	}
	a.mu.Lock()
	have := make(map[string]string, len(a.overlays))
	for k, v := range a.overlays {
		have[k] = v
	}
	a.mu.Unlock()
	for name, ov := range want {
		b, _ := json.Marshal(ov)
		if have[name] == string(b) {
			continue
		}
		if err := a.cfg.Network.EnsureOverlay(ov); err != nil {
			a.log.Error("cannot connect the network to the other nodes; its tasks there are out of reach", "network", name, "err", err)
			continue
		}
		a.log.Info("overlay up", "network", name, "peers", len(ov.Peers), "slice", ov.LocalSubnet)
		a.mu.Lock()
		a.overlays[name] = string(b)
		a.mu.Unlock()
	}
	for name := range have {
		if _, ok := want[name]; ok {
			continue
		}
		if err := a.cfg.Network.RemoveOverlay(name); err != nil {
			a.log.Warn("cannot remove overlay", "network", name, "err", err)
			continue
		}
		a.log.Info("overlay removed", "network", name)
		a.mu.Lock()
		delete(a.overlays, name)
		a.mu.Unlock()
	}
}

package compose

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/drover-org/drover/api"
)

// serviceNetworkKeys are the keys of a service's network entry that Drover
// honours; the others warn.
var serviceNetworkKeys = map[string]bool{"aliases": true, "ipv4_address": true}

// topNetworkKeys are the top-level network keys Drover honours; name,
// driver, ipam and enable_ipv4 are checked apart.
var topNetworkKeys = map[string]bool{
	"labels": true, "name": true, "driver": true, "enable_ipv4": true, "enable_ipv6": true,
	"external": true, "internal": true, "driver_opts": true, "ipam": true,
}

// networkMode checks network_mode: host, none and service:NAME run as
// Docker runs them; sharing another container's namespace
// (container:NAME) cannot be, as Drover does not know that container.
func (t *translator) networkMode(s types.ServiceConfig) (string, error) {
	mode := s.NetworkMode
	switch {
	case mode == "", mode == "host", mode == "none":
		return mode, nil
	case strings.HasPrefix(mode, types.ServicePrefix):
		if strings.TrimPrefix(mode, types.ServicePrefix) == "" {
			return "", &Error{Service: s.Name, Key: "network_mode", Message: "service: needs the name of a service"}
		}
		return mode, nil
	case strings.HasPrefix(mode, types.ContainerPrefix):
		return "", &Error{Service: s.Name, Key: "network_mode", Message: fmt.Sprintf(
			"%q is not supported: Drover runs containers it does not name; use service:NAME to share a service's network", mode)}
	case mode == "bridge":
		t.warn(s.Name, "network_mode", "\"bridge\" %s: the service joins the stack's %q network", notSupportedValue, defaultNetwork)
		return "", nil
	}
	return "", &Error{Service: s.Name, Key: "network_mode", Message: fmt.Sprintf(
		"%q is not supported: use host, none or service:NAME, or list the network under networks:", mode)}
}

// networks lists the networks a service joins. compose-go attaches a
// service with neither networks nor network_mode to "default"; with a
// network_mode, the service joins none of the stack's networks.
func (t *translator) networks(s types.ServiceConfig) ([]api.ServiceNetwork, error) {
	if s.NetworkMode != "" && s.NetworkMode != "bridge" {
		return nil, nil
	}
	if len(s.Networks) == 0 {
		return []api.ServiceNetwork{{Name: defaultNetwork}}, nil
	}
	var out []api.ServiceNetwork
	for _, name := range sortedKeys(s.Networks) {
		n := api.ServiceNetwork{Name: name}
		if cfg := s.Networks[name]; cfg != nil {
			n.Aliases = slices.Compact(slices.Sorted(slices.Values(cfg.Aliases)))
			if cfg.Ipv4Address != "" {
				a, err := netip.ParseAddr(cfg.Ipv4Address)
				if err != nil || !a.Is4() {
					return nil, &Error{Service: s.Name, Key: "networks." + name + ".ipv4_address",
						Message: fmt.Sprintf("%q is not an IPv4 address", cfg.Ipv4Address)}
				}
				n.IPv4Address = a.String()
			}
			for _, key := range setFields(cfg, serviceNetworkKeys) {
				if key == "use_service_name_alias" && cfg.ServiceNameAliasEnabled() {
					continue
				}
				t.warn(s.Name, "networks."+name+"."+key, notSupported)
			}
		}
		out = append(out, n)
	}
	return out, nil
}

// network translates a top-level network that some service uses.
func (t *translator) network(project, name string, n types.NetworkConfig) (api.NetworkSpec, error) {
	key := "networks." + name + "."
	out := api.NetworkSpec{
		Name:       name,
		Labels:     copyLabels(n.Labels),
		External:   bool(n.External),
		Internal:   n.Internal,
		DriverOpts: copyMap(n.DriverOpts),
	}
	if n.EnableIPv6 != nil {
		out.EnableIPv6 = *n.EnableIPv6
	}
	for _, k := range setFields(&n, topNetworkKeys) {
		t.warn("", key+k, notSupported)
	}
	if out.External {
		out.ExternalName = n.Name
		if out.ExternalName == "" {
			out.ExternalName = name
		}
		return out, nil
	}
	if n.Name != "" && n.Name != project+"_"+name {
		t.warn("", key+"name", "%s: Drover names the network %q", notSupported, project+"_"+name)
	}
	switch n.Driver {
	case "", "bridge", "overlay":
	default:
		t.warn("", key+"driver", "%s (%q): Drover creates a bridge network", notSupported, n.Driver)
		if out.DriverOpts != nil {
			// Options of another driver mean nothing to a bridge.
			out.DriverOpts = nil
			t.warn("", key+"driver_opts", "are options of the %q driver and are ignored", n.Driver)
		}
	}
	if n.EnableIPv4 != nil && !*n.EnableIPv4 {
		t.warn("", key+"enable_ipv4", notSupported)
	}
	ipam := n.Ipam
	if ipam.Driver != "" && ipam.Driver != "default" {
		t.warn("", key+"ipam.driver", "%s (%q): Drover leases addresses itself", notSupported, ipam.Driver)
	}
	if len(ipam.Options) > 0 {
		t.warn("", key+"ipam.options", notSupported)
	}
	for i, pool := range ipam.Config {
		if pool == nil {
			continue
		}
		if i > 0 {
			t.warn("", key+"ipam.config", "entry %d %s: Drover uses the first subnet only", i+1, notSupportedValue)
			continue
		}
		if pool.Subnet != "" {
			pfx, err := netip.ParsePrefix(pool.Subnet)
			if err != nil {
				return out, &Error{Key: key + "ipam.config", Message: fmt.Sprintf("subnet %q is not a CIDR prefix such as 172.28.0.0/16", pool.Subnet)}
			}
			out.Subnet = pfx.Masked().String()
		}
		for _, k := range setFields(pool, map[string]bool{"subnet": true}) {
			t.warn("", key+"ipam.config", "%s %s: Drover picks the gateway and range in the subnet", k, notSupported)
		}
	}
	return out, nil
}

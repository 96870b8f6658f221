package server

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"

	"github.com/drover-org/drover/api"
)

// leaseSubnet picks the first /24 of pool that no lease holds.
func leaseSubnet(pool string, leased map[string]string) (subnet, gateway string, err error) {
	p, err := netip.ParsePrefix(pool)
	if err != nil || !p.Addr().Is4() || p.Bits() > 24 {
		return "", "", fmt.Errorf("address pool %q: want an IPv4 prefix of /24 or larger", pool)
	}
	p = p.Masked()
	a := p.Addr().As4()
	count := 1 << (24 - p.Bits())
	for i := 0; i < count; i++ {
		b := a
		v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8
		v += uint32(i) << 8
		b = [4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), 0}
		cand := netip.PrefixFrom(netip.AddrFrom4(b), 24)
		sn := cand.String()
		taken := false
		for other := range leased {
			if op, err := netip.ParsePrefix(other); err == nil && op.Overlaps(cand) {
				taken = true
				break
			}
		}
		if taken {
			continue
		}
		gw := netip.AddrFrom4([4]byte{b[0], b[1], b[2], 1}).String()
		return sn, gw, nil
	}
	return "", "", api.Errorf(api.ErrUnavailable, "address pool %s is exhausted: all %d subnets are leased", pool, count)
}

// bridgeName derives a Linux bridge name (at most 15 characters) from a
// network's identity.
func bridgeName(stack, network string) string {
	sum := sha256.Sum256([]byte(stack + "/" + network))
	return "drv-" + hex.EncodeToString(sum[:])[:11]
}

// fullNetworkName is Compose's name for a project's network.
func fullNetworkName(stack, network string) string { return stack + "_" + network }

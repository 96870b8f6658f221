package server

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"

	"github.com/drover-org/drover/api"
)

// leaseSubnet picks the first /bits of pool that no lease holds.
func leaseSubnet(pool string, bits int, leased map[string]string) (subnet, gateway string, err error) {
	if bits == 0 {
		bits = 24
	}
	p, err := netip.ParsePrefix(pool)
	if err != nil || !p.Addr().Is4() || p.Bits() > bits {
		return "", "", fmt.Errorf("address pool %q: want an IPv4 prefix of /%d or larger", pool, bits)
	}
	if bits < 8 || bits > 28 {
		return "", "", fmt.Errorf("network size /%d: want /8 to /28", bits)
	}
	p = p.Masked()
	base := ip4Uint(p.Addr())
	count := 1 << (bits - p.Bits())
	for i := 0; i < count; i++ {
		cand := netip.PrefixFrom(uint4IP(base+uint32(i)<<(32-bits)), bits)
		if _, taken := overlapping(cand, leased); taken {
			continue
		}
		return cand.String(), cand.Addr().Next().String(), nil
	}
	return "", "", api.Errorf(api.ErrUnavailable, "address pool %s is exhausted: all %d subnets of /%d are leased", pool, count, bits)
}

// overlapping finds a lease that overlaps p.
func overlapping(p netip.Prefix, leased map[string]string) (string, bool) {
	for other := range leased {
		if op, err := netip.ParsePrefix(other); err == nil && op.Overlaps(p) {
			return other, true
		}
	}
	return "", false
}

func ip4Uint(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func uint4IP(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// bridgeName derives a Linux bridge name (at most 15 characters) from a
// network's identity.
func bridgeName(stack, network string) string {
	sum := sha256.Sum256([]byte(stack + "/" + network))
	return "drv-" + hex.EncodeToString(sum[:])[:11]
}

// fullNetworkName is Compose's name for a project's network.
func fullNetworkName(stack, network string) string { return stack + "_" + network }

// DefaultAddressPool6 is where dual-stack networks' /64s come from.
const DefaultAddressPool6 = "fd9d:6c6f:7665::/48"

// leaseSubnet6 picks the first /64 of an IPv6 pool (a /48 to /64) that no
// lease holds; the gateway is its ::1.
func leaseSubnet6(pool string, leased map[string]string) (subnet, gateway string, err error) {
	p, err := netip.ParsePrefix(pool)
	if err != nil || !p.Addr().Is6() || p.Addr().Is4In6() || p.Bits() > 64 || p.Bits() < 48 {
		return "", "", fmt.Errorf("IPv6 address pool %q: want an IPv6 prefix from /48 to /64", pool)
	}
	p = p.Masked()
	count := 1 << (64 - p.Bits())
	base := p.Addr().As16()
	for i := 0; i < count; i++ {
		b := base
		// The /64 index goes in bytes 6-7 (what the pool leaves free).
		v := uint16(b[6])<<8 | uint16(b[7]) + uint16(i)
		b[6], b[7] = byte(v>>8), byte(v)
		cand := netip.PrefixFrom(netip.AddrFrom16(b), 64)
		if _, taken := overlapping(cand, leased); taken {
			continue
		}
		gw := b
		gw[15] = 1
		return cand.String(), netip.AddrFrom16(gw).String(), nil
	}
	return "", "", api.Errorf(api.ErrUnavailable, "IPv6 address pool %s is exhausted", pool)
}

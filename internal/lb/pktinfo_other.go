//go:build !linux

package lb

import "net"

// Elsewhere than Linux, replies leave from whatever address routing picks.

var oobSize = 0

func enablePktinfo(*net.UDPConn) int { return 0 }

func replyOOB(int, []byte) []byte { return nil }

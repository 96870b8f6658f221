// Command udpecho answers each UDP datagram on a port with "pong <data>".
// Tests build it statically into their busybox image, whose busybox has no
// UDP server applet.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
)

func main() {
	port := flag.Int("p", 9000, "UDP port to listen on")
	flag.Parse()
	c, err := net.ListenPacket("udp", fmt.Sprintf(":%d", *port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "udpecho:", err)
		os.Exit(1)
	}
	fmt.Println("udpecho listening on", *port)
	buf := make([]byte, 2048)
	for {
		n, addr, err := c.ReadFrom(buf)
		if err != nil {
			fmt.Fprintln(os.Stderr, "udpecho:", err)
			os.Exit(1)
		}
		_, _ = c.WriteTo(append([]byte("pong "), buf[:n]...), addr)
	}
}

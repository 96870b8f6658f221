package mesh

import (
	"bytes"
	"io"
	"os/exec"
	"strings"
)

var execCommand = exec.Command

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func trimSpace(b []byte) []byte { return bytes.TrimSpace(b) }

func splitNUL(b []byte) []string { return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00") }

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

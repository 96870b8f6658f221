package api

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// ExecRequest is a process to run in a task's container (`drover exec`).
type ExecRequest struct {
	Cmd         []string `json:"cmd"`
	Env         []string `json:"env,omitempty"`
	User        string   `json:"user,omitempty"`
	WorkingDir  string   `json:"workingDir,omitempty"`
	Tty         bool     `json:"tty,omitempty"`
	Interactive bool     `json:"interactive,omitempty"` // forward stdin
}

// ContainerStats is a task's resource usage.
type ContainerStats struct {
	Task        string    `json:"task"`
	Name        string    `json:"name"`
	CPUNanos    uint64    `json:"cpuNanos"`
	MemoryBytes uint64    `json:"memoryBytes"`
	MemoryLimit uint64    `json:"memoryLimit"`
	PIDs        uint64    `json:"pids"`
	NetRxBytes  uint64    `json:"netRxBytes"`
	NetTxBytes  uint64    `json:"netTxBytes"`
	BlockRead   uint64    `json:"blockRead"`
	BlockWrite  uint64    `json:"blockWrite"`
	Time        time.Time `json:"time"`
}

// ContainerProcess is one process of a container (`drover top`).
type ContainerProcess struct {
	PID     int    `json:"pid"`
	PPID    int    `json:"ppid"`
	User    string `json:"user"`
	Command string `json:"command"`
}

// Event is one thing that happened to a stack, service, task or node.
type Event struct {
	Time    time.Time         `json:"time"`
	Type    string            `json:"type"`   // stack, service, container, node
	Action  string            `json:"action"` // create, start, die, health_status, destroy, ...
	ID      string            `json:"id"`
	Stack   string            `json:"stack,omitempty"`
	Service string            `json:"service,omitempty"`
	Name    string            `json:"name,omitempty"`
	Attrs   map[string]string `json:"attributes,omitempty"`
}

// Frame kinds of the exec stream. After the HTTP upgrade both sides send
// frames: a kind byte, a big-endian uint32 length, then the payload.
const (
	FrameStdin  byte = 0 // client -> server; an empty payload closes stdin
	FrameStdout byte = 1
	FrameStderr byte = 2
	FrameExit   byte = 3 // server -> client; payload: decimal exit code
	FrameResize byte = 4 // client -> server; payload: width, height as uint16 BE
	FrameError  byte = 5 // server -> client; payload: message
)

// MaxFrame bounds a frame's payload.
const MaxFrame = 1 << 20

// WriteFrame writes one frame.
func WriteFrame(w io.Writer, kind byte, payload []byte) error {
	if len(payload) > MaxFrame {
		return fmt.Errorf("frame of %d bytes is larger than %d", len(payload), MaxFrame)
	}
	var hdr [5]byte
	hdr[0] = kind
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// ReadFrame reads one frame.
func ReadFrame(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > MaxFrame {
		return 0, nil, errors.New("exec stream: frame too large")
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	return hdr[0], p, nil
}

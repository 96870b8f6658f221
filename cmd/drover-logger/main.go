// Command drover-logger writes one container's output to its log file. The
// runc shim starts it (containerd's binary:// log URI) as
// `drover-logger shim-logger PATH`. It is a small binary of its own so that
// each container's logger starts fast and stays small; `drover shim-logger`
// does the same when it is missing.
package main

import (
	"fmt"
	"os"

	"github.com/drover-org/drover/internal/logs"
)

func main() {
	if len(os.Args) != 3 || os.Args[1] != "shim-logger" {
		fmt.Fprintln(os.Stderr, "usage: drover-logger shim-logger PATH (started by containerd's shim)")
		os.Exit(2)
	}
	if err := logs.RunShimLogger(os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "drover-logger:", err)
		os.Exit(1)
	}
}

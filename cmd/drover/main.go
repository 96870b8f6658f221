// Command drover is Drover's one binary: the server (control plane), the
// agent, and the Compose-style CLI. This file only parses flags and wires
// the packages together.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/drover-org/drover/internal/cli"
	"github.com/drover-org/drover/internal/logs"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// composeWarnings prints compose-go's warnings (unset variables, obsolete
// keys) the way Drover prints its own.
type composeWarnings struct{}

func (composeWarnings) Format(e *logrus.Entry) ([]byte, error) {
	if strings.Contains(e.Message, "the attribute `version` is obsolete") {
		// Drover warns of it itself, with its line: one warning a problem.
		return nil, nil
	}
	return []byte("WARN " + e.Message + "\n"), nil
}

func main() {
	logrus.SetFormatter(composeWarnings{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, let a second one end the process at once.
		<-ctx.Done()
		stop()
	}()
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		code, passOn := cli.ExitCode(err)
		if !passOn {
			// Commands that pass on a container's exit code print nothing.
			fmt.Fprintln(os.Stderr, "drover:", strings.Join(strings.Fields(err.Error()), " "))
		}
		os.Exit(code)
	}
}

func newRoot() *cobra.Command {
	g := &cli.Globals{Version: version, Out: os.Stdout, Err: os.Stderr}
	root := &cobra.Command{
		Use:           "drover",
		Short:         "Drover runs Compose applications on one host or a cluster of hosts",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cli.AddGlobalFlags(root, g)
	root.AddCommand(cli.Commands(g)...)
	root.AddCommand(serverCommand(), agentCommand(), shimLoggerCommand(), meshCommand())
	return root
}

// shimLoggerCommand is what containerd's shim runs to write a container's
// output to its log file (binary:// log URI); users never call it.
func shimLoggerCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "shim-logger PATH",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return logs.RunShimLogger(args[0])
		},
	}
}

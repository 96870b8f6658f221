package cli

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func execCommand(g *Globals) *cobra.Command {
	var noTTY, detach bool
	var env []string
	var user, workdir string
	var index int
	cmd := &cobra.Command{
		Use:   "exec [flags] SERVICE COMMAND [ARG...]",
		Short: "Run a command in a running container of a service",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := g.target(cmd.Context())
			if err != nil {
				return err
			}
			task, err := t.running(cmd.Context(), args[0], index)
			if err != nil {
				return err
			}
			tty := !noTTY && term.IsTerminal(int(os.Stdin.Fd())) && term.IsTerminal(int(os.Stdout.Fd()))
			req := api.ExecRequest{Cmd: args[1:], Env: env, User: user, WorkingDir: workdir, Tty: tty, Interactive: !detach}
			code, err := runExecStream(cmd.Context(), t.c, task.ID, req, os.Stdin, g.Out, g.Err)
			if err != nil {
				return err
			}
			if code != 0 {
				return exitCode(code)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false)
	f.BoolVarP(&noTTY, "no-TTY", "T", false, "do not allocate a terminal")
	f.BoolVarP(&detach, "detach", "d", false, "do not forward standard input")
	f.StringArrayVarP(&env, "env", "e", nil, "set an environment variable (KEY=VALUE)")
	f.StringVarP(&user, "user", "u", "", "run as this user")
	f.StringVarP(&workdir, "workdir", "w", "", "working directory")
	f.IntVar(&index, "index", 0, "replica to run in (default 1)")
	return cmd
}

// runExecStream drives an exec: stdin and terminal sizes go up, output comes
// down, and the exit code ends it.
func runExecStream(ctx context.Context, c *api.Client, id string, req api.ExecRequest, in *os.File, out, errOut io.Writer) (int, error) {
	conn, br, err := c.Exec(ctx, id, req)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	send := make(chan [2][]byte, 16)
	go func() {
		for f := range send {
			if api.WriteFrame(conn, f[0][0], f[1]) != nil {
				return
			}
		}
	}()
	if req.Tty {
		fd := int(in.Fd())
		if old, err := term.MakeRaw(fd); err == nil {
			defer term.Restore(fd, old)
		}
		sendSize := func() {
			if w, h, err := term.GetSize(int(os.Stdout.Fd())); err == nil {
				var b [4]byte
				binary.BigEndian.PutUint16(b[0:], uint16(w))
				binary.BigEndian.PutUint16(b[2:], uint16(h))
				send <- [2][]byte{{api.FrameResize}, b[:]}
			}
		}
		sendSize()
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		go func() {
			for range winch {
				sendSize()
			}
		}()
	}
	if req.Interactive {
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := in.Read(buf)
				if n > 0 {
					send <- [2][]byte{{api.FrameStdin}, append([]byte(nil), buf[:n]...)}
				}
				if err != nil {
					send <- [2][]byte{{api.FrameStdin}, nil}
					return
				}
			}
		}()
	}
	for {
		kind, p, err := api.ReadFrame(br)
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			return 0, fmt.Errorf("exec: connection lost: %v", err)
		}
		switch kind {
		case api.FrameStdout:
			_, _ = out.Write(p)
		case api.FrameStderr:
			_, _ = errOut.Write(p)
		case api.FrameError:
			return 0, errors.New("exec: " + string(p))
		case api.FrameExit:
			code, _ := strconv.Atoi(string(p))
			return code, nil
		}
	}
}

func runCommand(g *Globals) *cobra.Command {
	var rm, noDeps, detach bool
	var env []string
	var entrypoint string
	cmd := &cobra.Command{
		Use:   "run [flags] SERVICE [COMMAND] [ARG...]",
		Short: "Run a one-off container of a service",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			res, err := g.LoadProject(ctx)
			if err != nil {
				return err
			}
			var spec *api.ServiceSpec
			for i := range res.Spec.Services {
				if res.Spec.Services[i].Name == args[0] {
					spec = &res.Spec.Services[i]
				}
			}
			if spec == nil {
				return fmt.Errorf("no such service: %s", args[0])
			}
			c, err := g.Client()
			if err != nil {
				return err
			}
			if _, err := c.Stack(ctx, res.Spec.Name); errors.Is(err, api.ErrNotFound) {
				// As Compose does, start what the service depends on: here,
				// the project with every service stopped but those.
				if _, err := c.Deploy(ctx, res.Spec, api.DeployOptions{NoStart: true}); err != nil {
					return err
				}
				if !noDeps {
					for _, d := range spec.DependsOn {
						if _, err := c.ServiceOp(ctx, res.Spec.Name, d.Service, "start", nil); err != nil {
							return err
						}
					}
				}
			}
			req := api.RunRequest{Service: args[0], Env: env, NoDeps: noDeps, Spec: spec}
			if len(args) > 1 {
				req.Command = args[1:]
			}
			if cmd.Flags().Changed("entrypoint") {
				req.Entrypoint = []string{}
				if entrypoint != "" {
					req.Entrypoint = []string{entrypoint}
				}
			}
			sv, err := c.RunOneOff(ctx, res.Spec.Name, req)
			if err != nil {
				return err
			}
			t := target{c: c, project: res.Spec.Name}
			task, err := waitOneOff(ctx, t, sv.Spec.Name, func(tk api.Task) bool {
				return tk.Status.State != api.StatePending && tk.Status.State != api.StatePreparing
			})
			if err != nil {
				return err
			}
			if task.Status.State == api.StateFailed {
				return fmt.Errorf("run %s: %s", args[0], task.Status.Message)
			}
			if detach {
				fmt.Fprintln(g.Out, task.Name())
				return nil
			}
			rc, err := c.TaskLogs(ctx, task.ID, api.LogOptions{Follow: true, Tail: -1})
			if err == nil {
				_ = readEntries(rc, func(e api.LogEntry) {
					if e.Stream == "stderr" {
						fmt.Fprintln(g.Err, e.Line)
					} else {
						fmt.Fprintln(g.Out, e.Line)
					}
				})
				rc.Close()
			}
			task, err = waitOneOff(ctx, t, sv.Spec.Name, func(tk api.Task) bool { return tk.Status.Terminal() })
			if err != nil {
				return err
			}
			if rm {
				dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				_, _ = c.ServiceOp(dctx, res.Spec.Name, sv.Spec.Name, "rm", map[string][]string{"force": {"true"}})
			}
			if task.Status.ExitCode != 0 {
				return exitCode(task.Status.ExitCode)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false)
	f.BoolVar(&rm, "rm", false, "remove the container when it exits")
	f.BoolVar(&noDeps, "no-deps", false, "do not start the services it depends on")
	f.BoolVarP(&detach, "detach", "d", false, "run in the background and print the container's name")
	f.StringArrayVarP(&env, "env", "e", nil, "set an environment variable (KEY=VALUE)")
	f.StringVar(&entrypoint, "entrypoint", "", "override the image's entrypoint")
	return cmd
}

func waitOneOff(ctx context.Context, t target, service string, cond func(api.Task) bool) (api.Task, error) {
	for {
		tasks, err := t.c.Tasks(ctx, t.project)
		if err != nil {
			return api.Task{}, err
		}
		for _, tk := range tasks {
			if tk.Service == service && tk.DesiredState == api.DesiredRunning && cond(tk) {
				return tk, nil
			}
		}
		select {
		case <-ctx.Done():
			return api.Task{}, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

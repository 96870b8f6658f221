package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/drover-org/drover/api"
	"github.com/spf13/cobra"
)

// defaultRegistry is the registry `drover login` and `drover logout` mean
// when none is named, as with `docker login`.
const defaultRegistry = "docker.io"

func loginCommand(g *Globals) *cobra.Command {
	var user, password string
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "login [REGISTRY] -u USER (-p PASSWORD | --password-stdin)",
		Short: "Log the cluster's nodes in to a registry (default docker.io)",
		Long: "Store a registry login on the servers. A node pulling an image from that\n" +
			"registry gets it over mutual TLS when the registry asks for it; it is\n" +
			"never shown by any listing. The registry is not contacted now.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			registry := defaultRegistry
			if len(args) == 1 {
				registry = args[0]
			}
			if user == "" {
				return errors.New("login: the username is missing: give it with -u USER")
			}
			switch {
			case passwordStdin && password != "":
				return errors.New("login: --password and --password-stdin are exclusive: give one")
			case passwordStdin:
				b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 1<<20))
				if err != nil {
					return fmt.Errorf("login: reading the password from stdin: %w", err)
				}
				password = strings.TrimRight(string(b), "\r\n")
			case password != "":
				fmt.Fprintln(g.Err, "WARNING! Using --password on the command line is insecure (it shows in the process list and shell history). Use --password-stdin.")
			default:
				return errors.New("login: the password is missing: give it with --password-stdin (or -p PASSWORD)")
			}
			if password == "" {
				return errors.New("login: the password read from stdin is empty")
			}
			c, err := g.Client()
			if err != nil {
				return err
			}
			if err := c.RegistryLogin(cmd.Context(), registry, api.RegistryLogin{Username: user, Password: password}); err != nil {
				return err
			}
			fmt.Fprintf(g.Out, "Login to %s stored\n", registry)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&user, "username", "u", "", "user name")
	f.StringVarP(&password, "password", "p", "", "password or token (insecure: prefer --password-stdin)")
	f.BoolVar(&passwordStdin, "password-stdin", false, "read the password or token from stdin")
	return cmd
}

func logoutCommand(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "logout [REGISTRY]",
		Short: "Remove the cluster's login to a registry (default docker.io)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			registry := defaultRegistry
			if len(args) == 1 {
				registry = args[0]
			}
			c, err := g.Client()
			if err != nil {
				return err
			}
			err = c.RegistryLogout(cmd.Context(), registry)
			if errors.Is(err, api.ErrNotFound) {
				// As `docker logout`: nothing to remove is no failure.
				fmt.Fprintf(g.Out, "Not logged in to %s\n", registry)
				return nil
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(g.Out, "Removed login for %s\n", registry)
			return nil
		},
	}
}

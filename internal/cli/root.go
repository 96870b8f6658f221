package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/compose"
	"github.com/drover-org/drover/internal/pki"
	"github.com/spf13/cobra"
)

// Globals are the flags every client command shares.
type Globals struct {
	Files       []string
	ProjectName string
	ProjectDir  string
	Profiles    []string
	EnvFiles    []string
	Host        string
	Version     string
	Out, Err    io.Writer
}

// AddGlobalFlags registers the shared flags on the root command.
func AddGlobalFlags(cmd *cobra.Command, g *Globals) {
	// Root-level flags, parsed before the subcommand (TraverseChildren), as
	// in Docker Compose: `drover -f FILE logs -f` reads FILE and follows.
	cmd.TraverseChildren = true
	f := cmd.Flags()
	f.StringArrayVarP(&g.Files, "file", "f", nil, "Compose configuration file (repeatable)")
	f.StringVarP(&g.ProjectName, "project-name", "p", "", "project name (default: the project directory's name)")
	f.StringVar(&g.ProjectDir, "project-directory", "", "project directory (default: the first file's directory)")
	f.StringArrayVar(&g.Profiles, "profile", nil, "profile to enable (repeatable)")
	f.StringArrayVar(&g.EnvFiles, "env-file", nil, "environment file for interpolation (default: .env)")
	f.StringVarP(&g.Host, "host", "H", "", "server address, unix:///PATH or tcp://HOST:PORT (default: $DROVER_HOST or "+api.DefaultHost+")")
}

// Client returns an API client for the chosen server: its unix socket, or
// its TLS address (tcp://ADDR:PORT) with the API token in DROVER_TOKEN,
// whose CA fingerprint the server's certificate must match.
func (g *Globals) Client() (*api.Client, error) {
	host := g.Host
	if host == "" {
		host = os.Getenv("DROVER_HOST")
	}
	if strings.HasPrefix(host, "tcp://") || strings.HasPrefix(host, "https://") {
		raw := os.Getenv("DROVER_TOKEN")
		if raw == "" {
			return nil, fmt.Errorf("remote access to %s needs an API token in DROVER_TOKEN (create one on the server with `drover client token`)", host)
		}
		tok, err := pki.ParseToken(raw)
		if err != nil {
			return nil, fmt.Errorf("DROVER_TOKEN: %w", err)
		}
		c, err := api.NewClientTLS(host, pki.PinnedClientConfig(tok.Fingerprint))
		if err != nil {
			return nil, err
		}
		c.SetBearer(tok.Secret)
		return c, nil
	}
	return api.NewClient(host)
}

func clientCommand(g *Globals) *cobra.Command {
	cmd := &cobra.Command{Use: "client", Short: "Manage remote access to this server"}
	var name string
	token := &cobra.Command{
		Use:   "token [--name NAME]",
		Short: "Create an API token for the CLI on other machines (DROVER_HOST=tcp://ADDR:PORT DROVER_TOKEN=...)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.Client()
			if err != nil {
				return err
			}
			var t api.JoinToken
			if err := c.Do(cmd.Context(), http.MethodPost, "/v1/cluster/clienttoken?name="+url.QueryEscape(name), nil, &t); err != nil {
				return err
			}
			fmt.Fprintln(g.Out, t.Token)
			fmt.Fprintf(g.Err, "Token ID %s (`drover client revoke %s` withdraws it).\nUse it with: DROVER_HOST=tcp://%s DROVER_TOKEN=%s drover ps\n", t.ID, t.ID, t.Advertise, t.Token)
			return nil
		},
	}
	token.Flags().StringVar(&name, "name", "", "a name to tell the token by in `drover client ls`")
	cmd.AddCommand(token)
	cmd.AddCommand(&cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the API tokens (IDs and names, never secrets)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.Client()
			if err != nil {
				return err
			}
			var list []api.ClientToken
			if err := c.Do(cmd.Context(), http.MethodGet, "/v1/cluster/clienttokens", nil, &list); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.Out, 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tCREATED\tREVOKED")
			for _, t := range list {
				revoked := ""
				if !t.RevokedAt.IsZero() {
					revoked = t.RevokedAt.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.ID, t.Name, t.CreatedAt.Format(time.RFC3339), revoked)
			}
			return tw.Flush()
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "revoke ID...",
		Short: "Revoke API tokens: clients using them are refused from their next call",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.Client()
			if err != nil {
				return err
			}
			for _, id := range args {
				var t api.ClientToken
				if err := c.Do(cmd.Context(), http.MethodDelete, "/v1/cluster/clienttokens/"+url.PathEscape(id), nil, &t); err != nil {
					return err
				}
				fmt.Fprintf(g.Out, "Revoked API token %s\n", t.ID)
			}
			return nil
		},
	})
	return cmd
}

// LoadProject reads the Compose files.
func (g *Globals) LoadProject(ctx context.Context) (*compose.Result, error) {
	return compose.Load(ctx, compose.Options{
		Files: g.Files, WorkingDir: g.ProjectDir, ProjectName: g.ProjectName,
		Profiles: g.Profiles, EnvFiles: g.EnvFiles, Environ: os.Environ(),
	})
}

// ProjectNameOnly finds the project name for commands that need no more:
// -p when given, otherwise the Compose files' project.
func (g *Globals) ProjectNameOnly(ctx context.Context) (string, error) {
	if g.ProjectName != "" {
		return g.ProjectName, nil
	}
	if v := os.Getenv("COMPOSE_PROJECT_NAME"); v != "" {
		return v, nil
	}
	res, err := g.LoadProject(ctx)
	if err != nil {
		return "", fmt.Errorf("%w (or name the project with -p NAME)", err)
	}
	return res.Spec.Name, nil
}

// Commands returns the client commands.
func Commands(g *Globals) []*cobra.Command {
	return []*cobra.Command{
		upCommand(g), historyCommand(g), rollbackCommand(g), promoteCommand(g), rolloutCommand(g),
		downCommand(g), psCommand(g), logsCommand(g), configCommand(g), buildCommand(g),
		imageCommand(g), versionCommand(g), lsCommand(g),
		execCommand(g), runCommand(g), cpCommand(g),
		serviceOpCommand(g, "start", "Start the services' containers", "start"),
		serviceOpCommand(g, "stop", "Stop the services' containers", "stop"),
		serviceOpCommand(g, "restart", "Replace the services' containers with new ones", "restart"),
		taskActionCommand(g, "pause", "Pause the services' containers", "pause"),
		taskActionCommand(g, "unpause", "Unpause the services' containers", "unpause"),
		taskActionCommand(g, "kill", "Send a signal to the services' containers", "kill"),
		rmCommand(g), scaleCommand(g), topCommand(g), portCommand(g), imagesCommand(g),
		waitCommand(g), eventsCommand(g), statsCommand(g), nodeCommand(g), clientCommand(g),
		loginCommand(g), logoutCommand(g),
	}
}

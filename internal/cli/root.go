package cli

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/compose"
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

// Client returns an API client for the chosen server.
func (g *Globals) Client() (*api.Client, error) {
	host := g.Host
	if host == "" {
		host = os.Getenv("DROVER_HOST")
	}
	return api.NewClient(host)
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
		upCommand(g), downCommand(g), psCommand(g), logsCommand(g), configCommand(g),
		imageCommand(g), versionCommand(g), lsCommand(g),
		execCommand(g), runCommand(g), cpCommand(g),
		serviceOpCommand(g, "start", "Start the services' containers", "start"),
		serviceOpCommand(g, "stop", "Stop the services' containers", "stop"),
		serviceOpCommand(g, "restart", "Replace the services' containers with new ones", "restart"),
		taskActionCommand(g, "pause", "Pause the services' containers", "pause"),
		taskActionCommand(g, "unpause", "Unpause the services' containers", "unpause"),
		taskActionCommand(g, "kill", "Send a signal to the services' containers", "kill"),
		rmCommand(g), scaleCommand(g), topCommand(g), portCommand(g), imagesCommand(g),
		waitCommand(g), eventsCommand(g), statsCommand(g), nodeCommand(g),
	}
}

package build

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// BaseImages lists the images a Dockerfile's FROM lines name (with ARG
// defaults before the first FROM and args applied), leaving out stages of
// the same file, scratch, and names still holding an unset variable. The
// node makes those that the cluster holds ready before the build.
func BaseImages(dockerfile io.Reader, args map[string]string) ([]string, error) {
	res, err := parser.Parse(dockerfile)
	if err != nil {
		return nil, fmt.Errorf("reading the Dockerfile: %w", err)
	}
	vars := map[string]string{}
	stages := map[string]bool{}
	seen := map[string]bool{}
	var out []string
	sawFrom := false
	for _, n := range res.AST.Children {
		switch strings.ToLower(n.Value) {
		case "arg":
			if sawFrom {
				continue
			}
			for a := n.Next; a != nil; a = a.Next {
				k, v, _ := strings.Cut(a.Value, "=")
				vars[k] = strings.Trim(v, `"'`)
			}
		case "from":
			sawFrom = true
			if n.Next == nil {
				continue
			}
			name := os.Expand(n.Next.Value, func(k string) string {
				if v, ok := args[k]; ok {
					return v
				}
				return vars[k]
			})
			lower := strings.ToLower(name)
			if name != "" && lower != "scratch" && !stages[lower] && !seen[name] && !strings.Contains(name, "$") {
				seen[name] = true
				out = append(out, name)
			}
			// A stage's name counts from the next FROM on.
			if as := n.Next.Next; as != nil && strings.EqualFold(as.Value, "as") && as.Next != nil {
				stages[strings.ToLower(as.Next.Value)] = true
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/moat-registry/moat/config"
	"github.com/spf13/cobra"
)

func (a *app) newConfigCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Write and check configuration files (no server needed)",
		Long: `Write and check the configuration file of moat serve --config. The reference of
every key is docs/configuration.md, generated from the same source as
moat config example.`,
	}
	cmd.AddCommand(a.newConfigExampleCommand(), a.newConfigValidateCommand())
	return cmd
}

func (a *app) newConfigExampleCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "example",
		Short: "Print a configuration file that sets every key to its default, with each key's documentation",
		Example: `  moat config example > moat.yaml
  moat serve --config moat.yaml`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := a.stdout.Write(config.Example())
			return err
		},
	}
}

// configReport is one file's result in -o json.
type configReport struct {
	File     string           `json:"file"`
	Valid    bool             `json:"valid"`
	Problems []config.Problem `json:"problems"`
}

func (a *app) newConfigValidateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check configuration files as moat serve would load them, listing every problem",
		Long: `Check configuration files as moat serve --config would load them: the YAML over
the defaults, then the MOAT_* environment variables of this shell. Prints
"FILE: ok", or every problem on a line of its own with its line number and key,
and exits non-zero.`,
		Example: `  moat config validate /etc/moat/moat.yaml
  MOAT_LOG_LEVEL=debug moat config validate moat.yaml`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, files []string) error {
			environ := a.configEnviron()
			var reports []configReport
			bad := 0
			for _, file := range files {
				b, err := os.ReadFile(file)
				if err != nil {
					return err
				}
				_, problems := config.Check(b, environ)
				if problems == nil {
					problems = []config.Problem{}
				}
				reports = append(reports, configReport{File: file, Valid: len(problems) == 0, Problems: problems})
				bad += len(problems)
			}
			if a.jsonOutput() {
				if err := a.printValue(reports); err != nil {
					return err
				}
			} else {
				for _, r := range reports {
					if r.Valid {
						fmt.Fprintf(a.stdout, "%s: ok\n", r.File)
					}
					for _, p := range r.Problems {
						sep := ": "
						if p.Line > 0 {
							sep = ":"
						}
						fmt.Fprintf(a.stdout, "%s%s%s\n", r.File, sep, cell(p.String()))
					}
				}
			}
			switch bad {
			case 0:
				return nil
			case 1:
				return fmt.Errorf("1 problem in the configuration")
			}
			return fmt.Errorf("%s problems in the configuration", strconv.Itoa(bad))
		},
	}
}

// configEnviron is the MOAT_* variables of the configuration keys, as
// KEY=VALUE (an empty variable counts as unset).
func (a *app) configEnviron() []string {
	var out []string
	for _, k := range config.Reference {
		if k.Env == "" {
			continue
		}
		if v := a.getenv(k.Env); v != "" {
			out = append(out, k.Env+"="+v)
		}
	}
	return out
}

package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"text/tabwriter"

	"github.com/moat-registry/moat/server"
	"github.com/spf13/cobra"
)

// versionInfo is what `moat version` reports about the binary.
type versionInfo struct {
	Version   string `json:"version"`
	GoVersion string `json:"goVersion"`
	Revision  string `json:"revision,omitempty"`
	Time      string `json:"time,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
}

// buildVersion reads the version (server.VersionString) and the build
// information Go records in the binary: the toolchain, and the VCS
// revision and commit time when built from a checkout.
func buildVersion() versionInfo {
	v := versionInfo{Version: server.VersionString(), GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.GoVersion != "" {
			v.GoVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Revision = s.Value
			case "vcs.time":
				v.Time = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	return v
}

func (a *app) newVersionCommand() *cobra.Command {
	var short bool
	cmd := &cobra.Command{
		Use:   "version [--short]",
		Short: "Print the version of moat, and how it was built",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			v := buildVersion()
			switch {
			case a.jsonOutput():
				return a.printValue(v)
			case short:
				_, err := fmt.Fprintln(a.stdout, v.Version)
				return err
			}
			rev := v.Revision
			if rev == "" {
				rev = "unknown (not built from a git checkout)"
			} else if v.Modified {
				rev += " (modified)"
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "version:\t%s\n", cell(v.Version))
			fmt.Fprintf(tw, "go:\t%s\n", v.GoVersion)
			fmt.Fprintf(tw, "revision:\t%s\n", cell(rev))
			if v.Time != "" {
				fmt.Fprintf(tw, "commit time:\t%s\n", cell(v.Time))
			}
			fmt.Fprintf(tw, "platform:\t%s/%s\n", v.OS, v.Arch)
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&short, "short", false, "print only the version")
	return cmd
}

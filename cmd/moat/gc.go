package main

import (
	"net/http"
	"strconv"
	"time"

	"github.com/moat-registry/moat/storage"
	"github.com/spf13/cobra"
)

func (a *app) newGCCommand() *cobra.Command {
	var grace string
	var untagged, dryRun, force bool
	cmd := &cobra.Command{
		Use:   "gc [--grace-period 1h] [--untagged] [--dry-run]",
		Short: "Collect garbage now: delete blobs nothing references, and report what was reclaimed",
		Long: `Run one online garbage collection and print its report. Pushes go on while it
runs. Blobs uploaded or linked within the grace period are kept, so a push that
has sent its layers but not yet its manifest loses nothing. --untagged also
deletes manifests that no tag names and nothing references. --dry-run counts
without deleting. The server also collects on its own (config gc.interval).`,
		Example: `  moat gc --dry-run
  moat gc --untagged --grace-period 2h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body := map[string]any{"untagged": untagged, "dryRun": dryRun, "force": force}
			if cmd.Flags().Changed("grace-period") {
				body["gracePeriod"] = grace
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			// A collection of a large registry can outlast the client's
			// usual timeout; the server stops when the command does.
			long := *c
			long.http = &http.Client{Transport: c.http.Transport}
			var rep storage.GCReport
			raw, err := long.send(cmd.Context(), call{method: http.MethodPost, path: "/gc", body: body}, &rep)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(raw)
			}
			return a.printGCReport(rep)
		},
	}
	f := cmd.Flags()
	f.StringVar(&grace, "grace-period", "1h", "keep blobs uploaded or linked this recently (e.g. 30m, 2h, 1d)")
	f.BoolVar(&untagged, "untagged", false, "also delete manifests no tag names and nothing references")
	f.BoolVar(&dryRun, "dry-run", false, "report what would be deleted, delete nothing")
	f.BoolVar(&force, "force", false, "allow a grace period under 1m (it may delete what a push in flight is about to reference)")
	return cmd
}

func (a *app) printGCReport(rep storage.GCReport) error {
	t := newTable(a.stdout, "PROPERTY", "VALUE")
	t.row("dryRun", yesNo(rep.DryRun))
	t.row("manifestsDeleted", strconv.Itoa(rep.ManifestsDeleted))
	t.row("linksRemoved", strconv.Itoa(rep.LinksRemoved))
	t.row("blobsDeleted", strconv.Itoa(rep.BlobsDeleted))
	t.row("bytesReclaimed", humanBytes(rep.BytesReclaimed))
	t.row("blobsKept", strconv.Itoa(rep.BlobsKept))
	t.row("duration", rep.Finished.Sub(rep.Started).Round(time.Millisecond).String())
	return t.flush()
}

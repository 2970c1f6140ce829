// Command moat-bench is moat's load tool. It speaks the OCI distribution
// API over HTTP, verifies every digest it pulls and counts errors.
//
//	moat-bench compare [flags]         moat and CNCF Distribution side by side, with ceilings
//	moat-bench run --url URL [flags]   the load scenarios against any registry
//	moat-bench profile [flags]         moat in a child process with CPU profiles per scenario
//	moat-bench replicas [flags]        moat scaled out (PostgreSQL + S3) vs one replica
//	moat-bench soak --url URL [flags]  mixed push/pull/delete with GC running, then verify
//
// `make bench` runs the full compare and `make bench-quick` a smoke one.
// Hidden verbs: ceiling-server (the ceilings' plain net/http server) and
// serve-moat (moat's server in-process with a profiling listener), both
// started by the tool itself.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage:
  moat-bench compare [flags]        moat vs CNCF Distribution v3.1.2, interleaved, with ceilings
  moat-bench run --url URL [flags]  the load scenarios against any registry
  moat-bench profile [flags]        CPU profiles of moat per scenario phase
  moat-bench replicas [flags]       3 replicas on PostgreSQL and S3 vs 1 on bbolt, and settings propagation
  moat-bench soak --url URL [flags] 64 clients pushing, pulling, deleting while GC runs; then every digest verified

Run "moat-bench <verb> -h" for the flags.
`

func main() {
	if err := dispatch(os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "moat-bench:", err)
		}
		os.Exit(1)
	}
}

func dispatch(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return flag.ErrHelp
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "compare":
		return runCompare(ctx, args[1:])
	case "run":
		return runAgainst(ctx, args[1:])
	case "profile":
		return runProfile(ctx, args[1:])
	case "replicas":
		return runReplicas(ctx, args[1:])
	case "soak":
		return runSoakVerb(ctx, args[1:])
	case "ceiling-server":
		stop() // the server handles its own signals
		return ceilingServer(args[1:])
	case "serve-moat":
		stop()
		return serveMoat(args[1:])
	case "-h", "-help", "--help", "help":
		fmt.Fprint(os.Stdout, usage)
		return nil
	}
	fmt.Fprint(os.Stderr, usage)
	return fmt.Errorf("unknown verb %q", args[0])
}

// runAgainst is `moat-bench run`: the load scenarios against one registry.
func runAgainst(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	of := bindOptions(fs)
	base := fs.String("url", "", "registry base URL, e.g. http://127.0.0.1:5000")
	name := fs.String("name", "registry", "name of the registry in the table")
	user := fs.String("username", "", "username (Docker token flow or Basic)")
	pass := fs.String("password", "", "password")
	out := fs.String("out", "", "JSON file of every figure (none by default)")
	workdir := fs.String("workdir", "", "where the large blob's temp file goes (default $TMPDIR)")
	seeded := fs.Bool("seeded", false, "the small images are there already (an earlier run with the same --n pushed them): pull-small and head-manifest push nothing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *base == "" {
		return errors.New("--url is required")
	}
	opts, err := of.options()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(*workdir, "moat-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bench, err := NewBench(opts, dir)
	if err != nil {
		return err
	}
	defer bench.Close()
	c, err := NewClient(*base, max(opts.Concurrency, 16), *user, *pass)
	if err != nil {
		return err
	}
	if err := c.Ping(ctx); err != nil {
		return err
	}
	suite := &Suite{Bench: bench, Targets: []*Target{{Name: *name, Client: c, smallSeeded: *seeded}}, Workdir: dir, Progress: os.Stderr}
	rep := newReport(opts, suite.Run(ctx))
	rep.Print(os.Stdout, []string{*name})
	if *out != "" {
		if err := rep.WriteJSON(*out); err != nil {
			return err
		}
	}
	if n := rep.ErrorCount(); n > 0 {
		return fmt.Errorf("%d operations failed", n)
	}
	return nil
}

package main

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/moat-registry/moat/auth"
	"github.com/spf13/cobra"
)

// taskPath is /services/{service}/tasks[/{task}[/…]].
func taskPath(service string, rest ...string) string {
	return resourcePath(servicesPath, append([]string{service, "tasks"}, rest...)...)
}

func (a *app) newTaskCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "task",
		Aliases: []string{"tasks"},
		Short:   "Manage the copy and purge tasks of a tasks service instance",
		Long: `Manage tasks: jobs owned by a service instance of type tasks, run inside moat
under the instance's system-assigned identity (tasks-<instance>), on demand
(moat task run) or on a cron schedule. That identity needs roles: Push on a copy
task's target, Pull on its source, Delete on a purge task's repository.

  copy   copies an image (every platform, and its referrers); a reference
         without a registry host (app:1) is this registry, another registry is
         reached through workload identity federation.
  purge  deletes the tags of a repository older than --older-than whose name
         matches --filter, keeping the --keep newest, like acr purge.`,
		Example: `  moat service create nightly --type tasks --identity system
  moat role assign --assignee tasks-nightly --role AcrPush
  moat task create nightly mirror --type copy --source app:1 --target mirror/app:1 --schedule "0 3 * * *"
  moat role assign --assignee tasks-nightly --role AcrDelete --scope repositories/app
  moat task create nightly prune --type purge --repository app --older-than 7d --keep 5 --untagged
  moat task run nightly prune`,
	}
	cmd.AddCommand(
		a.newTaskCreateCommand(),
		a.newTaskUpdateCommand(),
		a.newTaskRunCommand(),
		a.newTaskListCommand(),
		a.newTaskShowCommand(),
		a.newTaskDeleteCommand(),
	)
	return cmd
}

func (a *app) printTasks(tasks []auth.Task) error {
	t := newTable(a.stdout, "NAME", "TYPE", "SCHEDULE", "ENABLED", "WHAT", "LAST RUN", "STATUS", "ERROR")
	for _, task := range tasks {
		var started, status, errMsg string
		if r := task.LastRun; r != nil {
			started, status, errMsg = when(r.Started), r.Status, oneLine(r.Error)
		}
		t.row(task.Name, task.Type, task.Schedule, yesNo(task.Enabled), taskWhat(task), started, status, errMsg)
	}
	return t.flush()
}

// taskWhat summarizes what a task does.
func taskWhat(t auth.Task) string {
	switch {
	case t.Copy != nil:
		s := t.Copy.Source + " -> " + t.Copy.Target
		if t.Copy.PlainHTTP {
			s += " (plain HTTP)"
		}
		return s
	case t.Purge != nil:
		p := t.Purge
		s := p.Repository + ": tags older than " + p.OlderThan
		if p.Filter != "" {
			s += " matching " + p.Filter
		}
		if p.Keep > 0 {
			s += ", keep " + strconv.Itoa(p.Keep)
		}
		if p.Untagged {
			s += ", and untagged manifests"
		}
		return s
	}
	return ""
}

// taskFlags are the definition flags of task create and update.
type taskFlags struct {
	typ, schedule, enabled string
	source, target         string
	plainHTTP              bool
	repository, olderThan  string
	filter                 string
	keep                   int
	untagged               bool
}

var (
	copyFlags  = []string{"source", "target", "plain-http"}
	purgeFlags = []string{"repository", "older-than", "filter", "keep", "untagged"}
)

func (f *taskFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.typ, "type", "", "copy or purge")
	fs.StringVar(&f.schedule, "schedule", "", `cron schedule in UTC, 5 fields ("0 3 * * *") or @daily; "" for on demand only`)
	fs.StringVar(&f.enabled, "enabled", "", "true or false: whether the schedule runs it")
	fs.StringVar(&f.source, "source", "", "copy: image to copy, [REGISTRY/]REPOSITORY:TAG or …@DIGEST (no registry: this one)")
	fs.StringVar(&f.target, "target", "", "copy: where to copy it, [REGISTRY/]REPOSITORY:TAG")
	fs.BoolVar(&f.plainHTTP, "plain-http", false, "copy: reach the other registry over plain HTTP")
	fs.StringVar(&f.repository, "repository", "", "purge: repository whose tags are purged")
	fs.StringVar(&f.olderThan, "older-than", "", "purge: age of the tags to delete, e.g. 7d, 12h, or 0 for any")
	fs.StringVar(&f.filter, "filter", "", "purge: regular expression a tag must match as a whole (default: every tag)")
	fs.IntVar(&f.keep, "keep", 0, "purge: of the tags old enough to go, how many of the newest to keep (as acr purge)")
	fs.BoolVar(&f.untagged, "untagged", false, "purge: also delete manifests left without a tag")
	_ = cmd.RegisterFlagCompletionFunc("type", cobra.FixedCompletions([]string{auth.TaskCopy, auth.TaskPurge}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("enabled", cobra.FixedCompletions([]string{"true", "false"}, cobra.ShellCompDirectiveNoFileComp))
}

// apply sets the fields of t that a flag names; changing the type drops
// the other type's definition.
func (f *taskFlags) apply(cmd *cobra.Command, t *auth.Task) error {
	fs := cmd.Flags()
	if fs.Changed("type") {
		typ, err := enumFlag("type", f.typ, auth.TaskCopy, auth.TaskPurge)
		if err != nil {
			return err
		}
		if typ != t.Type {
			t.Type, t.Copy, t.Purge = typ, nil, nil
		}
	}
	if fs.Changed("schedule") {
		t.Schedule = strings.TrimSpace(f.schedule)
	}
	if fs.Changed("enabled") {
		b, err := boolFlag("enabled", f.enabled)
		if err != nil {
			return err
		}
		t.Enabled = b
	}
	for _, group := range []struct {
		typ   string
		flags []string
	}{{auth.TaskCopy, copyFlags}, {auth.TaskPurge, purgeFlags}} {
		for _, name := range group.flags {
			if fs.Changed(name) && t.Type != group.typ {
				if t.Type == "" {
					return fmt.Errorf("--%s applies to %s tasks: give --type %s", name, group.typ, group.typ)
				}
				return fmt.Errorf("--%s applies to %s tasks, and this one is a %s task", name, group.typ, t.Type)
			}
		}
	}
	switch t.Type {
	case auth.TaskCopy:
		if t.Copy == nil {
			t.Copy = &auth.CopyTask{}
		}
		if fs.Changed("source") {
			t.Copy.Source = f.source
		}
		if fs.Changed("target") {
			t.Copy.Target = f.target
		}
		if fs.Changed("plain-http") {
			t.Copy.PlainHTTP = f.plainHTTP
		}
	case auth.TaskPurge:
		if t.Purge == nil {
			t.Purge = &auth.PurgeTask{}
		}
		if fs.Changed("repository") {
			t.Purge.Repository = f.repository
		}
		if fs.Changed("older-than") {
			t.Purge.OlderThan = f.olderThan
		}
		if fs.Changed("filter") {
			t.Purge.Filter = f.filter
		}
		if fs.Changed("keep") {
			if f.keep < 0 {
				return errors.New("--keep must not be negative")
			}
			t.Purge.Keep = f.keep
		}
		if fs.Changed("untagged") {
			t.Purge.Untagged = f.untagged
		}
	}
	return nil
}

// complete checks that a task names what its type needs, before the
// server's own checks.
func complete(t auth.Task) error {
	switch t.Type {
	case "":
		return errors.New("--type copy or --type purge is required")
	case auth.TaskCopy:
		if t.Copy.Source == "" || t.Copy.Target == "" {
			return errors.New("a copy task needs --source and --target")
		}
	case auth.TaskPurge:
		if t.Purge.Repository == "" || t.Purge.OlderThan == "" {
			return errors.New("a purge task needs --repository and --older-than (e.g. 7d)")
		}
	}
	return nil
}

func (a *app) newTaskCreateCommand() *cobra.Command {
	var f taskFlags
	cmd := &cobra.Command{
		Use:   "create SERVICE TASK --type copy|purge [flags]",
		Short: "Create a task of a tasks service instance",
		Example: `  moat task create nightly mirror --type copy --source app:1 --target mirror/app:1
  moat task create nightly prune --type purge --repository app --older-than 7d --keep 5 --schedule "0 3 * * *"`,
		Args: nameArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			t := auth.Task{Name: args[1], Service: args[0], Enabled: true}
			if err := f.apply(cmd, &t); err != nil {
				return err
			}
			if err := complete(t); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			path := taskPath(args[0], args[1])
			if err := mustNotExist(cmd.Context(), c, path, "task "+args[1]+" of service "+args[0]); err != nil {
				return err
			}
			return putAndPrint(cmd.Context(), a, c, call{method: http.MethodPut, path: path, body: t}, a.printTasks)
		},
	}
	f.register(cmd)
	return cmd
}

func (a *app) newTaskUpdateCommand() *cobra.Command {
	var f taskFlags
	cmd := &cobra.Command{
		Use:   "update SERVICE TASK [flags]",
		Short: "Change a task (only what a flag names)",
		Example: `  moat task update nightly prune --keep 10 --schedule "0 4 * * *"
  moat task update nightly prune --schedule ""    # on demand only
  moat task update nightly mirror --enabled false`,
		Args: nameArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !anyChanged(cmd, append([]string{"type", "schedule", "enabled"}, append(copyFlags, purgeFlags...)...)...) {
				return errors.New("task update: nothing to change: give at least one flag (moat task update --help)")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			path := taskPath(args[0], args[1])
			var t auth.Task
			if _, err := c.get(cmd.Context(), path, &t); err != nil {
				return err
			}
			if err := f.apply(cmd, &t); err != nil {
				return err
			}
			if err := complete(t); err != nil {
				return err
			}
			t.LastRun = nil // kept by the server
			return putAndPrint(cmd.Context(), a, c, call{method: http.MethodPut, path: path, body: t}, a.printTasks)
		},
	}
	f.register(cmd)
	return cmd
}

func anyChanged(cmd *cobra.Command, names ...string) bool {
	for _, n := range names {
		if cmd.Flags().Changed(n) {
			return true
		}
	}
	return false
}

func (a *app) newTaskRunCommand() *cobra.Command {
	var noWait bool
	cmd := &cobra.Command{
		Use:   "run SERVICE TASK [--no-wait]",
		Short: "Run a task now and follow it (copies show a progress bar)",
		Long: `Run a task now, as its service instance's identity, and wait for it: a copy
prints the digest it copied, a purge what it deleted. A failed run exits
non-zero with the task's error.`,
		Args: nameArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			k := call{method: http.MethodPost, path: taskPath(args[0], args[1], "run")}
			return a.startAndWait(cmd.Context(), c, k, noWait, "task "+args[0]+"/"+args[1])
		},
	}
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "print the operation and return at once (follow it with moat operation show ID --wait)")
	return cmd
}

func (a *app) newTaskListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list SERVICE",
		Short: "List the tasks of a service instance, with their last run",
		Args:  nameArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			tasks, raw, err := list[auth.Task](cmd.Context(), c, taskPath(args[0]), nil)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(raw)
			}
			return a.printTasks(tasks)
		},
	}
}

func (a *app) newTaskShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show SERVICE TASK",
		Short: "Show a task and its last run",
		Args:  nameArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			return putAndPrint(cmd.Context(), a, c, call{method: http.MethodGet, path: taskPath(args[0], args[1])}, a.printTasks)
		},
	}
}

func (a *app) newTaskDeleteCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "delete SERVICE TASK",
		Short: "Delete a task",
		Args:  nameArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			_, err = c.send(cmd.Context(), call{method: http.MethodDelete, path: taskPath(args[0], args[1])}, nil)
			return err
		},
	}
}

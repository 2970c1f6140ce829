package main

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/moat-registry/moat/auth"
	"github.com/spf13/cobra"
)

const scopeMapsPath = "/scope-maps"

// scopeMapActions are the actions a scope map grants on a repository.
var scopeMapActions = []string{"content/read", "content/write", "content/delete", "metadata/read", "metadata/write"}

func (a *app) newScopeMapCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "scope-map",
		Aliases: []string{"scope-maps"},
		Short:   "Manage scope maps: the repository actions a token grants",
	}
	cmd.AddCommand(
		a.newScopeMapEditCommand(true),
		a.newScopeMapEditCommand(false),
		a.deleteCommand(scopeMapsPath, "scope map (no token may use it)"),
		showCommand(a, scopeMapsPath, "scope map", a.printScopeMaps),
		listCommand(a, scopeMapsPath, "scope maps", a.printScopeMaps),
	)
	return cmd
}

func (a *app) printScopeMaps(sms []auth.ScopeMap) error {
	t := newTable(a.stdout, "NAME", "ACTIONS", "DESCRIPTION")
	for _, sm := range sms {
		t.row(sm.Name, strings.Join(sm.Actions, ","), sm.Description)
	}
	return t.flush()
}

// repositoryActions expands --repository R × --actions A into
// repositories/R/A.
func repositoryActions(repos, actions []string) ([]string, error) {
	if len(repos) > 0 && len(actions) == 0 {
		return nil, errors.New("--repository needs --actions (e.g. content/read,content/write)")
	}
	if len(actions) > 0 && len(repos) == 0 {
		return nil, errors.New("--actions needs --repository")
	}
	var out []string
	for _, act := range actions {
		if !slices.Contains(scopeMapActions, act) {
			return nil, fmt.Errorf("--actions %q: expected %s", act, strings.Join(scopeMapActions, ", "))
		}
	}
	for _, r := range repos {
		r = strings.Trim(r, "/")
		if r == "" {
			return nil, errors.New("--repository: empty name")
		}
		for _, act := range actions {
			out = append(out, "repositories/"+r+"/"+act)
		}
	}
	return out, nil
}

// appendNew appends the values of add that list lacks.
func appendNew(list []string, add ...string) []string {
	for _, v := range add {
		if !slices.Contains(list, v) {
			list = append(list, v)
		}
	}
	return list
}

// newScopeMapEditCommand is `scope-map create` or `scope-map update`.
func (a *app) newScopeMapEditCommand(create bool) *cobra.Command {
	var repos, actions, raw, removeRepos, removeRaw []string
	var description string
	cmd := &cobra.Command{
		Use:   "create NAME --repository REPO --actions content/read,...",
		Short: "Create a scope map",
		Example: `  moat scope-map create app-rw --repository app --actions content/read,content/write
  moat scope-map create mixed --action repositories/app/content/read --action repositories/lib/metadata/read`,
		Args: nameArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			add, err := repositoryActions(repos, actions)
			if err != nil {
				return err
			}
			add = appendNew(add, raw...)
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			path := resourcePath(scopeMapsPath, args[0])
			var sm auth.ScopeMap
			if create {
				if len(add) == 0 {
					return errors.New("scope-map create: give --repository with --actions, or --action")
				}
				if err := mustNotExist(ctx, c, path, "scope map "+args[0]); err != nil {
					return err
				}
				sm = auth.ScopeMap{Name: args[0]}
			} else {
				f := cmd.Flags()
				if len(add) == 0 && len(removeRepos) == 0 && len(removeRaw) == 0 && !f.Changed("description") {
					return errors.New("nothing to change: give --repository/--actions, --action, --remove-repository, --remove-action or --description")
				}
				if _, err := c.get(ctx, path, &sm); err != nil {
					return err
				}
			}
			sm.Actions = appendNew(sm.Actions, add...)
			sm.Actions = slices.DeleteFunc(sm.Actions, func(act string) bool {
				if slices.Contains(removeRaw, act) {
					return true
				}
				for _, r := range removeRepos {
					if strings.HasPrefix(act, "repositories/"+strings.Trim(r, "/")+"/") {
						return true
					}
				}
				return false
			})
			if cmd.Flags().Changed("description") {
				sm.Description = description
			}
			return putAndPrint(ctx, a, c, call{method: http.MethodPut, path: path, body: sm}, a.printScopeMaps)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&repos, "repository", nil, "repository name the --actions apply to (repeatable)")
	f.StringSliceVar(&actions, "actions", nil, "comma-separated: "+strings.Join(scopeMapActions, ","))
	f.StringArrayVar(&raw, "action", nil, "a whole action like repositories/app/content/read (repeatable)")
	f.StringVar(&description, "description", "", "free text")
	if !create {
		cmd.Use = "update NAME [--repository REPO --actions ...] [--remove-repository REPO] [--remove-action ACTION]"
		cmd.Short = "Add or remove a scope map's actions, or change its description"
		cmd.Example = `  moat scope-map update app-rw --repository app --actions content/delete
  moat scope-map update app-rw --remove-repository old`
		f.StringArrayVar(&removeRepos, "remove-repository", nil, "drop every action on this repository (repeatable)")
		f.StringArrayVar(&removeRaw, "remove-action", nil, "drop this whole action (repeatable)")
	}
	return cmd
}

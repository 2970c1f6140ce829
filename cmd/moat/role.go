package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/moat-registry/moat/auth"
	"github.com/spf13/cobra"
)

const roleAssignmentsPath = "/role-assignments"

func (a *app) newRoleCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "role",
		Aliases: []string{"roles"},
		Short:   "Manage role assignments (who may pull, push, delete, administer)",
	}
	cmd.AddCommand(a.newRoleAssignCommand(), a.newRoleListCommand(), a.newRoleRemoveCommand(), a.newRoleDefinitionsCommand())
	return cmd
}

func (a *app) printAssignments(ras []auth.RoleAssignment) error {
	t := newTable(a.stdout, "ID", "PRINCIPAL", "ROLE", "SCOPE", "PRINCIPAL ID")
	for _, ra := range ras {
		t.row(ra.ID, ra.Principal, ra.Role, ra.Scope, ra.PrincipalID)
	}
	return t.flush()
}

// newUUID returns a random (version 4) UUID for a role assignment id.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// canonicalRole maps a role name or ACR alias to the built-in name.
func canonicalRole(name string) (string, error) {
	r, ok := auth.LookupRole(name)
	if !ok {
		return "", fmt.Errorf("--role %q: not a built-in role (moat role definitions)", name)
	}
	return r.Name, nil
}

func normalScope(s string) string {
	if s == "" {
		return "/"
	}
	return s
}

func (a *app) newRoleAssignCommand() *cobra.Command {
	var assignee, role, scope, id string
	cmd := &cobra.Command{
		Use:   "assign --assignee NAME --role ROLE [--scope SCOPE]",
		Short: "Give an identity a role at a scope",
		Long: `Give an identity a role at a scope: / (the whole registry; needed for the
admin API roles Reader, Contributor, Owner), repositories/<name> or
repositories/<prefix>/*. Roles: Pull, Push, Delete, ImageSigner, Reader,
Contributor, Owner (or the ACR names AcrPull, AcrPush, AcrDelete, AcrImageSigner).
Assigning the same role at the same scope twice is a no-op.`,
		Example: `  moat role assign --assignee ci --role AcrPush --scope 'repositories/app/*'
  moat role assign --assignee ops --role Contributor`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if assignee == "" || role == "" {
				return errors.New("role assign: --assignee and --role are required")
			}
			canon, err := canonicalRole(role)
			if err != nil {
				return err
			}
			scope = normalScope(scope)
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if id == "" {
				ras, _, err := list[auth.RoleAssignment](ctx, c, roleAssignmentsPath, url.Values{"principal": {assignee}})
				if err != nil {
					return err
				}
				for _, ra := range ras {
					if ra.Role == canon && normalScope(ra.Scope) == scope {
						return putAndPrint(ctx, a, c, call{method: http.MethodGet, path: resourcePath(roleAssignmentsPath, ra.ID)}, a.printAssignments)
					}
				}
				id = newUUID()
			} else if err := nameArgs(1)(cmd, []string{id}); err != nil {
				return err
			}
			body := auth.RoleAssignment{Principal: assignee, Role: role, Scope: scope}
			return putAndPrint(ctx, a, c, call{method: http.MethodPut, path: resourcePath(roleAssignmentsPath, id), body: body}, a.printAssignments)
		},
	}
	f := cmd.Flags()
	f.StringVar(&assignee, "assignee", "", "identity name or principalId")
	f.StringVar(&role, "role", "", "role name or ACR alias (moat role definitions)")
	f.StringVar(&scope, "scope", "/", "/ or repositories/<name>, repositories/<prefix>/*")
	f.StringVar(&id, "id", "", "assignment id (default: a new UUID)")
	return cmd
}

func (a *app) newRoleListCommand() *cobra.Command {
	var assignee string
	cmd := &cobra.Command{
		Use:   "list [--assignee NAME]",
		Short: "List role assignments",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var q url.Values
			if assignee != "" {
				q = url.Values{"principal": {assignee}}
			}
			ras, raw, err := list[auth.RoleAssignment](cmd.Context(), c, roleAssignmentsPath, q)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(raw)
			}
			return a.printAssignments(ras)
		},
	}
	cmd.Flags().StringVar(&assignee, "assignee", "", "only this identity's (name or principalId)")
	return cmd
}

func (a *app) newRoleRemoveCommand() *cobra.Command {
	var assignee, role, scope string
	cmd := &cobra.Command{
		Use:   "remove ID | --assignee NAME [--role ROLE] [--scope SCOPE]",
		Short: "Remove a role assignment by id, or those of an identity matching --role and --scope",
		Example: `  moat role remove 3f0c…
  moat role remove --assignee ci --role AcrPush --scope 'repositories/app/*'`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			f := cmd.Flags()
			filtered := assignee != "" || f.Changed("role") || f.Changed("scope")
			switch {
			case len(args) == 1 && filtered:
				return errors.New("role remove: give an ID or --assignee/--role/--scope, not both")
			case len(args) == 1:
				if err := nameArgs(1)(cmd, args); err != nil {
					return err
				}
				_, err := c.send(ctx, call{method: http.MethodDelete, path: resourcePath(roleAssignmentsPath, args[0])}, nil)
				return err
			case assignee == "":
				return errors.New("role remove: give an assignment ID, or --assignee (with --role and --scope to narrow it)")
			}
			canon := ""
			if role != "" {
				if canon, err = canonicalRole(role); err != nil {
					return err
				}
			}
			ras, _, err := list[auth.RoleAssignment](ctx, c, roleAssignmentsPath, url.Values{"principal": {assignee}})
			if err != nil {
				return err
			}
			removed := 0
			for _, ra := range ras {
				if (canon != "" && ra.Role != canon) || (f.Changed("scope") && normalScope(ra.Scope) != normalScope(scope)) {
					continue
				}
				if _, err := c.send(ctx, call{method: http.MethodDelete, path: resourcePath(roleAssignmentsPath, ra.ID)}, nil); err != nil {
					return err
				}
				removed++
			}
			if removed == 0 {
				what := []string{"of " + assignee}
				if canon != "" {
					what = append(what, "with role "+canon)
				}
				if f.Changed("scope") {
					what = append(what, "at scope "+normalScope(scope))
				}
				return fmt.Errorf("no role assignment %s", strings.Join(what, " "))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&assignee, "assignee", "", "identity name or principalId")
	f.StringVar(&role, "role", "", "only assignments of this role")
	f.StringVar(&scope, "scope", "", "only assignments at this scope")
	return cmd
}

func (a *app) newRoleDefinitionsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "definitions",
		Short: "List the built-in roles",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			type def struct {
				Name       string `json:"name"`
				Alias      string `json:"alias"`
				Grants     string `json:"grants"`
				AdminLevel string `json:"adminLevel"`
			}
			defs := make([]def, 0, len(auth.Roles))
			for _, r := range auth.Roles {
				level := r.Level.String()
				if r.Level == auth.LevelNone {
					level = ""
				}
				defs = append(defs, def{r.Name, r.Alias, r.Grants, level})
			}
			if a.jsonOutput() {
				return a.printValue(map[string]any{"value": defs})
			}
			t := newTable(a.stdout, "NAME", "ALIAS", "ADMIN API", "GRANTS")
			for _, d := range defs {
				t.row(d.Name, d.Alias, d.AdminLevel, d.Grants)
			}
			return t.flush()
		},
	}
}

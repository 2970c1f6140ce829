package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/moat-registry/moat/auth"
	"github.com/spf13/cobra"
)

// htpasswdEntry is one user line of an htpasswd file.
type htpasswdEntry struct {
	line       int
	user, hash string
}

// parseHtpasswd reads user:hash lines. It returns the bcrypt entries and
// a warning for every other non-blank, non-comment line; moat stores
// bcrypt hashes only ($2a$, $2b$, $2y$ — `htpasswd -B`).
func parseHtpasswd(r io.Reader) ([]htpasswdEntry, []string, error) {
	var entries []htpasswdEntry
	var warnings []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		user, hash = strings.TrimSpace(user), strings.TrimSpace(hash)
		switch {
		case !ok || user == "":
			warnings = append(warnings, fmt.Sprintf("line %d: not user:hash; skipped", n))
		case !isBcrypt(hash):
			warnings = append(warnings, fmt.Sprintf("line %d: user %q: not a bcrypt hash (re-create it with htpasswd -B); skipped", n, user))
		default:
			entries = append(entries, htpasswdEntry{line: n, user: user, hash: hash})
		}
	}
	return entries, warnings, sc.Err()
}

func isBcrypt(h string) bool {
	return len(h) == 60 && (strings.HasPrefix(h, "$2a$") || strings.HasPrefix(h, "$2b$") || strings.HasPrefix(h, "$2y$"))
}

// importedUser is a row of import-htpasswd's output.
type importedUser struct {
	Name             string `json:"name"`
	SecretID         string `json:"secretId"`
	RoleAssignmentID string `json:"roleAssignmentId,omitempty"`
	Role             string `json:"role,omitempty"`
	Scope            string `json:"scope,omitempty"`
}

func (a *app) newImportHtpasswdCommand() *cobra.Command {
	var role, scope string
	cmd := &cobra.Command{
		Use:   "import-htpasswd FILE [--role AcrPull] [--scope /]",
		Short: "Create user identities from an htpasswd file of bcrypt hashes",
		Long: `Create a user identity for every bcrypt line (user:$2y$…, from htpasswd -B)
of FILE ("-" reads stdin), with the hash as its secret, so the users log in with
their existing passwords. Lines with other hash types are skipped with a
warning, and so are users that exist already. With --role, each new user gets
that role at --scope. Importing hashes needs the Owner role.`,
		Example: `  moat identity import-htpasswd /etc/registry/htpasswd --role AcrPull`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if role != "" {
				r, ok := auth.LookupRole(role)
				if !ok {
					return fmt.Errorf("--role %q: not a built-in role (moat role definitions)", role)
				}
				role = r.Name
				if _, ok := auth.ParseRoleScope(scope); !ok {
					return fmt.Errorf("--scope %q: expected / or repositories/<name>, repositories/<prefix>/*", scope)
				}
			}
			var in io.Reader = a.stdin
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			entries, warnings, err := parseHtpasswd(in)
			if err != nil {
				return fmt.Errorf("reading %s: %w", args[0], err)
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			imported := []importedUser{}
			for _, e := range entries {
				u, skipped, err := importUser(ctx, c, e, role, scope)
				if err != nil {
					return fmt.Errorf("line %d: user %q: %w", e.line, e.user, err)
				}
				if skipped != "" {
					warnings = append(warnings, fmt.Sprintf("line %d: user %q: %s; skipped", e.line, e.user, skipped))
					continue
				}
				imported = append(imported, u)
			}
			for _, w := range warnings {
				fmt.Fprintln(a.stderr, "warning: "+w)
			}
			if a.jsonOutput() {
				return a.printValue(map[string]any{"value": imported})
			}
			t := newTable(a.stdout, "NAME", "SECRET ID", "ROLE", "SCOPE")
			for _, u := range imported {
				t.row(u.Name, u.SecretID, u.Role, u.Scope)
			}
			return t.flush()
		},
	}
	cmd.Flags().StringVar(&role, "role", "", "role to give each imported user (e.g. AcrPull)")
	cmd.Flags().StringVar(&scope, "scope", "/", "scope of --role: / or repositories/<name>, repositories/<prefix>/*")
	return cmd
}

// importUser creates one identity with the entry's hash as its secret and
// optionally a role. An existing identity is left alone (skipped says
// why); an identity this call created is deleted again when its secret
// cannot be added.
func importUser(ctx context.Context, c *client, e htpasswdEntry, role, scope string) (importedUser, string, error) {
	path := resourcePath(identitiesPath, e.user)
	switch _, err := c.get(ctx, path, nil); {
	case err == nil:
		return importedUser{}, "an identity of that name exists", nil
	case !isStatus(err, http.StatusNotFound):
		return importedUser{}, "", err
	}
	if _, err := c.send(ctx, call{method: http.MethodPut, path: path, body: identityBody{Kind: auth.KindUser, Enabled: true}}, nil); err != nil {
		return importedUser{}, "", err
	}
	var sec auth.NewSecret
	_, err := c.send(ctx, call{method: http.MethodPost, path: resourcePath(identitiesPath, e.user, "secrets"), body: map[string]string{"bcryptHash": e.hash}}, &sec)
	if err != nil {
		_, _ = c.send(ctx, call{method: http.MethodDelete, path: path}, nil)
		return importedUser{}, "", err
	}
	u := importedUser{Name: e.user, SecretID: sec.ID}
	if role != "" {
		ra := auth.RoleAssignment{Principal: e.user, Role: role, Scope: scope}
		var out auth.RoleAssignment
		if _, err := c.send(ctx, call{method: http.MethodPut, path: resourcePath(roleAssignmentsPath, newUUID()), body: ra}, &out); err != nil {
			return u, "", fmt.Errorf("created, but the role assignment failed: %w", err)
		}
		u.RoleAssignmentID, u.Role, u.Scope = out.ID, out.Role, out.Scope
	}
	return u, "", nil
}

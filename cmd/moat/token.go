package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/moat-registry/moat/auth"
	"github.com/spf13/cobra"
)

const tokensPath = "/tokens"

func (a *app) newTokenCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "token",
		Aliases: []string{"tokens"},
		Short:   "Manage repository-scoped tokens (a username with two passwords, limited by a scope map)",
	}
	cmd.AddCommand(
		a.newTokenCreateCommand(),
		a.newTokenUpdateCommand(),
		a.newTokenPasswordCommand(),
		a.deleteCommand(tokensPath, "token"),
		showCommand(a, tokensPath, "token", a.printTokens),
		listCommand(a, tokensPath, "tokens", a.printTokens),
	)
	return cmd
}

func (a *app) printTokens(toks []auth.Token) error {
	t := newTable(a.stdout, "NAME", "SCOPE MAP", "STATUS", "PASSWORDS", "CREATED")
	for _, tok := range toks {
		var pws []string
		for _, p := range tok.Passwords {
			s := p.Name
			if p.ExpiresAt != nil {
				s += " (expires " + when(*p.ExpiresAt) + ")"
			}
			pws = append(pws, s)
		}
		t.row(tok.Name, tok.ScopeMap, tok.Status, strings.Join(pws, ", "), when(tok.CreatedAt))
	}
	return t.flush()
}

// printPasswords prints new token passwords (shown this once).
func (a *app) printPasswords(token string, pws []auth.NewTokenPassword) error {
	t := newTable(a.stdout, "PASSWORD", "VALUE", "EXPIRES")
	for _, p := range pws {
		t.row(p.Name, p.Value, expires(p.ExpiresAt))
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintf(a.stderr, "Save the password now: it cannot be shown again. Log in as %q with it (docker login, Basic auth).\n", token)
	return nil
}

// newPassword generates password1 or password2 of a token.
func newPassword(ctx context.Context, c *client, token, name, expiresIn string) (auth.NewTokenPassword, json.RawMessage, error) {
	body := map[string]string{"name": name}
	if expiresIn != "" {
		body["expiresIn"] = expiresIn
	}
	var pw auth.NewTokenPassword
	raw, err := c.send(ctx, call{method: http.MethodPost, path: resourcePath(tokensPath, token, "passwords"), body: body}, &pw)
	return pw, raw, err
}

func tokenStatus(s string) (string, error) {
	return enumFlag("status", s, auth.TokenEnabled, auth.TokenDisabled)
}

func (a *app) newTokenCreateCommand() *cobra.Command {
	var scopeMap, expiresIn, status string
	cmd := &cobra.Command{
		Use:     "create NAME --scope-map SCOPE_MAP [--expires-in 30d]",
		Short:   "Create a token and print its two passwords (shown only this once)",
		Example: `  moat token create ci-push --scope-map app-rw --expires-in 30d`,
		Args:    nameArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if scopeMap == "" {
				return errors.New("token create: --scope-map is required")
			}
			st, err := tokenStatus(status)
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			name := args[0]
			path := resourcePath(tokensPath, name)
			if err := mustNotExist(ctx, c, path, "token "+name); err != nil {
				return err
			}
			var tok auth.Token
			if _, err := c.send(ctx, call{method: http.MethodPut, path: path, body: map[string]string{"scopeMap": scopeMap, "status": st}}, &tok); err != nil {
				return err
			}
			var pws []auth.NewTokenPassword
			var raws []json.RawMessage
			for _, pwName := range []string{"password1", "password2"} {
				pw, raw, err := newPassword(ctx, c, name, pwName, expiresIn)
				if err != nil {
					_, _ = c.send(ctx, call{method: http.MethodDelete, path: path}, nil)
					return fmt.Errorf("generating %s of token %s: %w", pwName, name, err)
				}
				pws, raws = append(pws, pw), append(raws, raw)
			}
			if a.jsonOutput() {
				return a.printValue(struct {
					Name      string            `json:"name"`
					ScopeMap  string            `json:"scopeMap"`
					Status    string            `json:"status"`
					Passwords []json.RawMessage `json:"passwords"`
				}{tok.Name, tok.ScopeMap, tok.Status, raws})
			}
			if err := a.printTokens([]auth.Token{tok}); err != nil {
				return err
			}
			fmt.Fprintln(a.stdout)
			return a.printPasswords(name, pws)
		},
	}
	f := cmd.Flags()
	f.StringVar(&scopeMap, "scope-map", "", "scope map the token grants")
	f.StringVar(&expiresIn, "expires-in", "", "passwords' lifetime like 30d, 12h (default: none)")
	f.StringVar(&status, "status", auth.TokenEnabled, "enabled or disabled")
	return cmd
}

func (a *app) newTokenUpdateCommand() *cobra.Command {
	var status, scopeMap string
	cmd := &cobra.Command{
		Use:     "update NAME [--status enabled|disabled] [--scope-map SCOPE_MAP]",
		Short:   "Enable or disable a token, or change its scope map",
		Example: `  moat token update ci-push --status disabled`,
		Args:    nameArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			if !f.Changed("status") && !f.Changed("scope-map") {
				return errors.New("nothing to change: give --status or --scope-map")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			path := resourcePath(tokensPath, args[0])
			var tok auth.Token
			if _, err := c.get(cmd.Context(), path, &tok); err != nil {
				return err
			}
			// PUT replaces both, so both are sent.
			body := map[string]string{"scopeMap": tok.ScopeMap, "status": tok.Status}
			if f.Changed("status") {
				if body["status"], err = tokenStatus(status); err != nil {
					return err
				}
			}
			if f.Changed("scope-map") {
				body["scopeMap"] = scopeMap
			}
			return putAndPrint(cmd.Context(), a, c, call{method: http.MethodPut, path: path, body: body}, a.printTokens)
		},
	}
	cmd.Flags().StringVar(&status, "status", "", "enabled or disabled")
	cmd.Flags().StringVar(&scopeMap, "scope-map", "", "scope map the token grants")
	return cmd
}

func (a *app) newTokenPasswordCommand() *cobra.Command {
	var name, expiresIn string
	cmd := &cobra.Command{
		Use:     "password NAME [--name password1|password2] [--expires-in 30d]",
		Short:   "Generate a new password1 or password2 for a token (the old one stops working)",
		Example: `  moat token password ci-push --name password2`,
		Args:    nameArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pwName, err := enumFlag("name", name, "password1", "password2")
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			pw, raw, err := newPassword(cmd.Context(), c, args[0], pwName, expiresIn)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(raw)
			}
			return a.printPasswords(args[0], []auth.NewTokenPassword{pw})
		},
	}
	cmd.Flags().StringVar(&name, "name", "password1", "password1 or password2")
	cmd.Flags().StringVar(&expiresIn, "expires-in", "", "lifetime like 30d, 12h (default: none)")
	return cmd
}

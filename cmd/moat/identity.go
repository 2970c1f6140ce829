package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/moat-registry/moat/auth"
	"github.com/spf13/cobra"
)

const identitiesPath = "/identities"

func (a *app) newIdentityCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "identity",
		Aliases: []string{"identities"},
		Short:   "Manage identities (users, service principals, managed identities) and their secrets",
	}
	cmd.AddCommand(
		a.newIdentityCreateCommand(),
		a.newIdentityUpdateCommand(),
		a.deleteCommand(identitiesPath, "identity (and its role assignments)"),
		showCommand(a, identitiesPath, "identity", a.printIdentities),
		listCommand(a, identitiesPath, "identities", a.printIdentities),
		a.newSecretCommand(),
		a.newFederatedCredentialCommand(),
		a.newImportHtpasswdCommand(),
	)
	return cmd
}

func (a *app) printIdentities(ids []auth.Identity) error {
	t := newTable(a.stdout, "NAME", "KIND", "ENABLED", "PRINCIPAL ID", "SECRETS", "SERVICE", "CREATED")
	for _, id := range ids {
		t.row(id.Name, id.Kind, yesNo(id.Enabled), id.PrincipalID, strconv.Itoa(len(id.Secrets)), id.Service, when(id.CreatedAt))
	}
	return t.flush()
}

// identityBody is the PUT body of an identity.
type identityBody struct {
	Kind    string `json:"kind"`
	Enabled bool   `json:"enabled"`
}

func identityKind(s string) (string, error) {
	return enumFlag("kind", s, auth.KindUser, auth.KindServicePrincipal, auth.KindManagedIdentity)
}

func (a *app) newIdentityCreateCommand() *cobra.Command {
	var kind string
	var disabled bool
	cmd := &cobra.Command{
		Use:   "create NAME [--kind user|servicePrincipal|managedIdentity]",
		Short: "Create an identity (then give it a secret and a role)",
		Example: `  moat identity create ci --kind servicePrincipal
  moat identity secret add ci
  moat role assign --assignee ci --role AcrPush --scope 'repositories/app/*'`,
		Args: nameArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := identityKind(kind)
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			path := resourcePath(identitiesPath, args[0])
			if err := mustNotExist(cmd.Context(), c, path, "identity "+args[0]); err != nil {
				return err
			}
			k2 := call{method: http.MethodPut, path: path, body: identityBody{Kind: k, Enabled: !disabled}}
			return putAndPrint(cmd.Context(), a, c, k2, a.printIdentities)
		},
	}
	cmd.Flags().StringVar(&kind, "kind", auth.KindUser, "user, servicePrincipal or managedIdentity")
	cmd.Flags().BoolVar(&disabled, "disabled", false, "create it disabled (it cannot log in)")
	return cmd
}

func (a *app) newIdentityUpdateCommand() *cobra.Command {
	var enabled, kind string
	cmd := &cobra.Command{
		Use:     "update NAME --enabled true|false",
		Short:   "Enable or disable an identity, or change its kind",
		Example: `  moat identity update ci --enabled false`,
		Args:    nameArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			if !f.Changed("enabled") && !f.Changed("kind") {
				return errors.New("nothing to change: give --enabled or --kind")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			path := resourcePath(identitiesPath, args[0])
			var cur auth.Identity
			if _, err := c.get(cmd.Context(), path, &cur); err != nil {
				return err
			}
			// PUT replaces kind and enabled, so both are sent.
			body := identityBody{Kind: cur.Kind, Enabled: cur.Enabled}
			if f.Changed("enabled") {
				if body.Enabled, err = boolFlag("enabled", enabled); err != nil {
					return err
				}
			}
			if f.Changed("kind") {
				if body.Kind, err = identityKind(kind); err != nil {
					return err
				}
			}
			return putAndPrint(cmd.Context(), a, c, call{method: http.MethodPut, path: path, body: body}, a.printIdentities)
		},
	}
	cmd.Flags().StringVar(&enabled, "enabled", "", "true or false")
	cmd.Flags().StringVar(&kind, "kind", "", "user, servicePrincipal or managedIdentity")
	return cmd
}

func (a *app) newSecretCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "secret",
		Aliases: []string{"secrets"},
		Short:   "Manage an identity's secrets (its passwords for Basic auth and docker login)",
	}
	var expiresIn string
	add := &cobra.Command{
		Use:   "add NAME [--expires-in 90d]",
		Short: "Add a secret to an identity and print it (it is shown only this once)",
		Args:  nameArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			body := map[string]string{}
			if expiresIn != "" {
				body["expiresIn"] = expiresIn
			}
			var sec auth.NewSecret
			raw, err := c.send(cmd.Context(), call{method: http.MethodPost, path: resourcePath(identitiesPath, args[0], "secrets"), body: body}, &sec)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(raw)
			}
			t := newTable(a.stdout, "ID", "VALUE", "EXPIRES")
			t.row(sec.ID, sec.Value, expires(sec.ExpiresAt))
			if err := t.flush(); err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "Save the value now: it cannot be shown again. Log in as %q with it (docker login, Basic auth).\n", args[0])
			return nil
		},
	}
	add.Flags().StringVar(&expiresIn, "expires-in", "", "lifetime like 90d, 12h (default: none; managed identities at most 90d)")
	del := &cobra.Command{
		Use:   "delete NAME ID",
		Short: "Delete one secret of an identity",
		Args:  nameArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			_, err = c.send(cmd.Context(), call{method: http.MethodDelete, path: resourcePath(identitiesPath, args[0], "secrets", args[1])}, nil)
			return err
		},
	}
	lst := &cobra.Command{
		Use:   "list NAME",
		Short: "List an identity's secrets (ids and expiry; values are never shown again)",
		Args:  nameArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var id auth.Identity
			raw, err := c.get(cmd.Context(), resourcePath(identitiesPath, args[0]), &id)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				var doc struct {
					Secrets json.RawMessage `json:"secrets"`
				}
				if err := jsonUnmarshal(raw, &doc); err != nil {
					return err
				}
				return a.printJSON(arrayOrEmpty(doc.Secrets))
			}
			t := newTable(a.stdout, "ID", "CREATED", "EXPIRES")
			for _, s := range id.Secrets {
				t.row(s.ID, when(s.CreatedAt), expires(s.ExpiresAt))
			}
			return t.flush()
		},
	}
	cmd.AddCommand(add, del, lst)
	return cmd
}

package main

import (
	"net/http"
	"strings"

	"github.com/moat-registry/moat/auth"
	"github.com/spf13/cobra"
)

// newFederatedCredentialCommand manages an identity's federated
// credentials: external OIDC tokens (GitHub Actions, GitLab CI,
// Kubernetes, another moat) it accepts at POST /oauth2/exchange.
func (a *app) newFederatedCredentialCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "federated-credential",
		Aliases: []string{"federated-credentials", "fc"},
		Short:   "Manage the external OIDC tokens an identity accepts (workload identity federation)",
	}
	var issuer, subject string
	var audiences []string
	add := &cobra.Command{
		Use:   "add IDENTITY NAME --issuer URL --subject SUB --audience AUD...",
		Short: "Trust tokens from an issuer for a subject and audience (replaces a credential of the same name)",
		Example: `  moat identity federated-credential add ci github-main \
      --issuer https://token.actions.githubusercontent.com \
      --subject repo:org/app:ref:refs/heads/main --audience api://AzureADTokenExchange`,
		Args: nameArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			body := auth.FederatedCredential{Name: args[1], Issuer: issuer, Subject: subject, Audiences: audiences}
			k := call{method: http.MethodPut, path: resourcePath(identitiesPath, args[0], "federated-credentials", args[1]), body: body}
			return putAndPrint(cmd.Context(), a, c, k, a.printFederatedCredentials)
		},
	}
	add.Flags().StringVar(&issuer, "issuer", "", "the issuer URL (https; http only on loopback)")
	add.Flags().StringVar(&subject, "subject", "", "the token's sub, e.g. repo:org/app:ref:refs/heads/main")
	add.Flags().StringSliceVar(&audiences, "audience", nil, "an accepted aud (repeatable)")
	for _, f := range []string{"issuer", "subject", "audience"} {
		_ = add.MarkFlagRequired(f)
	}
	del := &cobra.Command{
		Use:   "delete IDENTITY NAME",
		Short: "Stop trusting a federated credential",
		Args:  nameArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			_, err = c.send(cmd.Context(), call{method: http.MethodDelete, path: resourcePath(identitiesPath, args[0], "federated-credentials", args[1])}, nil)
			return err
		},
	}
	lst := &cobra.Command{
		Use:   "list IDENTITY",
		Short: "List an identity's federated credentials",
		Args:  nameArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			fcs, raw, err := list[auth.FederatedCredential](cmd.Context(), c, resourcePath(identitiesPath, args[0], "federated-credentials"), nil)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(raw)
			}
			return a.printFederatedCredentials(fcs)
		},
	}
	cmd.AddCommand(add, del, lst)
	return cmd
}

func (a *app) printFederatedCredentials(fcs []auth.FederatedCredential) error {
	t := newTable(a.stdout, "NAME", "ISSUER", "SUBJECT", "AUDIENCES")
	for _, f := range fcs {
		t.row(f.Name, f.Issuer, f.Subject, strings.Join(f.Audiences, ","))
	}
	return t.flush()
}

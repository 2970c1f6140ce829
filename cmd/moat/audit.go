package main

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/moat-registry/moat/auth"
	"github.com/spf13/cobra"
)

func (a *app) newAuditCommand() *cobra.Command {
	var denied bool
	var stage, since string
	var limit int
	cmd := &cobra.Command{
		Use:   "audit [--denied] [--stage network|authn|authz] [--since 1h] [--limit N]",
		Short: "Show the audit log of denials and Audit-mode would-be denials (newest first)",
		Long: `Show the audit log (newest first): every denial, and every request that the
IP rules would have denied while networkRuleSet.mode is Audit (ALLOWED shows
"audit" for those).`,
		Example: `  moat audit --denied --since 1h
  moat audit --stage network --limit 20 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			if denied {
				q.Set("allowed", "false")
			}
			if stage != "" {
				s, err := enumFlag("stage", stage, "network", "authn", "authz")
				if err != nil {
					return err
				}
				q.Set("stage", s)
			}
			if since != "" {
				q.Set("since", since)
			}
			if limit < 0 {
				return errors.New("--limit must be positive")
			}
			if limit > 0 {
				q.Set("limit", strconv.Itoa(limit))
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			entries, raw, err := list[auth.AuditEntry](cmd.Context(), c, "/audit", q)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(raw)
			}
			t := newTable(a.stdout, "TIME", "CLIENT", "ENDPOINT", "PRINCIPAL", "REPOSITORY", "ACTION", "ALLOWED", "STAGE", "REASON", "RULE")
			for _, e := range entries {
				allowed := yesNo(e.Allowed)
				if e.Audit {
					allowed = "audit"
				}
				t.row(when(e.Time), e.ClientIP, e.Endpoint, e.Principal, e.Repository, e.Action, allowed, e.Stage, e.Reason, e.Rule)
			}
			return t.flush()
		},
	}
	f := cmd.Flags()
	f.BoolVar(&denied, "denied", false, "denials only (leave out Audit-mode allows)")
	f.StringVar(&stage, "stage", "", "network, authn or authz")
	f.StringVar(&since, "since", "", "RFC 3339 time or a duration back from now (1h, 7d)")
	f.IntVar(&limit, "limit", 0, "at most this many entries (1–10000; default: the server's)")
	return cmd
}

func (a *app) newPolicyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Ask what the registry would decide",
	}
	var in auth.EvaluateInput
	eval := &cobra.Command{
		Use:   "evaluate --ip ADDRESS --repository REPO --action pull|push|delete [--principal NAME] [--endpoint NAME]",
		Short: "Show the decision (allowed, stage, reason, rule) for a request; exits 0 either way",
		Long: `Show the decision the request pipeline would reach for a request from --ip
on --endpoint (default: the public one) by --principal (default: anonymous;
taken as having given the right credentials) doing --action on --repository.
The exit status is 0 whatever the decision.`,
		Example: `  moat policy evaluate --ip 198.51.100.7 --principal ci --repository app --action push
  moat policy evaluate --ip 10.0.0.5 --repository app --action pull --endpoint lan`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if in.ClientIP == "" || in.Repository == "" || in.Action == "" {
				return errors.New("policy evaluate: --ip, --repository and --action are required")
			}
			act, err := enumFlag("action", in.Action, "pull", "push", "delete")
			if err != nil {
				return err
			}
			in.Action = act
			c, err := a.client()
			if err != nil {
				return err
			}
			var res auth.EvaluateResult
			raw, err := c.send(cmd.Context(), call{method: http.MethodPost, path: "/policy/evaluate", body: in}, &res)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(raw)
			}
			t := newTable(a.stdout, "ALLOWED", "STAGE", "REASON", "RULE", "AUDIT")
			t.row(yesNo(res.Allowed), res.Stage, res.Reason, res.Rule, yesNo(res.Audit))
			return t.flush()
		},
	}
	f := eval.Flags()
	f.StringVar(&in.ClientIP, "ip", "", "client IP address")
	f.StringVar(&in.Principal, "principal", "", "identity or token name (default: anonymous)")
	f.StringVar(&in.Repository, "repository", "", "repository name")
	f.StringVar(&in.Action, "action", "", "pull, push or delete")
	f.StringVar(&in.Endpoint, "endpoint", "", "private endpoint name (default: the public endpoint)")
	cmd.AddCommand(eval)
	return cmd
}

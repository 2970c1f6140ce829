package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/moat-registry/moat/auth"
	"github.com/moat-registry/moat/policy"
	"github.com/spf13/cobra"
)

// registryResource is GET /admin/v1/registry.
type registryResource struct {
	Name       string          `json:"name"`
	Properties auth.Properties `json:"properties"`
}

func (a *app) newShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show",
		Short: "Show the registry's properties (network access, rules, anonymous pull, export policy)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var reg registryResource
			raw, err := c.get(cmd.Context(), "/registry", &reg)
			if err != nil {
				return err
			}
			return a.printRegistry(raw, reg)
		},
	}
}

func (a *app) printRegistry(raw []byte, reg registryResource) error {
	if a.jsonOutput() {
		return a.printJSON(raw)
	}
	p := reg.Properties
	rules := make([]string, 0, len(p.NetworkRuleSet.IPRules))
	for _, r := range p.NetworkRuleSet.IPRules {
		rules = append(rules, r.Value)
	}
	ruleCell := strings.Join(rules, ", ")
	if len(rules) > 5 {
		ruleCell = strconv.Itoa(len(rules)) + " rules (moat network-rule list)"
	} else if len(rules) == 0 {
		ruleCell = "none"
	}
	t := newTable(a.stdout, "PROPERTY", "VALUE")
	t.row("name", reg.Name)
	t.row("publicNetworkAccess", p.PublicNetworkAccess)
	t.row("networkRuleSet.defaultAction", p.NetworkRuleSet.DefaultAction)
	t.row("networkRuleSet.mode", p.NetworkRuleSet.Mode)
	t.row("networkRuleSet.ipRules", ruleCell)
	t.row("networkRuleBypassOptions", p.NetworkRuleBypassOptions)
	t.row("anonymousPullEnabled", yesNo(p.AnonymousPullEnabled))
	t.row("policies.exportPolicy.status", p.Policies.ExportPolicy.Status)
	return t.flush()
}

func (a *app) newUpdateCommand() *cobra.Command {
	var publicAccess, defaultAction, trusted, mode, anonymous, exports string
	cmd := &cobra.Command{
		Use:   "update",
		Short: "Change registry properties (only those named by a flag)",
		Example: `  moat update --public-network-access Enabled --default-action Deny
  moat update --allow-trusted-services false --network-rule-mode Audit
  moat update --anonymous-pull-enabled true --allow-exports false`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			props := map[string]any{}
			ruleSet := map[string]any{}
			f := cmd.Flags()
			if f.Changed("public-network-access") {
				v, err := enumFlag("public-network-access", publicAccess, policy.Enabled, policy.Disabled)
				if err != nil {
					return err
				}
				props["publicNetworkAccess"] = v
			}
			if f.Changed("default-action") {
				v, err := enumFlag("default-action", defaultAction, policy.ActionAllow, policy.ActionDeny)
				if err != nil {
					return err
				}
				ruleSet["defaultAction"] = v
			}
			if f.Changed("network-rule-mode") {
				v, err := enumFlag("network-rule-mode", mode, policy.ModeEnforce, policy.ModeAudit)
				if err != nil {
					return err
				}
				ruleSet["mode"] = v
			}
			if f.Changed("allow-trusted-services") {
				b, err := boolFlag("allow-trusted-services", trusted)
				if err != nil {
					return err
				}
				props["networkRuleBypassOptions"] = policy.BypassNone
				if b {
					props["networkRuleBypassOptions"] = policy.BypassTrustedServices
				}
			}
			if f.Changed("anonymous-pull-enabled") {
				b, err := boolFlag("anonymous-pull-enabled", anonymous)
				if err != nil {
					return err
				}
				props["anonymousPullEnabled"] = b
			}
			if f.Changed("allow-exports") {
				b, err := boolFlag("allow-exports", exports)
				if err != nil {
					return err
				}
				status := "disabled"
				if b {
					status = "enabled"
				}
				props["policies"] = map[string]any{"exportPolicy": map[string]any{"status": status}}
			}
			if len(ruleSet) > 0 {
				props["networkRuleSet"] = ruleSet
			}
			if len(props) == 0 {
				return errors.New("nothing to change: give at least one of --public-network-access, --default-action, --allow-trusted-services, --network-rule-mode, --anonymous-pull-enabled, --allow-exports")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			raw, reg, err := patchRegistry(cmd.Context(), c, func(registryResource) (map[string]any, error) {
				return props, nil
			})
			if err != nil {
				return err
			}
			return a.printRegistry(raw, reg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&publicAccess, "public-network-access", "", "Enabled or Disabled")
	f.StringVar(&defaultAction, "default-action", "", "Allow or Deny: what happens to public traffic no IP rule matches")
	f.StringVar(&trusted, "allow-trusted-services", "", "true or false: let trusted services' managed identities bypass the network rules")
	f.StringVar(&mode, "network-rule-mode", "", "Enforce or Audit (log would-be denials, allow them)")
	f.StringVar(&anonymous, "anonymous-pull-enabled", "", "true or false")
	f.StringVar(&exports, "allow-exports", "", "true or false (policies.exportPolicy.status)")
	return cmd
}

// patchRegistry reads the registry, asks build for a merge patch of its
// properties and sends it with If-Match; when someone changed the registry
// in between (412) it does so once more.
func patchRegistry(ctx context.Context, c *client, build func(registryResource) (map[string]any, error)) ([]byte, registryResource, error) {
	for attempt := 0; ; attempt++ {
		resp, err := c.do(ctx, call{method: http.MethodGet, path: "/registry"})
		if err != nil {
			return nil, registryResource{}, err
		}
		var cur registryResource
		if err := jsonUnmarshal(resp.body, &cur); err != nil {
			return nil, registryResource{}, err
		}
		props, err := build(cur)
		if err != nil {
			return nil, registryResource{}, err
		}
		var out registryResource
		raw, err := c.send(ctx, call{
			method:  http.MethodPatch,
			path:    "/registry",
			body:    map[string]any{"properties": props},
			ifMatch: resp.header.Get("ETag"),
		}, &out)
		if isStatus(err, http.StatusPreconditionFailed) && attempt == 0 {
			continue
		}
		return raw, out, err
	}
}

// enumFlag matches value against choices case-insensitively and returns
// the canonical spelling.
func enumFlag(name, value string, choices ...string) (string, error) {
	for _, c := range choices {
		if strings.EqualFold(value, c) {
			return c, nil
		}
	}
	return "", fmt.Errorf("--%s %q: expected %s", name, value, strings.Join(choices, " or "))
}

// boolFlag parses a true|false flag value (given with a space, as
// `az acr` does, so it is a string flag).
func boolFlag(name, value string) (bool, error) {
	b, err := strconv.ParseBool(value)
	if err != nil {
		return false, fmt.Errorf("--%s %q: expected true or false", name, value)
	}
	return b, nil
}

func (a *app) newKeysCommand() *cobra.Command {
	keys := &cobra.Command{Use: "keys", Short: "Manage the token signing keys"}
	keys.AddCommand(&cobra.Command{
		Use:   "rotate",
		Short: "Start signing tokens with a new key (tokens signed with the old one stay valid until they expire)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var out struct {
				Kid string `json:"kid"`
			}
			raw, err := c.send(cmd.Context(), call{method: http.MethodPost, path: "/keys/rotate"}, &out)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(raw)
			}
			t := newTable(a.stdout, "KID")
			t.row(out.Kid)
			return t.flush()
		},
	})
	return keys
}

package main

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/moat-registry/moat/policy"
	"github.com/spf13/cobra"
)

func (a *app) newNetworkRuleCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "network-rule",
		Short: "Manage the IP rules of the public endpoint (networkRuleSet.ipRules)",
		Long: `Manage the IP rules of the public endpoint (networkRuleSet.ipRules).

IP rules matter when the default action is Deny (moat update --default-action Deny):
then only clients inside a rule reach the registry over the public endpoint.`,
	}
	cmd.AddCommand(a.newNetworkRuleEditCommand("add"), a.newNetworkRuleEditCommand("remove"), &cobra.Command{
		Use:   "list",
		Short: "List the IP rules",
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
			return a.printRules(raw, reg)
		},
	})
	return cmd
}

// newNetworkRuleEditCommand is `network-rule add` or `remove`: read the
// properties, edit networkRuleSet.ipRules, PATCH them with If-Match.
func (a *app) newNetworkRuleEditCommand(verb string) *cobra.Command {
	var addresses []string
	cmd := &cobra.Command{
		Use:     verb + " --ip-address ADDRESS_OR_CIDR",
		Short:   map[string]string{"add": "Allow an IPv4/IPv6 address or CIDR", "remove": "Remove an IP rule"}[verb],
		Example: "  moat network-rule " + verb + " --ip-address 203.0.113.0/24\n  moat network-rule " + verb + " --ip-address 2001:db8::/48 --ip-address 198.51.100.7",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(addresses) == 0 {
				return fmt.Errorf("network-rule %s: --ip-address is required", verb)
			}
			want := make([]string, 0, len(addresses))
			for _, s := range addresses {
				p, err := policy.ParseRuleValue(s)
				if err != nil {
					return fmt.Errorf("--ip-address: %v", err)
				}
				want = append(want, policy.FormatRuleValue(p))
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			raw, reg, err := patchRegistry(cmd.Context(), c, func(cur registryResource) (map[string]any, error) {
				rules := canonicalRules(cur.Properties.NetworkRuleSet.IPRules)
				for _, v := range want {
					i := slices.IndexFunc(rules, func(r policy.IPRule) bool { return r.Value == v })
					switch {
					case verb == "add" && i < 0:
						rules = append(rules, policy.IPRule{Action: policy.ActionAllow, Value: v})
					case verb == "remove" && i < 0:
						return nil, fmt.Errorf("no IP rule %s", v)
					case verb == "remove":
						rules = slices.Delete(rules, i, i+1)
					}
				}
				return map[string]any{"networkRuleSet": map[string]any{"ipRules": rules}}, nil
			})
			if err != nil {
				return err
			}
			if verb == "add" && reg.Properties.NetworkRuleSet.DefaultAction == policy.ActionAllow && !a.jsonOutput() {
				fmt.Fprintln(a.stderr, "note: the default action is Allow, so IP rules change nothing until `moat update --default-action Deny`")
			}
			return a.printRules(raw, reg)
		},
	}
	cmd.Flags().StringArrayVar(&addresses, "ip-address", nil, "IPv4/IPv6 address or CIDR (repeatable)")
	return cmd
}

// canonicalRules returns rules with their values in canonical form, so a
// rule given as 203.0.113.7/24 is found as 203.0.113.0/24.
func canonicalRules(in []policy.IPRule) []policy.IPRule {
	out := make([]policy.IPRule, 0, len(in))
	for _, r := range in {
		if p, err := policy.ParseRuleValue(r.Value); err == nil {
			r.Value = policy.FormatRuleValue(p)
		}
		if r.Action == "" {
			r.Action = policy.ActionAllow
		}
		out = append(out, r)
	}
	return out
}

// printRules prints networkRuleSet: -o json prints that object of the
// registry resource as the server answered it.
func (a *app) printRules(raw []byte, reg registryResource) error {
	if a.jsonOutput() {
		var doc struct {
			Properties struct {
				NetworkRuleSet json.RawMessage `json:"networkRuleSet"`
			} `json:"properties"`
		}
		if err := jsonUnmarshal(raw, &doc); err != nil {
			return err
		}
		return a.printJSON(doc.Properties.NetworkRuleSet)
	}
	t := newTable(a.stdout, "ACTION", "VALUE")
	for _, r := range reg.Properties.NetworkRuleSet.IPRules {
		t.row(r.Action, r.Value)
	}
	return t.flush()
}

package main

import (
	"errors"
	"net/http"

	"github.com/moat-registry/moat/auth"
	"github.com/moat-registry/moat/policy"
	"github.com/spf13/cobra"
)

const endpointsPath = "/private-endpoints"

func (a *app) newPrivateEndpointCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "private-endpoint",
		Aliases: []string{"private-endpoints"},
		Short:   "Manage private endpoints: extra listeners whose traffic counts as private",
	}
	cmd.AddCommand(
		a.newEndpointCreateCommand(),
		a.newEndpointStateCommand("approve", "Approve a private endpoint (its traffic is let through)"),
		a.newEndpointStateCommand("reject", "Reject a private endpoint (its traffic is refused)"),
		a.newEndpointUpdateCommand(),
		a.deleteCommand(endpointsPath, "private endpoint (its listener closes)"),
		showCommand(a, endpointsPath, "private endpoint", a.printEndpoints),
		listCommand(a, endpointsPath, "private endpoints", a.printEndpoints),
	)
	return cmd
}

func (a *app) printEndpoints(eps []auth.PrivateEndpoint) error {
	t := newTable(a.stdout, "NAME", "LISTEN", "ADDRESS", "TLS", "STATE", "DESCRIPTION")
	for _, e := range eps {
		t.row(e.Name, e.Listen, e.Address, yesNo(e.TLS), e.State, e.Description)
	}
	return t.flush()
}

func (a *app) newEndpointCreateCommand() *cobra.Command {
	var listen, description string
	var pending, tls bool
	cmd := &cobra.Command{
		Use:   "create NAME --listen ADDRESS:PORT",
		Short: "Create a private endpoint; its listener opens at once (Approved unless --pending)",
		Example: `  moat private-endpoint create lan --listen 127.0.0.2:5001
  moat private-endpoint create build --listen 127.0.0.1:0 --pending --description "CI network"`,
		Args: nameArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if listen == "" {
				return errors.New("private-endpoint create: --listen is required")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			path := resourcePath(endpointsPath, args[0])
			if err := mustNotExist(cmd.Context(), c, path, "private endpoint "+args[0]); err != nil {
				return err
			}
			body := auth.PrivateEndpoint{Name: args[0], Listen: listen, TLS: tls, Description: description}
			if pending {
				body.State = policy.StatePending.String()
			}
			return putAndPrint(cmd.Context(), a, c, call{method: http.MethodPut, path: path, body: body}, a.printEndpoints)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "", "address:port to listen on (inside privateEndpoints.allowedAddresses; port 0 picks one)")
	f.BoolVar(&pending, "pending", false, "create it Pending: its traffic is refused until it is approved")
	f.BoolVar(&tls, "tls", false, "serve TLS on it")
	f.StringVar(&description, "description", "", "free text")
	return cmd
}

// newEndpointStateCommand is approve or reject: POST …/{name}/{verb}.
func (a *app) newEndpointStateCommand(verb, short string) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Args:  nameArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			k := call{method: http.MethodPost, path: resourcePath(endpointsPath, args[0], verb)}
			return putAndPrint(cmd.Context(), a, c, k, a.printEndpoints)
		},
	}
}

func (a *app) newEndpointUpdateCommand() *cobra.Command {
	var state, listen, description, tls string
	cmd := &cobra.Command{
		Use:     "update NAME",
		Short:   "Change a private endpoint's state, listen address, TLS or description",
		Example: `  moat private-endpoint update lan --state Disconnected`,
		Args:    nameArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			if !f.Changed("state") && !f.Changed("listen") && !f.Changed("description") && !f.Changed("tls") {
				return errors.New("nothing to change: give --state, --listen, --tls or --description")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			path := resourcePath(endpointsPath, args[0])
			var e auth.PrivateEndpoint
			if _, err := c.get(cmd.Context(), path, &e); err != nil {
				return err
			}
			if f.Changed("state") {
				if e.State, err = enumFlag("state", state, "Approved", "Pending", "Rejected", "Disconnected"); err != nil {
					return err
				}
			}
			if f.Changed("listen") {
				e.Listen = listen
			}
			if f.Changed("description") {
				e.Description = description
			}
			if f.Changed("tls") {
				if e.TLS, err = boolFlag("tls", tls); err != nil {
					return err
				}
			}
			e.Address = "" // read-only
			return putAndPrint(cmd.Context(), a, c, call{method: http.MethodPut, path: path, body: e}, a.printEndpoints)
		},
	}
	f := cmd.Flags()
	f.StringVar(&state, "state", "", "Approved, Pending, Rejected or Disconnected")
	f.StringVar(&listen, "listen", "", "new address:port (the listener moves)")
	f.StringVar(&tls, "tls", "", "true or false")
	f.StringVar(&description, "description", "", "free text")
	return cmd
}

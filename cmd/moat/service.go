package main

import (
	"errors"
	"net/http"
	"strings"

	"github.com/moat-registry/moat/auth"
	"github.com/spf13/cobra"
)

const servicesPath = "/services"

func (a *app) newServiceCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "service",
		Aliases: []string{"services"},
		Short:   "Manage trusted-service instances (whose managed identities may bypass the network rules)",
	}
	cmd.AddCommand(
		a.newServiceCreateCommand(),
		a.deleteCommand(servicesPath, "service instance (and its system-assigned identity)"),
		showCommand(a, servicesPath, "service instance", a.printServices),
		listCommand(a, servicesPath, "service instances", a.printServices),
	)
	return cmd
}

func (a *app) printServices(svcs []auth.Service) error {
	t := newTable(a.stdout, "NAME", "TYPE", "IDENTITY", "PRINCIPAL", "PRINCIPAL ID", "USER-ASSIGNED")
	for _, s := range svcs {
		t.row(s.Name, s.Type, s.Identity.Type, s.Identity.PrincipalName, s.Identity.PrincipalID, strings.Join(s.Identity.UserAssignedIdentities, ","))
	}
	return t.flush()
}

func (a *app) newServiceCreateCommand() *cobra.Command {
	var typ string
	var identities []string
	cmd := &cobra.Command{
		Use:   "create NAME --type TYPE [--identity system|IDENTITY]...",
		Short: "Register a trusted-service instance",
		Long: `Register a trusted-service instance. --identity system gives it a
system-assigned managed identity, named <type>-<name>; --identity NAME attaches
an existing managedIdentity as user-assigned (containerInstances only). Give a
role to the identity (moat role assign) so the service can reach the registry.`,
		Example: `  moat service create nightly --type tasks --identity system
  moat service create web --type containerInstances --identity system --identity web-mi`,
		Args: nameArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if typ == "" {
				return errors.New("service create: --type is required (moat trusted-services list shows the types)")
			}
			svc := auth.Service{Name: args[0], Type: typ}
			system := false
			for _, id := range identities {
				if strings.EqualFold(id, "system") || strings.EqualFold(id, auth.IdentitySystem) {
					system = true
				} else {
					svc.Identity.UserAssignedIdentities = append(svc.Identity.UserAssignedIdentities, id)
				}
			}
			user := len(svc.Identity.UserAssignedIdentities) > 0
			switch {
			case system && user:
				svc.Identity.Type = auth.IdentitySystemUser
			case system:
				svc.Identity.Type = auth.IdentitySystem
			case user:
				svc.Identity.Type = auth.IdentityUser
			default:
				svc.Identity.Type = auth.IdentityNone
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			path := resourcePath(servicesPath, args[0])
			if err := mustNotExist(cmd.Context(), c, path, "service "+args[0]); err != nil {
				return err
			}
			return putAndPrint(cmd.Context(), a, c, call{method: http.MethodPut, path: path, body: svc}, a.printServices)
		},
	}
	f := cmd.Flags()
	f.StringVar(&typ, "type", "", "containerInstances, tasks, machineLearning, scanner or registry")
	f.StringArrayVar(&identities, "identity", nil, "system, or the name of a user-assigned managed identity (repeatable)")
	return cmd
}

func (a *app) newTrustedServicesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trusted-services",
		Short: "The built-in catalog of trusted-service types",
	}
	cmd.AddCommand(listCommand(a, "/trusted-services", "the trusted-service types", func(ts []auth.TrustedService) error {
		t := newTable(a.stdout, "TYPE", "USER-ASSIGNED", "READ-ONLY BYPASS", "STANDS FOR")
		for _, s := range ts {
			t.row(s.Type, yesNo(s.UserAssigned), yesNo(s.BypassReadOnly), s.StandsFor)
		}
		return t.flush()
	}))
	return cmd
}

package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// app is what every command shares: the process's streams and
// environment, and the values of the global flags.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string

	output string // -o: table or json
	conn   connection
}

func newRootCommand(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:           "moat",
		Short:         "An OCI registry with network policy built in",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			switch a.output {
			case outputTable, outputJSON:
				return nil
			}
			return fmt.Errorf("-o %q: expected table or json", a.output)
		},
	}
	root.PersistentFlags().StringVarP(&a.output, "output", "o", outputTable, "output format: table or json")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{outputTable, outputJSON}, cobra.ShellCompDirectiveNoFileComp))
	root.AddCommand(newServeCommand(), a.newLogoutCommand(), a.newVersionCommand(), a.newConfigCommand())
	admin := []*cobra.Command{
		a.newLoginCommand(),
		a.newShowCommand(),
		a.newUpdateCommand(),
		a.newCheckHealthCommand(),
		a.newKeysCommand(),
		a.newNetworkRuleCommand(),
		a.newPrivateEndpointCommand(),
		a.newServiceCommand(),
		a.newTrustedServicesCommand(),
		a.newIdentityCommand(),
		a.newRoleCommand(),
		a.newScopeMapCommand(),
		a.newTokenCommand(),
		a.newAuditCommand(),
		a.newPolicyCommand(),
		a.newImportCommand(),
		a.newOperationCommand(),
		a.newTaskCommand(),
		a.newGCCommand(),
	}
	for _, cmd := range admin {
		a.addConnectionFlags(cmd)
		root.AddCommand(cmd)
	}
	return root
}

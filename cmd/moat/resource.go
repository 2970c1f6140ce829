package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
)

// Helpers the resource commands share: argument checks, paths, and the
// create / show / delete steps every resource has.

// nameArgs accepts exactly n positional arguments that can be path
// segments of the admin API (resource names, ids).
func nameArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			if n == 1 {
				return fmt.Errorf("%s: expected 1 argument (%s), got %d", cmd.CommandPath(), argNames(cmd), len(args))
			}
			return fmt.Errorf("%s: expected %d arguments (%s), got %d", cmd.CommandPath(), n, argNames(cmd), len(args))
		}
		for _, a := range args {
			if a == "" || a == "." || a == ".." || strings.ContainsAny(a, "/?#") {
				return fmt.Errorf("%s: %q is not a valid name", cmd.CommandPath(), a)
			}
		}
		return nil
	}
}

// argNames are the upper-case words of a command's Use line.
func argNames(cmd *cobra.Command) string {
	var names []string
	for f := range strings.FieldsSeq(cmd.Use) {
		if f == strings.ToUpper(f) && !strings.HasPrefix(f, "-") && !strings.HasPrefix(f, "[") {
			names = append(names, f)
		}
	}
	return strings.Join(names, " ")
}

// resourcePath joins a collection and escaped path segments:
// resourcePath("/identities", "bob", "secrets").
func resourcePath(collection string, segments ...string) string {
	p := collection
	for _, s := range segments {
		p += "/" + url.PathEscape(s)
	}
	return p
}

// mustNotExist fails when the resource at path exists, so `create` never
// silently replaces something (PUT would).
func mustNotExist(ctx context.Context, c *client, path, what string) error {
	_, err := c.get(ctx, path, nil)
	switch {
	case err == nil:
		return fmt.Errorf("%s already exists", what)
	case isStatus(err, http.StatusNotFound):
		return nil
	}
	return err
}

// deleteCommand is `<group> delete NAME`: DELETE collection/NAME, printing
// nothing on success.
func (a *app) deleteCommand(collection, what string) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a " + what,
		Args:  nameArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			_, err = c.send(cmd.Context(), call{method: http.MethodDelete, path: resourcePath(collection, args[0])}, nil)
			return err
		},
	}
}

// showCommand is `<group> show NAME`: GET collection/NAME, printed as the
// one row of the list table or as the server's JSON.
func showCommand[T any](a *app, collection, what string, print func([]T) error) *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show a " + what,
		Args:  nameArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var v T
			raw, err := c.get(cmd.Context(), resourcePath(collection, args[0]), &v)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(raw)
			}
			return print([]T{v})
		},
	}
}

// listCommand is `<group> list`: GET collection, printed as a table or as
// the server's {"value":[…]}.
func listCommand[T any](a *app, collection, what string, print func([]T) error) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List " + what,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			items, raw, err := list[T](cmd.Context(), c, collection, nil)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(raw)
			}
			return print(items)
		},
	}
}

// putAndPrint sends a PUT (or another call answering the resource) and
// prints the answer.
func putAndPrint[T any](ctx context.Context, a *app, c *client, k call, print func([]T) error) error {
	var v T
	raw, err := c.send(ctx, k, &v)
	if err != nil {
		return err
	}
	if a.jsonOutput() {
		return a.printJSON(raw)
	}
	return print([]T{v})
}

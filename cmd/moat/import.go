package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/moat-registry/moat/jobs"
	"github.com/spf13/cobra"
)

func (a *app) newImportCommand() *cobra.Command {
	var source, image, username, password string
	var passwordStdin, plainHTTP, noWait bool
	cmd := &cobra.Command{
		Use:   "import --source REGISTRY/REPOSITORY:TAG [--image REPOSITORY:TAG]",
		Short: "Copy an image (every platform, and its referrers) from another registry into this one",
		Long: `Copy an image from another registry into this one, like az acr import. The
server copies it (as its built-in importer, so this works into a registry whose
public access is disabled); the command shows the progress and prints the digest.

--source names the registry host: registry.example.com/team/app:1.2 or
…/app@sha256:…. --image is the repository and tag here (default: the source's).
--source-username with --source-password or --source-password-stdin log in to
the source registry; without them the source is read anonymously. (--username
and --password are, as for every admin verb, this server's admin credentials.)`,
		Example: `  moat import --source registry.example.com/library/alpine:3.20 --image base/alpine:3.20
  echo "$GHCR_TOKEN" | moat import --source ghcr.io/org/app:1 \
      --source-username bot --source-password-stdin
  moat import --source 127.0.0.1:5001/app:1 --image app:1 --plain-http --no-wait`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if source == "" {
				return errors.New("import: --source REGISTRY/REPOSITORY:TAG is required")
			}
			if image == "" {
				var err error
				if image, err = defaultImage(source); err != nil {
					return err
				}
			}
			req := jobs.ImportRequest{Source: source, Target: image, PlainHTTP: plainHTTP}
			switch {
			case passwordStdin && password != "":
				return errors.New("import: give --source-password or --source-password-stdin, not both")
			case passwordStdin:
				b, err := io.ReadAll(io.LimitReader(a.stdin, 64<<10))
				if err != nil {
					return fmt.Errorf("reading the source password from stdin: %v", err)
				}
				password = strings.TrimRight(string(b), "\r\n")
				if password == "" {
					return errors.New("import: --source-password-stdin: stdin is empty")
				}
			}
			if (username == "") != (password == "") {
				return errors.New("import: --source-username and a source password go together")
			}
			if username != "" {
				req.Credentials = &jobs.Credentials{Username: username, Password: password}
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			err = a.startAndWait(cmd.Context(), c, call{method: http.MethodPost, path: "/import", body: req}, noWait, "import of "+source)
			if err != nil && !plainHTTP && strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
				err = fmt.Errorf("%w (the source registry speaks plain HTTP: add --plain-http)", err)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&source, "source", "", "image to import: REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@DIGEST")
	f.StringVar(&image, "image", "", "REPOSITORY:TAG to write here (default: the source's repository and tag)")
	f.StringVar(&username, "source-username", "", "username at the source registry")
	f.StringVar(&password, "source-password", "", "password or token at the source registry (visible to other users of this machine; prefer --source-password-stdin)")
	f.BoolVar(&passwordStdin, "source-password-stdin", false, "read the source registry's password from stdin")
	f.BoolVar(&plainHTTP, "plain-http", false, "reach the source registry over plain HTTP")
	f.BoolVar(&noWait, "no-wait", false, "print the operation and return at once (follow it with moat operation show ID --wait)")
	return cmd
}

// defaultImage is the repository and tag of a source reference, without
// its registry host.
func defaultImage(source string) (string, error) {
	_, rest, ok := strings.Cut(source, "/")
	if !ok {
		return "", fmt.Errorf("--source %q: expected REGISTRY/REPOSITORY:TAG", source)
	}
	if strings.Contains(rest, "@") {
		return "", fmt.Errorf("--source %q names a digest: give --image REPOSITORY:TAG", source)
	}
	return rest, nil
}

// startAndWait sends a request that answers 202 with an operation (an
// import, a task run) and, unless noWait, follows the operation to its
// end. It prints the digest the operation produced (or the whole
// operation with -o json, or its row for an operation without a digest);
// a failed operation is an error worded "<what> failed: <its error>".
func (a *app) startAndWait(ctx context.Context, c *client, k call, noWait bool, what string) error {
	var op jobs.Operation
	raw, err := c.send(ctx, k, &op)
	if err != nil {
		return err
	}
	if op.ID == "" {
		return fmt.Errorf("%s %s: the server answered no operation", k.method, adminPrefix+k.path)
	}
	if !noWait && op.Status == jobs.StatusRunning {
		if op, raw, err = a.waitOperation(ctx, c, op.ID); err != nil {
			return err
		}
	}
	switch {
	case a.jsonOutput():
		if err := a.printJSON(raw); err != nil {
			return err
		}
	case op.Status == jobs.StatusSucceeded && op.Digest != "":
		if _, err := fmt.Fprintln(a.stdout, op.Digest); err != nil {
			return err
		}
	case op.Status != jobs.StatusFailed:
		if err := a.printOperations([]jobs.Operation{op}); err != nil {
			return err
		}
	}
	if op.Status == jobs.StatusFailed {
		msg := oneLine(op.Error)
		if msg == "" {
			msg = "no reason given (operation " + op.ID + ")"
		}
		return fmt.Errorf("%s failed: %s", what, msg)
	}
	return nil
}

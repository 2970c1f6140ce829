package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// loginPath is where `moat login` keeps the server and credentials:
// $MOAT_CONFIG, else $XDG_CONFIG_HOME/moat/config.json, else
// ~/.config/moat/config.json.
func (a *app) loginPath() (string, error) {
	if p := a.getenv("MOAT_CONFIG"); p != "" {
		return p, nil
	}
	if d := a.getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "moat", "config.json"), nil
	}
	home := a.getenv("HOME")
	if home == "" {
		var err error
		if home, err = os.UserHomeDir(); err != nil {
			return "", errors.New("cannot find the login file: set MOAT_CONFIG or HOME")
		}
	}
	return filepath.Join(home, ".config", "moat", "config.json"), nil
}

// loadLogin reads the login file; nil when there is none.
func (a *app) loadLogin() (*credentials, error) {
	path, err := a.loginPath()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the login file: %w", err)
	}
	var c credentials
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("login file %s is not valid JSON (run `moat logout` and log in again)", path)
	}
	if c.Server != "" {
		if c.Server, err = normalizeServer(c.Server); err != nil {
			return nil, fmt.Errorf("login file %s: %v", path, err)
		}
	}
	return &c, nil
}

// saveLogin writes the login file atomically, mode 0600 in a directory
// created 0700.
func (a *app) saveLogin(c credentials) (string, error) {
	path, err := a.loginPath()
	if err != nil {
		return "", err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("creating %s: %w", dir, err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, ".config-*.json")
	if err != nil {
		return "", fmt.Errorf("writing the login file: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return "", err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return "", fmt.Errorf("writing the login file: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("writing the login file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("writing the login file: %w", err)
	}
	return path, nil
}

func (a *app) newLoginCommand() *cobra.Command {
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Check credentials against a server and save them for the other verbs",
		Long: `Check credentials against a server (GET /admin/v1/registry) and save the
server, username and password in $MOAT_CONFIG, $XDG_CONFIG_HOME/moat/config.json
or ~/.config/moat/config.json (mode 0600). The other verbs use them when no
flag or MOAT_* variable names a server or credentials.`,
		Example: `  moat login --server https://registry.example.com --username admin --password-stdin < admin-password`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if passwordStdin && a.conn.password != "" {
				return errors.New("--password and --password-stdin are mutually exclusive")
			}
			creds := credentials{
				Server:   firstNonEmpty(a.conn.server, a.getenv("MOAT_SERVER"), defaultServer),
				Username: firstNonEmpty(a.conn.username, a.getenv("MOAT_USERNAME")),
				Password: a.conn.password,
			}
			var err error
			if creds.Server, err = normalizeServer(creds.Server); err != nil {
				return err
			}
			if passwordStdin {
				line, err := bufio.NewReader(a.stdin).ReadString('\n')
				if err != nil && line == "" {
					return errors.New("--password-stdin: nothing to read on stdin")
				}
				creds.Password = strings.TrimRight(line, "\r\n")
			}
			if creds.Password == "" {
				creds.Password = a.getenv("MOAT_PASSWORD")
			}
			if creds.Username == "" {
				return errors.New("a username is required: --username or MOAT_USERNAME")
			}
			if creds.Password == "" {
				return errors.New("a password is required: --password, --password-stdin or MOAT_PASSWORD")
			}
			c, err := a.clientFor(creds)
			if err != nil {
				return err
			}
			if _, err := c.send(cmd.Context(), call{method: http.MethodGet, path: "/registry"}, nil); err != nil {
				return fmt.Errorf("login to %s failed: %w", creds.Server, err)
			}
			path, err := a.saveLogin(creds)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Logged in to %s as %s (credentials saved in %s)\n", creds.Server, creds.Username, path)
			return nil
		},
	}
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of stdin")
	return cmd
}

func (a *app) newLogoutCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Remove the credentials `moat login` saved",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			path, err := a.loginPath()
			if err != nil {
				return err
			}
			err = os.Remove(path)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				fmt.Fprintln(a.stdout, "Not logged in")
				return nil
			case err != nil:
				return fmt.Errorf("removing the login file: %w", err)
			}
			fmt.Fprintf(a.stdout, "Removed %s\n", path)
			return nil
		},
	}
}

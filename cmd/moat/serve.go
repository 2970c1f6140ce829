package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/moat-registry/moat/config"
	"github.com/moat-registry/moat/server"
	"github.com/spf13/cobra"
)

// shutdownTimeout bounds the drain of in-flight requests on SIGTERM.
const shutdownTimeout = 30 * time.Second

func newServeCommand() *cobra.Command {
	var configFile, listen, data string
	var dev, selfSigned bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the registry",
		Long: `Run the registry.

With no flags, moat is a local development registry on 127.0.0.1:5000 with
data under ./moat-data: loopback callers may pull, push and delete without
logging in. Any other listen address needs a config file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(configFile)
			if err != nil {
				return configProblems(configFile, err)
			}
			if cmd.Flags().Changed("listen") {
				cfg.Listen = listen
			}
			if cmd.Flags().Changed("data") {
				cfg.Data = data
			}
			if cmd.Flags().Changed("dev") {
				cfg.Dev = dev
			}
			if selfSigned {
				cfg.TLS = config.TLSConfig{SelfSigned: true}
			}
			if configFile == "" && !cfg.ListenIsLoopback() {
				return fmt.Errorf("listen %s is not a loopback address: a config file (--config) is required to serve beyond this machine", cfg.Listen)
			}
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("invalid configuration:\n%w", err)
			}
			log, logs := newLogger(cfg.Log)
			defer logs.Close()
			srv, err := server.New(cfg, log)
			if err != nil {
				return err
			}
			if err := srv.Start(); err != nil {
				_ = srv.Shutdown(context.Background())
				return err
			}
			log.Info("moat is serving", "listen", srv.Addr().String(), "data", cfg.Data, "dev", cfg.Dev, "tls", cfg.TLS.Enabled())
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			<-ctx.Done()
			stop() // a second Ctrl-C or SIGTERM kills at once
			log.Info("shutting down; a second signal stops at once", "timeout", shutdownTimeout)
			sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				if errors.Is(err, context.DeadlineExceeded) {
					log.Error("requests still in flight after the shutdown timeout were cut", "timeout", shutdownTimeout, "err", err)
					return fmt.Errorf("shutdown did not finish within %s", shutdownTimeout)
				}
				return err
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "YAML configuration file")
	f.StringVar(&listen, "listen", "127.0.0.1:5000", "public listener address")
	f.StringVar(&data, "data", "./moat-data", "data directory")
	f.BoolVar(&dev, "dev", true, "loopback callers may pull, push and delete anonymously (off with --config)")
	f.BoolVar(&selfSigned, "tls-self-signed", false, "serve HTTPS with a generated self-signed certificate (development)")
	return cmd
}

// newLogger logs to stderr through a buffer flushed every 100 ms (and at
// exit): one write per batch, not per request.
func newLogger(c config.LogConfig) (*slog.Logger, io.Closer) {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	out := newLogWriter(os.Stderr)
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(out, opts)), out
	}
	return slog.New(slog.NewTextHandler(out, opts)), out
}

// configProblems explains why a config file did not load: every problem
// config.Check finds, with its line and key, or the load error itself.
func configProblems(file string, loadErr error) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return loadErr
	}
	_, problems := config.Check(b, os.Environ())
	if len(problems) == 0 {
		return loadErr
	}
	lines := make([]string, len(problems))
	for i, p := range problems {
		lines[i] = file + ":" + p.String()
	}
	return fmt.Errorf("invalid configuration:\n%s", strings.Join(lines, "\n"))
}

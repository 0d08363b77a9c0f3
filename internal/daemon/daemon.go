// Package daemon wires `nubo serve` together: accounts, the store (embedded
// etcd or a cluster), the services, and the HTTP endpoints.
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"nubo/internal/account"
	"nubo/internal/api/ec2"
	"nubo/internal/api/ec2query"
	"nubo/internal/keypair"
	"nubo/internal/resource"
	"nubo/internal/store"
)

// Config is `nubo serve`'s flags.
type Config struct {
	DataDir       string
	Listen        string
	EtcdEndpoints []string // empty: embedded etcd in DataDir/etcd
	Region        string
	Zones         []string // zone letters
	Log           *slog.Logger
	// Ready, if set, is called with the endpoint URL once requests are served.
	Ready func(endpoint string, accounts *account.Set)
}

// Info is what a running server records in DataDir for `nubo env`.
type Info struct {
	Endpoint string `json:"endpoint"`
	Region   string `json:"region"`
}

// InfoFile is where Info is written.
const InfoFile = "server.json"

// Run serves until ctx is cancelled, then shuts down cleanly.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Log
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("creating data dir: %w", err)
	}
	accounts, err := account.Load(cfg.DataDir)
	if err != nil {
		return err
	}

	endpoints := cfg.EtcdEndpoints
	if len(endpoints) == 0 {
		emb, err := store.StartEmbedded(ctx, filepath.Join(cfg.DataDir, "etcd"))
		if err != nil {
			return err
		}
		defer emb.Close()
		endpoints = []string{emb.Endpoint}
	}
	st, err := store.Connect(ctx, endpoints)
	if err != nil {
		return err
	}
	defer st.Close()

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	endpoint := "http://" + ln.Addr().String()

	api := &ec2.API{
		Region:   ec2.NewRegion(cfg.Region, ln.Addr().String(), cfg.Zones),
		KeyPairs: &keypair.Service{Store: st},
		Tags:     resource.Tagger{Store: st},
	}
	q := &ec2query.Server{
		Region:  cfg.Region,
		Actions: api.Actions(),
		Log:     log,
		Lookup: func(ak string) (ec2query.Account, bool) {
			a, ok := accounts.ByAccessKey(ak)
			return ec2query.Account{ID: a.ID, Secret: a.SecretAccessKey}, ok
		},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.Handle("/", q)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second}

	if err := writeInfo(cfg.DataDir, Info{Endpoint: endpoint, Region: cfg.Region}); err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("serving", "endpoint", endpoint, "region", cfg.Region, "etcd", endpoints)
	if cfg.Ready != nil {
		cfg.Ready(endpoint, accounts)
	}

	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutting down: %w", err)
	}
	return nil
}

func writeInfo(dir string, info Info) error {
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, InfoFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", InfoFile, err)
	}
	return os.Rename(tmp, filepath.Join(dir, InfoFile))
}

// ReadInfo reads what the last server wrote in dir.
func ReadInfo(dir string) (Info, error) {
	var info Info
	b, err := os.ReadFile(filepath.Join(dir, InfoFile))
	if err != nil {
		return info, err
	}
	return info, json.Unmarshal(b, &info)
}

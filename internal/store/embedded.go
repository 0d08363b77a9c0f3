package store

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// What nubo's transactions need of etcd (the defaults are 128 and 1.5 MiB).
const (
	MaxTxnOps       = 8192
	MaxRequestBytes = 16 << 20
)

// Embedded is a single-member etcd running inside the nubo process, the
// default for one machine. It listens on unix sockets in its directory only, so
// several nubo servers on one host never fight over ports; its clients use the
// ordinary etcd client, exactly as they would with an external cluster.
type Embedded struct {
	etcd     *embed.Etcd
	Endpoint string // "unix:///…/client.sock"
}

// StartEmbedded starts (or restarts, keeping its data) etcd in dir.
func StartEmbedded(ctx context.Context, dir string) (*Embedded, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating etcd dir: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	client := url.URL{Scheme: "unix", Path: filepath.Join(abs, "client.sock")}
	peer := url.URL{Scheme: "unix", Path: filepath.Join(abs, "peer.sock")}
	// Advertised URLs must be host:port; a single member never dials them.
	advPeer, _ := url.Parse("http://localhost:2380")
	advClient, _ := url.Parse("http://localhost:2379")

	cfg := embed.NewConfig()
	cfg.Name = "nubo"
	cfg.Dir = filepath.Join(abs, "data")
	cfg.ListenClientUrls = []url.URL{client}
	cfg.ListenPeerUrls = []url.URL{peer}
	cfg.AdvertiseClientUrls = []url.URL{*advClient}
	cfg.AdvertisePeerUrls = []url.URL{*advPeer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "error"
	cfg.LogOutputs = []string{filepath.Join(abs, "etcd.log")}
	// A launch of many instances is one transaction of a few writes per
	// instance (see instance.MaxLaunch); an external cluster needs the same
	// (--max-txn-ops, --max-request-bytes).
	cfg.MaxTxnOps = MaxTxnOps
	cfg.MaxRequestBytes = MaxRequestBytes
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = "1h"

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("starting embedded etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd: %w", err)
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("embedded etcd: not ready after 60s")
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
	return &Embedded{etcd: e, Endpoint: "unix://" + client.Path}, nil
}

// Close stops etcd; data stays on disk.
func (e *Embedded) Close() { e.etcd.Close() }

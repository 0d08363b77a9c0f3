package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"nubo/internal/agent"
	"nubo/internal/ami"
	"nubo/internal/blockstore"
	"nubo/internal/image"
	"nubo/internal/kms"
	"nubo/internal/network"
	netlinux "nubo/internal/network/linux"
	"nubo/internal/runtime"
	"nubo/internal/runtime/runc"
	"nubo/internal/snapstore"
	"nubo/internal/store"
	"nubo/internal/topology"
	"nubo/internal/volume"
	"nubo/internal/vpc"
)

// host is this machine's share of nubo: its runtime, network and agent.
type host struct {
	agent  *agent.Agent
	net    network.Driver
	blocks *blockstore.Store
	snaps  *snapstore.Store
	cancel context.CancelFunc
	unlive func()
	wg     sync.WaitGroup
}

// liveTTL is how long a machine that died stays live.
const liveTTL = 10 * time.Second

func (h *host) stop() {
	h.unlive()
	h.cancel()
	h.wg.Wait()
	_ = h.net.Close()    // stops the VPC resolvers; instances keep their network
	_ = h.blocks.Close() // attached volumes stay attached
	_ = h.snaps.Close()
}

// Blocks opens the EBS pool kept under dataDir.
func Blocks(ctx context.Context, dataDir string, log *slog.Logger) (*blockstore.Store, error) {
	return blockstore.Open(ctx, blockstore.Config{Dir: filepath.Join(dataDir, "ebs"), Log: log})
}

// NetConfig is how this host's data plane is named; the server records it in
// the data dir so that --cleanup can remove exactly what it made.
type NetConfig struct {
	Prefix     string       `json:"prefix"`
	HostLink   string       `json:"hostLink"`
	PublicPool netip.Prefix `json:"publicPool"`
	Egress     bool         `json:"egress,omitempty"`
}

const netConfigFile = "network.json"

// Network opens the data plane named by nc; metadata, if set, serves each
// VPC's instance metadata service on the listener its router gets.
func Network(nc NetConfig, metadata func(vpcID string, ln net.Listener)) (*netlinux.Driver, error) {
	return netlinux.New(netlinux.Config{Prefix: nc.Prefix, HostLink: nc.HostLink, PublicRange: nc.PublicPool, Egress: nc.Egress,
		Metadata: metadata})
}

// Runtime opens the instance runtime kept under dataDir.
func Runtime(dataDir string) (runtime.Driver, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	root, err := filepath.Abs(filepath.Join(dataDir, "runtime"))
	if err != nil {
		return nil, err
	}
	return runc.New(runc.Config{Root: root, Shim: []string{exe, "runc-shim"}})
}

func startHost(ctx context.Context, cfg Config, st *store.Store, images *ami.Registry, vpcs *vpc.Service,
	metadata func(vpcID string, ln net.Listener)) (*host, error) {
	rt, err := Runtime(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("opening the instance runtime: %w", err)
	}
	nc := NetConfig{Prefix: cfg.NetPrefix, HostLink: cfg.HostLink, PublicPool: cfg.PublicPool, Egress: cfg.Egress}
	nd, err := Network(nc, metadata)
	if err != nil {
		return nil, fmt.Errorf("opening the network: %w", err)
	}
	if err := writeJSON(filepath.Join(cfg.DataDir, netConfigFile), nc); err != nil {
		return nil, err
	}
	blocks, err := Blocks(ctx, cfg.DataDir, cfg.Log)
	if err != nil {
		return nil, fmt.Errorf("opening the EBS pool: %w", err)
	}
	snaps, err := snapstore.Open(snapstore.Config{Dir: filepath.Join(cfg.DataDir, "ebs", "snapshots"), Log: cfg.Log})
	if err != nil {
		return nil, fmt.Errorf("opening the EBS snapshot store: %w", err)
	}
	if _, err := topology.Register(ctx, st, cfg.Region, cfg.Machine, cfg.Layout); err != nil {
		return nil, err
	}
	builder := &image.Builder{Dir: cfg.ImageDir, Log: cfg.Log}
	if err := registerImages(ctx, builder, images); err != nil {
		return nil, err
	}
	// runc puts instance <id> in cgroup /nubo/<id> of every v1 hierarchy.
	freezer := &snapstore.Freezer{Root: "/sys/fs/cgroup/freezer/nubo", Log: cfg.Log.With("component", "freezer")}
	a := &agent.Agent{
		Store: st, Host: cfg.Machine, Runtime: rt, Network: nd, VPCs: vpcs,
		Roots:         volume.Roots{Dir: filepath.Join(cfg.DataDir, "volumes")},
		Blocks:        blocks,
		Keys:          &kms.Service{Store: st},
		Snapshots:     snaps,
		Freezer:       freezer,
		Images:        images,
		ImageRoot:     func(im ami.Image) string { return filepath.Join(cfg.ImageDir, im.Location, "rootfs") },
		Dir:           filepath.Join(cfg.DataDir, "instances"),
		Log:           cfg.Log.With("component", "agent"),
		TerminatedTTL: cfg.TerminatedTTL,
	}
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	// The hosts take instances while this machine's agent runs.
	unlive, err := topology.Live(hctx, st, cfg.Machine, liveTTL, cfg.Log)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("reporting %s live: %w", cfg.Machine, err)
	}
	h := &host{agent: a, net: nd, blocks: blocks, snaps: snaps, cancel: cancel, unlive: unlive}
	h.wg.Add(2)
	go func() {
		defer h.wg.Done()
		if err := a.Run(hctx); err != nil {
			cfg.Log.Error("agent stopped", "err", err)
		}
	}()
	go func() { // pick up images built while serving
		defer h.wg.Done()
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-hctx.Done():
				return
			case <-t.C:
				if err := registerImages(hctx, builder, images); err != nil {
					cfg.Log.Warn("registering images", "err", err)
				}
			}
		}
	}()
	return h, nil
}

// registerImages makes every image built on this host a public AMI.
func registerImages(ctx context.Context, b *image.Builder, reg *ami.Registry) error {
	ms, err := b.List()
	if err != nil {
		return fmt.Errorf("listing images: %w", err)
	}
	for _, m := range ms {
		if err := reg.EnsurePublic(ctx, AMIOf(m)); err != nil {
			return fmt.Errorf("registering image %s: %w", m.Name, err)
		}
	}
	return nil
}

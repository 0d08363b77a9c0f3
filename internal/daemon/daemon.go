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
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"nubo/internal/account"
	"nubo/internal/ami"
	"nubo/internal/api/ec2"
	"nubo/internal/api/ec2query"
	"nubo/internal/api/eic"
	"nubo/internal/eni"
	"nubo/internal/imds"
	"nubo/internal/instance"
	"nubo/internal/keypair"
	"nubo/internal/kms"
	"nubo/internal/placementgroup"
	"nubo/internal/resource"
	"nubo/internal/runtime"
	"nubo/internal/runtime/runc"
	"nubo/internal/secgroup"
	"nubo/internal/snapshot"
	"nubo/internal/store"
	"nubo/internal/topology"
	"nubo/internal/volume"
	"nubo/internal/vpc"
)

// Config is `nubo serve`'s flags.
type Config struct {
	DataDir       string
	Listen        string
	EtcdEndpoints []string // empty: embedded etcd in DataDir/etcd
	Region        string
	Zones         []string // zone letters
	ImageDir      string   // built images; default DataDir/images
	PublicPool    netip.Prefix
	NetPrefix     string // names of nubo's network namespaces (default "nubo")
	HostLink      string // the one link nubo adds to the host (default "nubo0")
	// Egress lets instances with public IPs reach beyond this machine,
	// through the host (forwarding and a masquerade table); off by default.
	Egress bool
	// Machine is this machine's name (its agent's); Layout the hosts it
	// serves in every zone (Zones are filled in from the region).
	Machine       string
	Layout        topology.Layout
	TerminatedTTL time.Duration
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
	// Instances' roots are mounted below the data dir, and runc opens them
	// as the instance's root user, a host uid that must be able to traverse
	// it: o+x, no listing. Secrets in it are files of mode 0600.
	if err := os.MkdirAll(cfg.DataDir, 0o711); err != nil {
		return fmt.Errorf("creating data dir: %w", err)
	}
	if err := os.Chmod(cfg.DataDir, 0o711); err != nil {
		return fmt.Errorf("making data dir traversable: %w", err)
	}
	if err := checkTraversable(cfg.DataDir); err != nil {
		return err
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

	region := ec2.NewRegion(cfg.Region, ln.Addr().String(), cfg.Zones)
	var zones []string
	var vzones []vpc.Zone
	for _, z := range region.Zones {
		zones = append(zones, z.Name)
		vzones = append(vzones, vpc.Zone{Name: z.Name, ID: z.ID})
	}
	vpcs := &vpc.Service{Store: st, Region: cfg.Region, Zones: vzones}
	keys := &keypair.Service{Store: st}
	groups := &secgroup.Service{Store: st, DefaultVPC: func(ctx context.Context, account string) (string, error) {
		v, err := vpcs.DefaultVPC(ctx, account)
		return v.ID, err
	}}
	images := &ami.Registry{Store: st, Region: cfg.Region}
	metadata, err := imds.New(ctx, st, cfg.Region, log.With("component", "imds"))
	if err != nil {
		return err
	}
	// Volumes are kept on this machine's disks (one machine for now).
	volumes := &volume.Service{Store: st, Host: cfg.Machine, Zones: zones, KMS: &kms.Service{Store: st}}
	snapshots := &snapshot.Service{Store: st, Volumes: volumes, KMS: volumes.KMS}
	volumes.Snapshots = snapshots // CreateVolume restores them
	amis := &ami.Maker{Images: images, Volumes: volumes, Snapshots: snapshots}
	images.Settle = amis.Settle          // pending AMIs: available once their snapshots are
	snapshots.InUse = amis.SnapshotInUse // DeleteSnapshot: InvalidSnapshot.InUse
	cfg.Layout.Zones = zones
	host, err := startHost(ctx, cfg, st, images, vpcs, metadata.Serve)
	if err != nil {
		return err
	}
	defer host.stop()
	api := &ec2.API{
		Region:   region,
		KeyPairs: keys,
		Tags:     resource.Tagger{Store: st},
		Images:   images,
		Instances: &instance.Service{Store: st, Region: cfg.Region, Zones: zones, Images: images, KeyPairs: keys,
			VPCs: vpcs, Public: &vpc.PublicPool{Store: st, Prefix: cfg.PublicPool}},
		Console: host.agent.Console,
		VPCs:    vpcs,

		SecurityGroups: groups,
		Volumes:        volumes,
		Snapshots:      snapshots,
		AMIs:           amis,
	}
	api.Instances.Volumes = volumes // root volumes are block volumes
	api.ENIs = &eni.Service{Store: st, VPCs: vpcs}
	api.Instances.ENIs = api.ENIs
	api.PlacementGroups = &placementgroup.Service{Store: st, Region: cfg.Region, InUse: api.Instances.InGroup}
	api.Instances.PlacementGroups = api.PlacementGroups.Lookup
	api.Instances.Hibernation = hibernation(ctx, host.agent.Runtime)
	if err := api.Instances.AdoptInterfaces(ctx); err != nil { // instances older than interface records
		log.Warn("adopting primary interfaces", "err", err)
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
	connect := &eic.Handler{Region: cfg.Region, Store: st, Instances: api.Instances, Lookup: q.Lookup, Log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	// EC2 Instance Connect shares the endpoint; its calls name themselves in
	// X-Amz-Target, which EC2 Query requests never carry.
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if eic.IsRequest(r) {
			connect.ServeHTTP(w, r)
			return
		}
		q.ServeHTTP(w, r)
	})
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

// checkTraversable fails unless every directory above dir lets others
// search it (o+x), which instance roots need to reach their root filesystems.
func checkTraversable(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for d := abs; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("data dir %s: %s is not searchable by others (instances open their root filesystems as an unprivileged host uid): chmod o+x %s", abs, d, d)
		}
		if d == "/" {
			return nil
		}
	}
}

func writeInfo(dir string, info Info) error {
	return writeJSON(filepath.Join(dir, InfoFile), info)
}

// writeJSON writes v to path atomically (mode 0600).
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path+".tmp", append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return os.Rename(path+".tmp", path)
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

// hibernation is why this host cannot hibernate instances (nil: it can):
// RunInstances refuses HibernationOptions.Configured with the reason,
// rather than a stop failing later.
func hibernation(ctx context.Context, rt runtime.Driver) func() error {
	var err error
	if _, ok := rt.(runtime.Hibernator); !ok {
		err = errors.New("the instance runtime cannot save instances")
	} else if cerr := runc.CheckCRIU(ctx, runc.CRIUPath); cerr != nil {
		err = fmt.Errorf("CRIU 4 does not work here (make install builds it): %w", cerr)
	}
	if err != nil {
		err = fmt.Errorf("hibernation is not available on this nubo: %w", err)
	}
	return func() error { return err }
}

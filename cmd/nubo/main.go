// Command nubo is a real EC2 you run yourself.
//
//	nubo serve [--data-dir DIR] [--listen HOST:PORT] [--etcd-endpoints URLS]
//	nubo env   [--data-dir DIR]
//	nubo identity-cert [--data-dir DIR] [--region R]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"syscall"
	"time"

	"nubo/internal/account"
	"nubo/internal/daemon"
	"nubo/internal/image"
	"nubo/internal/runtime/runc"
	"nubo/internal/topology"
)

const usage = `nubo is a real EC2 you run yourself.

Usage:
  nubo serve [flags]   run the API server (and, by default, an embedded etcd)
  nubo env [flags]     print shell lines that point AWS tools at nubo:
                         eval "$(nubo env)"
  nubo image build NAME [flags]
                       build an image (debian-12-minimal) from Debian's
                       packages into the image dir; nubo serve registers it
  nubo image import NAME TARBALL [flags]
                       make an image of your own root filesystem
  nubo identity-cert [flags]
                       print the certificate that verifies instance
                       identity documents (their signature and pkcs7)
  nubo topology [fail|repair] [flags]
                       show zones, racks, hosts and what runs where;
                       fail (or repair) a host, a rack or a zone

Run "nubo COMMAND -h" for a command's flags.
`

const defaultDataDir = "/var/lib/nubo"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "env":
		err = env(os.Args[2:])
	case "image":
		err = imageCmd(os.Args[2:])
	case "topology":
		err = topologyCmd(os.Args[2:])
	case "identity-cert":
		err = identityCert(os.Args[2:])
	case "runc-shim": // started by the runtime, one per running instance
		os.Exit(runc.ShimMain(os.Args[2:]))
	case "-h", "--help", "help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "nubo: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nubo:", err)
		os.Exit(1)
	}
}

func serve(args []string) error {
	fl := flag.NewFlagSet("serve", flag.ExitOnError)
	dataDir := fl.String("data-dir", defaultDataDir, "where nubo keeps its state")
	listen := fl.String("listen", "127.0.0.1:8773", "address of the EC2 API endpoint")
	etcd := fl.String("etcd-endpoints", "", "comma-separated etcd endpoints; empty runs an embedded etcd in the data dir")
	region := fl.String("region", "us-east-1", "the region this endpoint serves")
	zones := fl.String("zones", "a,b,c", "availability zone letters of the region")
	level := fl.String("log-level", "info", "debug, info, warn or error")
	imageDir := fl.String("image-dir", "", "where built images are kept (default DATA_DIR/images)")
	hostName := fl.String("host-name", "", "this machine's name, which its agent serves hosts under (default the machine's hostname)")
	racks := fl.Int("racks", 8, "racks of hosts this machine serves in every availability zone")
	perRack := fl.Int("hosts-per-rack", 2, "hosts in each rack")
	vcpus := fl.Int("host-vcpus", 64*goruntime.NumCPU(), "vCPUs each host offers to instances (containers share cores)")
	memMiB := fl.Int64("host-memory-mib", 4*hostMemoryMiB(), "memory each host offers to instances, MiB (limits, not reservations)")
	slots := fl.Int("host-slots", 0, "most instances each host runs at once (0: no limit)")
	ttl := fl.Duration("terminated-ttl", time.Hour, "how long terminated instances stay visible")
	pool := fl.String("public-pool", "198.18.0.0/15", "the range public and Elastic IPs come from; the host routes it to nubo (never off this machine)")
	netPrefix := fl.String("net-prefix", "nubo", "prefix of the network namespaces nubo makes")
	hostLink := fl.String("host-link", "nubo0", "name of the one link nubo adds to the host, toward --public-pool")
	egress := fl.Bool("egress", false, "let instances with public IPs reach beyond this machine: nubo turns on the host's IPv4 forwarding and masquerades the public pool (one nftables table of its own); off, nothing leaves the machine")
	cleanup := fl.Bool("cleanup", false, "stop and remove every instance, cgroup and mount nubo made on this host, then exit")
	_ = fl.Parse(args)
	if *cleanup {
		return daemon.Cleanup(context.Background(), *dataDir)
	}
	if *imageDir == "" {
		*imageDir = filepath.Join(*dataDir, "images")
	}
	publicPool, err := netip.ParsePrefix(*pool)
	if err != nil || !publicPool.Addr().Is4() || publicPool.Bits() > 28 || publicPool.Masked() != publicPool {
		return fmt.Errorf("--public-pool %q: want an IPv4 CIDR of at least 16 addresses", *pool)
	}
	if *hostName == "" {
		*hostName, _ = os.Hostname()
	}
	if *racks < 1 || *perRack < 1 || *slots < 0 || *vcpus < 1 || *memMiB < 1 {
		return fmt.Errorf("--racks, --hosts-per-rack, --host-vcpus and --host-memory-mib must be at least 1, --host-slots at least 0")
	}

	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return daemon.Run(ctx, daemon.Config{
		DataDir:       *dataDir,
		Listen:        *listen,
		EtcdEndpoints: splitList(*etcd),
		Region:        *region,
		Zones:         splitList(*zones),
		ImageDir:      *imageDir,
		Machine:       *hostName,
		Layout:        topology.Layout{Racks: *racks, HostsPerRack: *perRack, VCPUs: *vcpus, MemoryMiB: *memMiB, Slots: *slots},
		TerminatedTTL: *ttl,
		PublicPool:    publicPool.Masked(),
		NetPrefix:     *netPrefix,
		HostLink:      *hostLink,
		Egress:        *egress,
		Log:           log,
		Ready: func(endpoint string, accounts *account.Set) {
			a := accounts.Default()
			fmt.Printf(`
nubo is serving the EC2 API
  endpoint:          %[1]s
  region:            %[2]s
  access key id:     %[3]s
  secret access key: %[4]s

Point the aws CLI at it, in another shell:
  eval "$(%[5]s env --data-dir %[6]s)"
  aws ec2 describe-availability-zones
or, explicitly:
  AWS_ACCESS_KEY_ID=%[3]s AWS_SECRET_ACCESS_KEY=%[4]s \
    aws --endpoint-url %[1]s --region %[2]s ec2 describe-availability-zones

`, endpoint, *region, a.AccessKeyID, a.SecretAccessKey, os.Args[0], *dataDir)
		},
	})
}

func env(args []string) error {
	fl := flag.NewFlagSet("env", flag.ExitOnError)
	dataDir := fl.String("data-dir", defaultDataDir, "the data dir of the nubo server")
	_ = fl.Parse(args)
	info, err := daemon.ReadInfo(*dataDir)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no nubo server has run with data dir %s: start `nubo serve --data-dir %s` first", *dataDir, *dataDir)
	} else if err != nil {
		return err
	}
	accounts, err := account.Load(*dataDir)
	if err != nil {
		return err
	}
	a := accounts.Default()
	fmt.Printf(`export AWS_ENDPOINT_URL=%s
export AWS_ACCESS_KEY_ID=%s
export AWS_SECRET_ACCESS_KEY=%s
export AWS_DEFAULT_REGION=%s
export AWS_PAGER=
# aws CLI < 2.13 ignores AWS_ENDPOINT_URL: pass it explicitly.
aws() { command aws --endpoint-url "$AWS_ENDPOINT_URL" "$@"; }
`, info.Endpoint, a.AccessKeyID, a.SecretAccessKey, info.Region)
	return nil
}

// identityCert prints the region's identity certificate, with which
// anyone can verify an instance's identity document, e.g.
// openssl smime -verify -in pkcs7 -inform PEM -certfile cert -noverify.
func identityCert(args []string) error {
	fl := flag.NewFlagSet("identity-cert", flag.ExitOnError)
	dataDir := fl.String("data-dir", defaultDataDir, "the data dir of the nubo server")
	region := fl.String("region", "", "the region whose certificate to print (default the server's)")
	etcd := fl.String("etcd-endpoints", "", "comma-separated etcd endpoints; empty: the data dir's embedded etcd")
	_ = fl.Parse(args)
	if *region == "" {
		*region = "us-east-1"
		if info, err := daemon.ReadInfo(*dataDir); err == nil {
			*region = info.Region
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cert, err := daemon.IdentityCert(ctx, *dataDir, splitList(*etcd), *region)
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(cert)
	return err
}

const imageUsage = `usage:
  nubo image build NAME [--data-dir DIR] [--image-dir DIR]
        build debian-12-minimal (or debian-12) from Debian's packages
  nubo image import NAME TARBALL [--init /sbin/init] [--description TEXT] [--data-dir DIR] [--image-dir DIR]
        make an image of your own root filesystem (a tar or tar.gz, e.g. from docker export; - for stdin)`

func imageCmd(args []string) error {
	if len(args) < 2 || (args[0] != "build" && args[0] != "import") || (args[0] == "import" && len(args) < 3) {
		return fmt.Errorf("%s", imageUsage)
	}
	verb, name, rest := args[0], args[1], args[2:]
	tarball := ""
	if verb == "import" {
		tarball, rest = args[2], args[3:]
	}
	fl := flag.NewFlagSet("image "+verb, flag.ExitOnError)
	dataDir := fl.String("data-dir", defaultDataDir, "the data dir of the nubo server")
	imageDir := fl.String("image-dir", "", "where images are kept (default DATA_DIR/images)")
	init := fl.String("init", "/sbin/init", "import: the image's PID 1 (space-separated arguments)")
	desc := fl.String("description", "", "import: the image's description")
	_ = fl.Parse(rest)
	if *imageDir == "" {
		*imageDir = filepath.Join(*dataDir, "images")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var m image.Manifest
	var err error
	if verb == "build" {
		m, err = daemon.BuildImage(ctx, *imageDir, name, os.Stderr)
	} else {
		in := os.Stdin
		if tarball != "-" {
			if in, err = os.Open(tarball); err != nil {
				return err
			}
			defer in.Close()
		}
		b := &image.Builder{Dir: *imageDir}
		m, err = b.Import(ctx, name, in, image.WithInit(strings.Fields(*init)...), image.WithDescription(*desc))
	}
	if err != nil {
		return err
	}
	fmt.Printf("image %s ready in %s; nubo serve registers it as a public AMI\n", m.Name, *imageDir)
	return nil
}

// hostMemoryMiB is the machine's RAM.
func hostMemoryMiB() int64 {
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil {
		return 4096
	}
	return int64(si.Totalram) * int64(si.Unit) >> 20
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

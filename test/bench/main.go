// Command bench measures nubo's EC2 API against a real `nubo serve` from
// concurrent Go clients, and prints requests per second and p50/p99 latency
// per call. Each Describe call is measured twice: through aws-sdk-go-v2 (what
// a user sees, including the SDK's signing and XML decoding on this same
// machine) and as raw SigV4-signed HTTP whose body is read but not decoded
// (the server's own cost). GET /healthz (no signing, no store) is the
// baseline measured in the same run; ratios are p50 against it. With root,
// it goes on to instances (instances.go), the VPC data plane (netbench) and
// security groups (secgroups.go), launch → first SSH login (ssh.go), EBS
// volume I/O inside an instance (volumes.go), EBS snapshots (snapshots.go),
// ENI failover (enis.go), placement groups (placement.go), hibernation
// (hibernate.go); -only picks one.
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	osexec "os/exec"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/crypto/ssh"

	"nubo/internal/nubotest"
)

func main() {
	duration := flag.Duration("duration", 5*time.Second, "how long to run each call")
	workers := flag.Int("concurrency", 8, "concurrent clients")
	keys := flag.Int("keys", 1000, "key pairs stored before DescribeKeyPairs")
	launches := flag.Int("launches", 20, "instances launched one at a time")
	many := flag.Int("many", 50, "instances launched at once")
	sgChanges := flag.Int("sg-changes", 200, "security group rule changes measured (half authorizes, half revokes)")
	sgScaleChanges := flag.Int("sg-scale-changes", 50, "security group rule changes measured at each scale level")
	sgMaxRules := flag.Int("sg-max-rules", 20000, "the largest number of security group rules the scale benchmark holds")
	sgBudget := flag.Duration("sg-budget", 3*time.Minute, "time the security group benchmarks may take (the scale levels stop before)")
	logins := flag.Int("logins", 20, "launches per image measured to the first SSH login")
	volumeReps := flag.Int("volume-reps", 3, "runs per volume I/O measurement")
	moves := flag.Int("eni-moves", 20, "ENI moves measured (failover)")
	placementReps := flag.Int("placement-reps", 5, "runs of each in-process scheduler measurement (the median is printed)")
	placementLaunches := flag.Int("placement-launches", 15, "launches per placement group variant measured end to end")
	hibernations := flag.Int("hibernations", 10, "hibernate/resume rounds measured (each alternating with a normal stop/start)")
	only := flag.String("only", "", "run only the api, instances, network, secgroups, ssh, volumes, snapshots, enis, placement or hibernate benchmarks")
	flag.Parse()
	var err error
	if *only == "" || *only == "api" {
		err = run(*duration, *workers, *keys)
	}
	if err == nil && (*only == "" || *only == "instances") {
		err = benchInstances(context.Background(), *launches, *many)
	}
	if err == nil && (*only == "" || *only == "network") {
		err = benchNetwork(context.Background())
	}
	if err == nil && (*only == "" || *only == "secgroups") {
		err = benchSecurityGroups(context.Background(), *sgChanges, *sgScaleChanges, *sgMaxRules, *sgBudget)
	}
	if err == nil && (*only == "" || *only == "ssh") {
		err = benchSSH(context.Background(), *logins)
	}
	if err == nil && (*only == "" || *only == "volumes") {
		err = benchVolumes(context.Background(), *volumeReps)
	}
	if err == nil && (*only == "" || *only == "snapshots") {
		err = benchSnapshots(context.Background())
	}
	if err == nil && (*only == "" || *only == "enis") {
		err = benchENIFailover(context.Background(), *moves)
	}
	if err == nil && (*only == "" || *only == "placement") {
		err = benchPlacement(context.Background(), *placementReps, *placementLaunches)
	}
	if err == nil && (*only == "" || *only == "hibernate") {
		err = benchHibernate(context.Background(), *hibernations)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func exec(name string, args ...string) error { return osexec.Command(name, args...).Run() }

type call struct {
	name string
	form url.Values                  // the raw request
	sdk  func(context.Context) error // the same through the SDK
}

func run(duration time.Duration, workers, keys int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "nubo-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := nubotest.Start(ctx, dir)
	if err != nil {
		return err
	}
	defer func() {
		srv.Stop()
		_ = exec(srv.Bin, "serve", "--cleanup", "--data-dir", dir) // its EBS pool and data plane
	}()
	cfg, err := srv.Config(nil)
	if err != nil {
		return err
	}
	c := ec2.NewFromConfig(cfg)
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * workers}}
	signer := v4.NewSigner()
	raw := func(form url.Values) func(context.Context) error {
		body := form.Encode()
		sum := sha256.Sum256([]byte(body))
		hash := hex.EncodeToString(sum[:])
		return func(ctx context.Context) error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.Endpoint+"/", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
			if err := signer.SignHTTP(ctx, creds, req, hash, "ec2", srv.Region, time.Now()); err != nil {
				return err
			}
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if _, err := io.Copy(io.Discard, resp.Body); err != nil {
				return err
			}
			if resp.StatusCode != 200 {
				return fmt.Errorf("HTTP %d", resp.StatusCode)
			}
			return nil
		}
	}

	fmt.Printf("nubo API benchmark: %d concurrent clients, %s per call\n\n", workers, duration)
	fmt.Printf("%-48s %9s %10s %10s %9s\n", "call", "req/s", "p50", "p99", "p50/base")

	base := measure(ctx, "GET /healthz (baseline: HTTP only)", duration, workers, func(ctx context.Context) error {
		resp, err := hc.Get(srv.Endpoint + "/healthz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return err
	}, 0)

	var n atomic.Int64
	imp := measureCount(ctx, fmt.Sprintf("sdk ImportKeyPair (%d keys, one etcd txn each)", keys), keys, workers, func(ctx context.Context) error {
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		sp, _ := ssh.NewPublicKey(pub)
		_, err := c.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{KeyName: aws.String(fmt.Sprintf("bench-%05d", n.Add(1))), PublicKeyMaterial: ssh.MarshalAuthorizedKey(sp)})
		return err
	}, base.p50)
	if imp.errs > 0 {
		return fmt.Errorf("ImportKeyPair failed %d times", imp.errs)
	}

	action := func(a string, kv ...string) url.Values {
		v := url.Values{"Action": {a}, "Version": {"2016-11-15"}}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	calls := []call{
		{"DescribeAvailabilityZones", action("DescribeAvailabilityZones"), func(ctx context.Context) error {
			_, err := c.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{})
			return err
		}},
		{"DescribeInstanceTypes (first page, 100 types)", action("DescribeInstanceTypes"), func(ctx context.Context) error {
			_, err := c.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{})
			return err
		}},
		{"DescribeInstanceTypes (filter c5.*)", action("DescribeInstanceTypes", "Filter.1.Name", "instance-type", "Filter.1.Value.1", "c5.*"), func(ctx context.Context) error {
			_, err := c.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{Filters: []types.Filter{{Name: aws.String("instance-type"), Values: []string{"c5.*"}}}})
			return err
		}},
		{fmt.Sprintf("DescribeKeyPairs (all %d)", keys), action("DescribeKeyPairs"), func(ctx context.Context) error {
			out, err := c.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{})
			if err == nil && len(out.KeyPairs) != keys {
				err = fmt.Errorf("DescribeKeyPairs returned %d key pairs, want %d", len(out.KeyPairs), keys)
			}
			return err
		}},
		{"DescribeKeyPairs (one, by name)", action("DescribeKeyPairs", "KeyName.1", "bench-00001"), func(ctx context.Context) error {
			_, err := c.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{KeyNames: []string{"bench-00001"}})
			return err
		}},
	}
	for _, cl := range calls {
		measure(ctx, "raw "+cl.name, duration, workers, raw(cl.form), base.p50)
		measure(ctx, "sdk "+cl.name, duration, workers, cl.sdk, base.p50)
	}
	return nil
}

type result struct {
	n, errs  int
	elapsed  time.Duration
	p50, p99 time.Duration
}

// measure runs call from workers goroutines for d and prints its figures.
func measure(ctx context.Context, name string, d time.Duration, workers int, call func(context.Context) error, base time.Duration) result {
	deadline := time.Now().Add(d)
	return drive(ctx, name, workers, func() bool { return time.Now().Before(deadline) }, call, base)
}

// measureCount runs call exactly total times across workers.
func measureCount(ctx context.Context, name string, total, workers int, call func(context.Context) error, base time.Duration) result {
	var left atomic.Int64
	left.Store(int64(total))
	return drive(ctx, name, workers, func() bool { return left.Add(-1) >= 0 }, call, base)
}

func drive(ctx context.Context, name string, workers int, more func() bool, call func(context.Context) error, base time.Duration) result {
	var (
		mu   sync.Mutex
		lat  []time.Duration
		errs int
		wg   sync.WaitGroup
	)
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			bad := 0
			for more() {
				t := time.Now()
				if err := call(ctx); err != nil {
					if bad++; bad == 1 {
						fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
					}
					continue
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			lat, errs = append(lat, mine...), errs+bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	r := result{n: len(lat), errs: errs, elapsed: time.Since(start)}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		r.p50, r.p99 = lat[len(lat)*50/100], lat[min(len(lat)-1, len(lat)*99/100)]
	}
	ratio := "-"
	if base > 0 {
		ratio = fmt.Sprintf("%.1fx", float64(r.p50)/float64(base))
	}
	fmt.Printf("%-48s %9.0f %10s %10s %9s", name, float64(r.n)/r.elapsed.Seconds(), r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), ratio)
	if errs > 0 {
		fmt.Printf("  (%d errors)", errs)
	}
	fmt.Println()
	return r
}

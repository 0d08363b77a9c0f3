// Command bench measures nubo's EC2 API from a concurrent aws-sdk-go-v2
// client against a real `nubo serve`, and prints requests per second and
// p50/p99 latency per call. GET /healthz (no signing, no store) is the
// baseline measured in the same run; ratios are against it.
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"flag"
	"fmt"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/crypto/ssh"

	"nubo/internal/nubotest"
)

func main() {
	duration := flag.Duration("duration", 5*time.Second, "how long to run each call")
	workers := flag.Int("concurrency", 8, "concurrent clients")
	keys := flag.Int("keys", 1000, "key pairs stored before DescribeKeyPairs")
	flag.Parse()
	if err := run(*duration, *workers, *keys); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
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
	defer srv.Stop()
	cfg, err := srv.Config(nil)
	if err != nil {
		return err
	}
	cfg.HTTPClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	c := ec2.NewFromConfig(cfg)

	fmt.Printf("nubo API benchmark: %d concurrent clients, %s per call\n\n", workers, duration)
	fmt.Printf("%-44s %9s %10s %10s %8s\n", "call", "req/s", "p50", "p99", "p50/base")

	base := measure(ctx, "GET /healthz (baseline: HTTP only)", duration, workers, func(ctx context.Context) error {
		resp, err := cfg.HTTPClient.(*http.Client).Get(srv.Endpoint + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err
	}, 0)

	var mu sync.Mutex
	n := 0
	next := func() int { mu.Lock(); defer mu.Unlock(); n++; return n }
	importRes := measureCount(ctx, fmt.Sprintf("ImportKeyPair (store %d keys, etcd txn)", keys), keys, workers, func(ctx context.Context) error {
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		sp, _ := ssh.NewPublicKey(pub)
		_, err := c.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{KeyName: aws.String(fmt.Sprintf("bench-%05d", next())), PublicKeyMaterial: ssh.MarshalAuthorizedKey(sp)})
		return err
	}, base.p50)
	if importRes.errs > 0 {
		return fmt.Errorf("ImportKeyPair failed %d times", importRes.errs)
	}

	measure(ctx, "DescribeAvailabilityZones", duration, workers, func(ctx context.Context) error {
		_, err := c.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{})
		return err
	}, base.p50)
	measure(ctx, "DescribeInstanceTypes (first page of 100)", duration, workers, func(ctx context.Context) error {
		_, err := c.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{})
		return err
	}, base.p50)
	measure(ctx, "DescribeInstanceTypes (filter c5.*)", duration, workers, func(ctx context.Context) error {
		_, err := c.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{Filters: []types.Filter{{Name: aws.String("instance-type"), Values: []string{"c5.*"}}}})
		return err
	}, base.p50)
	measure(ctx, fmt.Sprintf("DescribeKeyPairs (all %d)", keys), duration, workers, func(ctx context.Context) error {
		out, err := c.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{})
		if err == nil && len(out.KeyPairs) != keys {
			err = fmt.Errorf("DescribeKeyPairs returned %d key pairs, want %d", len(out.KeyPairs), keys)
		}
		return err
	}, base.p50)
	measure(ctx, "DescribeKeyPairs (one, by name)", duration, workers, func(ctx context.Context) error {
		_, err := c.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{KeyNames: []string{"bench-00001"}})
		return err
	}, base.p50)
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
	var mu sync.Mutex
	left := total
	return drive(ctx, name, workers, func() bool {
		mu.Lock()
		defer mu.Unlock()
		left--
		return left >= 0
	}, call, base)
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
					bad++
					if bad == 1 {
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
	fmt.Printf("%-44s %9.0f %10s %10s %8s", name, float64(r.n)/r.elapsed.Seconds(), r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), ratio)
	if errs > 0 {
		fmt.Printf("  (%d errors)", errs)
	}
	fmt.Println()
	return r
}

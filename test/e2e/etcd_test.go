package e2e

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"go.etcd.io/etcd/server/v3/embed"

	"nubo/internal/account"
	"nubo/internal/store"
)

// etcdCluster runs a one-member etcd cluster on a loopback TCP port, apart
// from any nubo, as an operator's cluster would be.
func etcdCluster(t *testing.T) string {
	t.Helper()
	port := func() int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
	client, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", port()))
	peer, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", port()))
	cfg := embed.NewConfig()
	cfg.Name = "ops"
	cfg.Dir = filepath.Join(t.TempDir(), "etcd")
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*client}, []url.URL{*client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*peer}, []url.URL{*peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.MaxTxnOps, cfg.MaxRequestBytes = store.MaxTxnOps, store.MaxRequestBytes // as README asks of operators
	cfg.LogLevel = "error"
	cfg.LogOutputs = []string{filepath.Join(t.TempDir(), "etcd.log")}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		t.Fatal("etcd not ready")
	}
	return client.String()
}

// TestExternalEtcd: --etcd-endpoints puts nubo's state in an existing etcd
// cluster. A second nubo with another data dir (as on another host) and the
// same account's credentials sees it, also after the first one is gone.
func TestExternalEtcd(t *testing.T) {
	endpoint := etcdCluster(t)
	srv1, c1 := start(t, "--etcd-endpoints", endpoint, "--host-name", "host-1")
	if _, err := c1.CreateKeyPair(ctx(t), &ec2.CreateKeyPairInput{KeyName: aws.String("shared"), KeyType: types.KeyTypeEd25519}); err != nil {
		t.Fatal(err)
	}
	dir2 := t.TempDir()
	creds, err := os.ReadFile(filepath.Join(srv1.DataDir, account.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir2, account.FileName), creds, 0o600); err != nil {
		t.Fatal(err)
	}
	srv1.Kill()
	_, c2 := startIn(t, dir2, "--etcd-endpoints", endpoint, "--host-name", "host-2")
	d, err := c2.DescribeKeyPairs(ctx(t), &ec2.DescribeKeyPairsInput{KeyNames: []string{"shared"}})
	if err != nil || len(d.KeyPairs) != 1 {
		t.Fatalf("the second server does not see the key pair in the cluster: %v %+v", err, d)
	}
	if _, err := os.Stat(filepath.Join(dir2, "etcd")); !os.IsNotExist(err) {
		t.Fatalf("with --etcd-endpoints nubo started an embedded etcd anyway: %v", err)
	}
}

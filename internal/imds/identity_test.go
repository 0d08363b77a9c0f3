package imds

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"
	"golang.org/x/sys/unix"

	"nubo/internal/instance"
	"nubo/internal/store/storetest"
)

func TestIdentityDocumentAndSignatures(t *testing.T) {
	e := newEnv(t)
	doc := e.value(t, "/latest/dynamic/instance-identity/document")
	want := `{
  "accountId" : "123456789012",
  "architecture" : "x86_64",
  "availabilityZone" : "us-east-1a",
  "billingProducts" : null,
  "devpayProductCodes" : null,
  "marketplaceProductCodes" : null,
  "imageId" : "ami-0123456789abcdef0",
  "instanceId" : "i-0123456789abcdef0",
  "instanceType" : "t3.micro",
  "kernelId" : null,
  "pendingTime" : "2024-05-06T07:08:09Z",
  "privateIp" : "172.31.0.10",
  "ramdiskId" : null,
  "region" : "us-east-1",
  "version" : "2017-09-30"
}`
	if doc != want {
		t.Fatalf("document\n%s\nwant\n%s", doc, want)
	}
	var parsed map[string]any
	if err := json.Unmarshal([]byte(doc), &parsed); err != nil {
		t.Fatal(err)
	}
	cert := e.s.Identity.Cert

	// /signature: base64 of RSA SHA-256 over the document.
	sigText := e.value(t, "/latest/dynamic/instance-identity/signature")
	for _, line := range strings.Split(sigText, "\n") {
		if len(line) > 76 {
			t.Fatalf("signature line of %d characters", len(line))
		}
	}
	sig, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(sigText, "\n", ""))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(doc))
	if err := rsa.VerifyPKCS1v15(cert.PublicKey.(*rsa.PublicKey), crypto.SHA256, sum[:], sig); err != nil {
		t.Fatalf("signature does not verify: %v", err)
	}

	// /pkcs7 and /rsa2048: signed data holding the document.
	for _, path := range []string{"pkcs7", "rsa2048"} {
		body := e.value(t, "/latest/dynamic/instance-identity/"+path)
		der, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(body, "\n", ""))
		if err != nil {
			t.Fatal(err)
		}
		p7, err := pkcs7.Parse(der)
		if err != nil {
			t.Fatal(err)
		}
		if string(p7.Content) != doc {
			t.Fatalf("%s holds %q", path, p7.Content)
		}
		pool := x509.NewCertPool()
		pool.AddCert(cert)
		if err := p7.VerifyWithChain(pool); err != nil {
			t.Fatalf("%s does not verify: %v", path, err)
		}
		opensslVerify(t, body, doc, e.s.Identity.CertPEM)
	}

	// The document follows the record.
	e.modify(t, func(in *instance.Instance) { in.InstanceType = "m5.large" })
	if !strings.Contains(e.value(t, "/latest/dynamic/instance-identity/document"), `"instanceType" : "m5.large"`) {
		t.Fatal("document did not follow the record")
	}
}

// opensslVerify checks a /pkcs7 body as AWS's instructions do, when the
// openssl binary is here.
func opensslVerify(t *testing.T, body, doc string, certPEM []byte) {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Log("no openssl binary: verified with Go only")
		return
	}
	dir := t.TempDir()
	p7 := filepath.Join(dir, "pkcs7")
	cert := filepath.Join(dir, "certificate")
	if err := os.WriteFile(p7, []byte("-----BEGIN PKCS7-----\n"+body+"\n-----END PKCS7-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cert, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "smime", "-verify", "-in", p7, "-inform", "PEM", "-certfile", cert, "-noverify").CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte(doc)) || !bytes.Contains(out, []byte("Verification successful")) {
		t.Fatalf("openssl smime -verify: %v\n%s", err, out)
	}
}

func TestIdentityIsMadeOnceAndShared(t *testing.T) {
	st := storetest.New(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	ids := make([]*Identity, 4)
	secrets := make([][]byte, 4)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if ids[i], err = LoadIdentity(ctx, st, "eu-west-1"); err != nil {
				t.Error(err)
			}
			if secrets[i], err = LoadSecret(ctx, st); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for i := range ids {
		if !bytes.Equal(ids[i].CertPEM, ids[0].CertPEM) || !bytes.Equal(secrets[i], secrets[0]) {
			t.Fatal("racing servers disagree on the identity or the secret")
		}
	}
	c := ids[0].Cert
	if c.PublicKey.(*rsa.PublicKey).N.BitLen() != 2048 || !strings.Contains(c.Subject.CommonName, "eu-west-1") || c.NotAfter.Before(time.Now().AddDate(50, 0, 0)) {
		t.Fatalf("certificate %+v", c.Subject)
	}
	other, err := LoadIdentity(ctx, st, "us-west-2")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(other.CertPEM, ids[0].CertPEM) {
		t.Fatal("two regions share an identity")
	}
}

// The token's reply leaves with the hop limit as its IP TTL; other replies
// keep the system's.
func TestHopLimitSetsTheTokensTTL(t *testing.T) {
	e := newEnv(t)
	e.modify(t, func(in *instance.Instance) { in.MetadataOptions.HTTPPutResponseHopLimit = 3 })
	tr := &http.Transport{MaxConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	send := func(method, path string, h map[string]string) {
		t.Helper()
		req, _ := http.NewRequest(method, e.url+path, nil)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s %s: %d", method, path, resp.StatusCode)
		}
	}
	send("GET", "/latest/meta-data/instance-id", nil)
	conn := (<-e.conns).(*net.TCPConn) // the server's side, kept alive
	ttl := func() int {
		t.Helper()
		raw, err := conn.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var n int
		var serr error
		if err := raw.Control(func(fd uintptr) { n, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TTL) }); err != nil || serr != nil {
			t.Fatal(err, serr)
		}
		return n
	}
	if got := ttl(); got == 3 {
		t.Fatal("a GET's connection has the hop limit as TTL")
	}
	send("PUT", "/latest/api/token", map[string]string{TokenTTLHeader: "60"})
	select {
	case <-e.conns:
		t.Fatal("the client opened another connection")
	default:
	}
	if got := ttl(); got != 3 {
		t.Fatalf("token connection TTL %d, want 3", got)
	}
}

// Package nubotest starts a real `nubo serve` process on a free loopback port
// with its own data dir, for end-to-end tests and benchmarks, and hands out
// aws-sdk-go-v2 clients pointed at it.
package nubotest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"nubo/internal/account"
	netlinux "nubo/internal/network/linux"
)

// Binary returns the nubo binary to run: $NUBO_BIN, or bin/nubo at the module root.
func Binary() (string, error) {
	if b := os.Getenv("NUBO_BIN"); b != "" {
		return filepath.Abs(b)
	}
	_, file, _, _ := runtime.Caller(0)
	b := filepath.Join(filepath.Dir(file), "..", "..", "bin", "nubo")
	if _, err := os.Stat(b); err != nil {
		return "", fmt.Errorf("nubo binary not found at %s (run `make build` or set NUBO_BIN): %w", b, err)
	}
	return b, nil
}

// Server is one running `nubo serve`.
type Server struct {
	Bin      string
	DataDir  string
	Listen   string
	Endpoint string
	Region   string
	Args     []string // extra flags

	mu     sync.Mutex
	cmd    *exec.Cmd
	stderr bytes.Buffer
	done   chan struct{}
}

// Start runs nubo serve on a free port with dataDir (created if needed).
func Start(ctx context.Context, dataDir string, args ...string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	// Instance roots reach their root filesystems below the data dir, as an
	// unprivileged host uid: test dirs (mode 0700) must let them through.
	for d := filepath.Clean(dataDir); d != filepath.Clean(os.TempDir()) && d != "/" && d != "."; d = filepath.Dir(d) {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, err
		}
		if err := os.Chmod(d, 0o711); err != nil {
			return nil, err
		}
	}
	// Servers on one host must not share a data plane: each gets its own
	// namespace prefix, host link and public range (a /24 of 198.19.0.0/16).
	// EphemeralConfig picks a range no route of the host covers yet.
	eph, err := netlinux.EphemeralConfig()
	if err != nil {
		return nil, err
	}
	args = append([]string{"--net-prefix", eph.Prefix, "--host-link", eph.HostLink,
		"--public-pool", eph.PublicRange.String()}, args...)
	s := &Server{Bin: bin, DataDir: dataDir, Listen: fmt.Sprintf("127.0.0.1:%d", port), Region: "us-east-1", Args: args}
	s.Endpoint = "http://" + s.Listen
	return s, s.Restart(ctx)
}

// Restart starts the process again (after Kill or Stop) with the same data dir and port.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	args := append([]string{"serve", "--data-dir", s.DataDir, "--listen", s.Listen}, s.Args...)
	cmd := exec.Command(s.Bin, args...)
	s.stderr.Reset()
	cmd.Stderr = &s.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// Pdeathsig fires when the OS thread that started the child ends, not
	// the process: Go ends a thread whose goroutine exits locked (as
	// netns.Do's do), and the server would die under a test. The thread
	// that starts it stays locked, and alive, until the server exits.
	s.cmd, s.done = cmd, make(chan struct{})
	started := make(chan error, 1)
	go func(done chan struct{}) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(done)
	}(s.done)
	if err := <-started; err != nil {
		s.cmd = nil
		return fmt.Errorf("starting nubo: %w", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("nubo exited during start: %s", s.stderr.String())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		resp, err := http.Get(s.Endpoint + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("nubo not healthy after 60s: %s", s.stderr.String())
}

// Kill sends SIGKILL and waits for the process to die.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

// Stop sends SIGTERM and waits for a clean exit.
func (s *Server) Stop() { s.signal(syscall.SIGTERM) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	<-s.done
	s.cmd = nil
}

// Stderr is what the current (or last) process wrote to stderr.
func (s *Server) Stderr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

// Accounts reads the server's credentials file.
func (s *Server) Accounts() (*account.Set, error) { return account.Load(s.DataDir) }

// Config is an aws.Config for account a (the default account when a is nil).
func (s *Server) Config(a *account.Account) (aws.Config, error) {
	if a == nil {
		set, err := s.Accounts()
		if err != nil {
			return aws.Config{}, err
		}
		d := set.Default()
		a = &d
	}
	return aws.Config{
		Region:       s.Region,
		Credentials:  credentials.NewStaticCredentialsProvider(a.AccessKeyID, a.SecretAccessKey, ""),
		BaseEndpoint: aws.String(s.Endpoint),
		// One attempt: a retry would hide what a test should see.
		RetryMaxAttempts: 1,
		HTTPClient:       HTTPClient,
	}, nil
}

// HTTPClient is the HTTP client for aws-sdk-go-v2 in tests: it buffers
// responses (see bufferedTransport) and keeps idle connections.
var HTTPClient = &http.Client{Transport: bufferedTransport{transport}}

// transport keeps enough idle connections for concurrent benchmark clients.
var transport = func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	return t
}()

// bufferedTransport reads each response body whole before the SDK decodes
// it. aws-sdk-go-v2 closes the request body as soon as a response arrives; when
// the server answers before the transport's write loop has finished (easy on
// loopback with a busy CPU), the transport closes the connection under the
// SDK's slow XML decoder ("use of closed network connection",
// aws/aws-sdk-go-v2#2737). Reading first takes the race away.
type bufferedTransport struct{ base http.RoundTripper }

func (t bufferedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("reading response: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp, nil
}

// EC2 is an EC2 client for the default account.
func (s *Server) EC2() (*ec2.Client, error) {
	cfg, err := s.Config(nil)
	if err != nil {
		return nil, err
	}
	return ec2.NewFromConfig(cfg), nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

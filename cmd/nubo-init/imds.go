package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"
)

// defaultIMDS is where EC2, and nubo, serve instance metadata.
const defaultIMDS = "http://169.254.169.254"

// errNotFound: the metadata service has no such item (404), e.g. no key
// pair or no user data.
var errNotFound = errors.New("not found in instance metadata")

// errNoIMDS: the instance has no route to the metadata service at all (a
// network namespace with loopback only, as in tests), or the service is
// turned off for it (403, as EC2 answers when HttpEndpoint is disabled).
// Waiting cannot help.
var errNoIMDS = errors.New("no instance metadata service")

// errForbidden: the service refuses this instance.
var errForbidden = errors.New("HTTP 403: the instance metadata service is turned off for this instance")

// imds is a client of the instance metadata service, IMDSv2: one session
// token, then GETs that carry it. Requests go over one kept-alive
// connection (for a second after the last); each has a short timeout,
// since the service is on the host.
type imds struct {
	base    string // e.g. http://169.254.169.254
	client  *http.Client
	token   string
	timeout time.Duration // per request
}

func newIMDS(base string, timeout time.Duration) *imds {
	tr := &http.Transport{
		Proxy:               nil, // never a proxy for link-local metadata
		DialContext:         (&net.Dialer{Timeout: timeout}).DialContext,
		MaxIdleConnsPerHost: 1,
		// Closed soon after the boot's burst of requests: an established
		// connection left open would fail a hibernation (CRIU will not
		// save it).
		IdleConnTimeout:    time.Second,
		DisableCompression: true,
	}
	return &imds{base: strings.TrimRight(base, "/"), client: &http.Client{Transport: tr}, timeout: timeout}
}

// connect gets a session token, retrying quickly until ctx ends: the
// service may answer a few milliseconds after the instance's network is up.
// It gives up at once when there is no route to it.
func (m *imds) connect(ctx context.Context) error {
	if m.token != "" {
		return nil
	}
	delay := 10 * time.Millisecond
	for {
		err := m.fetchToken(ctx)
		if err == nil {
			return nil
		}
		if errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, errForbidden) {
			return fmt.Errorf("%w: %w", errNoIMDS, err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("instance metadata token: %w (last: %w)", ctx.Err(), err)
		case <-t.C:
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}

func (m *imds) fetchToken(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, m.base+"/latest/api/token", nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "21600")
	resp, err := m.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return err
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusForbidden:
		return errForbidden
	default:
		return fmt.Errorf("instance metadata token: HTTP %d", resp.StatusCode)
	}
	m.token = strings.TrimSpace(string(b))
	return nil
}

// get fetches path (e.g. "meta-data/instance-id", below /latest/), at most
// limit bytes; errNotFound for a 404. A failed request is tried again twice.
func (m *imds) get(ctx context.Context, path string, limit int64) ([]byte, error) {
	if m.token == "" {
		return nil, errors.New("instance metadata: no session token")
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var b []byte
		b, err = m.getOnce(ctx, path, limit)
		if err == nil || errors.Is(err, errNotFound) || ctx.Err() != nil {
			return b, err
		}
		time.Sleep(time.Duration(attempt+1) * 20 * time.Millisecond)
	}
	return nil, err
}

func (m *imds) getOnce(ctx context.Context, path string, limit int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.base+"/latest/"+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-aws-ec2-metadata-token", m.token)
	resp, err := m.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("%s: %w", path, errNotFound)
	default:
		return nil, fmt.Errorf("instance metadata %s: HTTP %d", path, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("instance metadata %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("instance metadata %s: more than %d bytes", path, limit)
	}
	return b, nil
}

// close drops the kept-alive connection.
func (m *imds) close() { m.client.CloseIdleConnections() }

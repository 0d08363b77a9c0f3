package nubotest

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"nubo/internal/network/netns"
)

// Loop is a client inside a network namespace (an instance's) asking one
// URL over and over, each request on a new connection with a timeout, as a
// health checker would; it records every answer, so a test can see when
// the answers switched servers and how many requests failed meanwhile.
type Loop struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	answers []Answer
}

// Answer is one request's outcome: the body, or the error.
type Answer struct {
	At   time.Time // when it ended
	Body string
	Err  error
}

// StartLoop asks url from inside nsPath every interval until Stop; each
// request gives up after timeout, so none hangs.
func StartLoop(nsPath, url string, interval, timeout time.Duration) *Loop {
	ctx, cancel := context.WithCancel(context.Background())
	l := &Loop{cancel: cancel, done: make(chan struct{})}
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{
		DisableKeepAlives: true, // a new connection each time: a switch shows at once
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return netns.Dial(ctx, nsPath, &net.Dialer{}, "tcp4", addr)
		},
	}}
	go func() {
		defer close(l.done)
		for ctx.Err() == nil {
			a := Answer{}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			resp, err := client.Do(req)
			if err == nil {
				var b []byte
				b, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				a.Body = strings.TrimSpace(string(b))
			}
			a.At, a.Err = time.Now(), err
			if ctx.Err() != nil {
				return
			}
			l.mu.Lock()
			l.answers = append(l.answers, a)
			l.mu.Unlock()
			select {
			case <-time.After(interval):
			case <-ctx.Done():
			}
		}
	}()
	return l
}

// Answers returns what came back so far.
func (l *Loop) Answers() []Answer {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Answer(nil), l.answers...)
}

// WaitFor waits up to limit for an answer body after t0 and returns when it came.
func (l *Loop) WaitFor(body string, t0 time.Time, limit time.Duration) (time.Time, bool) {
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		for _, a := range l.Answers() {
			if a.Err == nil && a.Body == body && a.At.After(t0) {
				return a.At, true
			}
		}
	}
	return time.Time{}, false
}

// Stop ends the loop (waiting for the request in flight) and counts the
// requests that were answered and those that failed.
func (l *Loop) Stop() (answered, failed int) {
	l.cancel()
	<-l.done
	for _, a := range l.Answers() {
		if a.Err != nil {
			failed++
		} else {
			answered++
		}
	}
	return answered, failed
}

// Package imds is the instance metadata service: what instances reach at
// http://169.254.169.254. The network driver opens a listener at that
// address inside each VPC's router and hands it to Server.Serve; a caller is
// known by its source address, the instance's private IP in that VPC (the
// router's strict reverse-path filtering on every instance port guarantees
// it), never by anything in the request.
//
// It is EC2's IMDS: IMDSv1 and IMDSv2 (session tokens, the PUT response hop
// limit as the IP TTL of the token's packets), the meta-data tree, user data
// and the signed instance identity document, all read live from the
// instance's record and governed by its MetadataOptions.
package imds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"nubo/internal/instance"
	"nubo/internal/store"
)

// Server serves the metadata service of every VPC of a region.
type Server struct {
	Store  *store.Store
	Region string
	// Secret signs IMDSv2 tokens (LoadSecret): one per deployment.
	Secret []byte
	// Identity signs identity documents (LoadIdentity).
	Identity *Identity
	// Lookup finds the instance of vpcID whose private address is ip, or
	// returns ErrNoInstance; New sets an Index.
	Lookup func(ctx context.Context, vpcID string, ip netip.Addr) (instance.Instance, error)
	Now    func() time.Time
	Log    *slog.Logger
}

// New returns the region's server over st, with the deployment's secret and
// the region's identity (made on first use).
func New(ctx context.Context, st *store.Store, region string, log *slog.Logger) (*Server, error) {
	secret, err := LoadSecret(ctx, st)
	if err != nil {
		return nil, err
	}
	id, err := LoadIdentity(ctx, st, region)
	if err != nil {
		return nil, err
	}
	x := &Index{Store: st, Region: region}
	return &Server{Store: st, Region: region, Secret: secret, Identity: id, Lookup: x.Lookup, Log: log}, nil
}

type connKey struct{}

// Serve serves vpcID's metadata service on ln until ln is closed.
func (s *Server) Serve(vpcID string, ln net.Listener) {
	log := s.log().With("vpc", vpcID)
	srv := &http.Server{
		Handler: s.Handler(vpcID),
		// Handlers reach the connection to set its IP TTL.
		ConnContext:       func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, connKey{}, c) },
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Debug("metadata service up", "addr", ln.Addr())
	if err := srv.Serve(ln); !errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("metadata service stopped", "err", err)
	}
	_ = srv.Close() // and the connections still open
}

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Handler answers the metadata requests of vpcID's instances.
func (s *Server) Handler(vpcID string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, vpcID) })
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, vpcID string) {
	w.Header().Set("Server", "EC2ws")
	ip, err := callerIP(r)
	if err != nil {
		fail(w, http.StatusForbidden)
		return
	}
	in, err := s.Lookup(r.Context(), vpcID, ip)
	if errors.Is(err, ErrNoInstance) {
		s.log().Debug("metadata request from no instance", "vpc", vpcID, "ip", ip)
		fail(w, http.StatusForbidden)
		return
	} else if err != nil {
		s.log().Error("metadata: finding the caller", "vpc", vpcID, "ip", ip, "err", err)
		fail(w, http.StatusInternalServerError)
		return
	}
	opts := in.MetadataOptions.Effective()
	if opts.HTTPEndpoint != "enabled" {
		fail(w, http.StatusForbidden) // EC2: "the IMDS is turned off"
		return
	}
	if r.URL.Path == "/latest/api/token" {
		s.token(w, r, in, opts)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		fail(w, http.StatusMethodNotAllowed)
		return
	}
	now := s.now()
	if tok := r.Header.Get(TokenHeader); tok != "" {
		left, ok := checkToken(s.Secret, in.ID, tok, now)
		if !ok {
			fail(w, http.StatusUnauthorized)
			return
		}
		w.Header().Set(TokenTTLHeader, strconv.Itoa(int(math.Ceil(left.Seconds()))))
	} else if opts.HTTPTokens == "required" {
		fail(w, http.StatusUnauthorized)
		return
	}
	v := &view{ctx: r.Context(), s: s, in: in, now: now}
	body, contentType, err := v.get(r.URL.Path)
	if errors.Is(err, errNotFound) {
		fail(w, http.StatusNotFound)
		return
	} else if err != nil {
		s.log().Error("metadata", "instance", in.ID, "path", r.URL.Path, "err", err)
		fail(w, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Accept-Ranges", "none")
	_, _ = w.Write(body)
}

// token answers PUT /latest/api/token: a session token for the caller,
// sent with the IP TTL set to the instance's hop limit, so that it cannot
// reach further than that (a container behind one more hop never gets it).
func (s *Server) token(w http.ResponseWriter, r *http.Request, in instance.Instance, opts instance.MetadataOptions) {
	switch r.Method {
	case http.MethodPut:
	case http.MethodOptions:
		w.Header().Set("Allow", "OPTIONS, PUT")
		w.Header().Set("Content-Type", "text/plain")
		return
	default:
		w.Header().Set("Allow", "OPTIONS, PUT")
		fail(w, http.StatusMethodNotAllowed)
		return
	}
	// A proxy forwarding a request is how SSRF reaches the service.
	if _, ok := r.Header["X-Forwarded-For"]; ok {
		fail(w, http.StatusForbidden)
		return
	}
	ttl, err := strconv.Atoi(r.Header.Get(TokenTTLHeader))
	if err != nil || ttl < 1 || ttl > MaxTokenTTL {
		fail(w, http.StatusBadRequest)
		return
	}
	if err := setTTL(r, opts.HTTPPutResponseHopLimit); err != nil {
		s.log().Error("metadata: setting the hop limit", "instance", in.ID, "err", err)
		fail(w, http.StatusInternalServerError)
		return
	}
	tok := newToken(s.Secret, in.ID, s.now().Add(time.Duration(ttl)*time.Second))
	w.Header().Set(TokenTTLHeader, strconv.Itoa(ttl))
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte(tok))
}

// setTTL sets the IP TTL of the packets the request's connection sends from
// now on.
func setTTL(r *http.Request, ttl int) error {
	c, ok := r.Context().Value(connKey{}).(net.Conn)
	if !ok {
		return errors.New("no connection in the request's context")
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return fmt.Errorf("%T has no socket", c)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TTL, ttl)
	}); err != nil {
		return err
	}
	return serr
}

func callerIP(r *http.Request) (netip.Addr, error) {
	if c, ok := r.Context().Value(connKey{}).(net.Conn); ok {
		if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
			return ap.Addr().Unmap(), nil
		}
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("caller address %q: %w", r.RemoteAddr, err)
	}
	return ap.Addr().Unmap(), nil
}

// fail answers code with the page EC2's metadata service sends.
func fail(w http.ResponseWriter, code int) {
	title := strconv.Itoa(code) + " - " + http.StatusText(code)
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(strings.ReplaceAll(errorPage, "TITLE", title)))
}

const errorPage = `<?xml version="1.0" encoding="iso-8859-1"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"
	"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
 <head>
  <title>TITLE</title>
 </head>
 <body>
  <h1>TITLE</h1>
 </body>
</html>
`

package topology

import (
	"context"
	"errors"
	"fmt"
	"time"

	"nubo/internal/store"
)

// Selector names hosts: one host by ID, or every host of a rack (Zone and
// Rack), or of a zone (Zone alone).
type Selector struct {
	Zone, Rack, Host string
}

func (s Selector) String() string {
	switch {
	case s.Host != "":
		return "host " + s.Host
	case s.Rack != "":
		return "rack " + s.Zone + "/" + s.Rack
	}
	return "zone " + s.Zone
}

func (s Selector) match(h Host) bool {
	switch {
	case s.Host != "":
		return h.ID == s.Host
	case s.Rack != "":
		return h.Zone == s.Zone && h.Rack == s.Rack
	}
	return s.Zone != "" && h.Zone == s.Zone
}

// Fail marks the selected hosts failed (reason, now) and returns them. It
// only marks: stopping what ran on them is the caller's (package instance).
func Fail(ctx context.Context, st *store.Store, sel Selector, reason string) ([]Host, error) {
	f := &Failure{Reason: reason, Time: time.Now().UTC()}
	return mark(ctx, st, sel, func(h *Host) { h.Failed = f })
}

// Repair clears the failure of the selected hosts.
func Repair(ctx context.Context, st *store.Store, sel Selector) ([]Host, error) {
	return mark(ctx, st, sel, func(h *Host) { h.Failed = nil })
}

// A launch checks the records of the hosts it places on, so it either
// commits before the mark (and the caller's sweep, reading afterwards, finds
// its instances) or retries and sees the host down.
func mark(ctx context.Context, st *store.Store, sel Selector, set func(*Host)) ([]Host, error) {
	for {
		out, err := markOnce(ctx, st, sel, set)
		if !errors.Is(err, store.ErrConflict) {
			return out, err
		}
	}
}

func markOnce(ctx context.Context, st *store.Store, sel Selector, set func(*Host)) ([]Host, error) {
	v, err := Read(ctx, st)
	if err != nil {
		return nil, err
	}
	var out []Host
	var ops []store.Op
	for _, h := range v.Hosts {
		if !sel.match(h) {
			continue
		}
		set(&h)
		out = append(out, h)
		ops = append(ops, store.Op{Key: HostKey(h.ID), Value: h, ModRev: v.hostRev[h.ID]})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no host matches %s", sel)
	}
	if err := st.Apply(ctx, ops...); err != nil {
		return nil, fmt.Errorf("marking %s: %w", sel, err) // ErrConflict: mark retries
	}
	return out, nil
}

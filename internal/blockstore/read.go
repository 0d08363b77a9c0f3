package blockstore

import (
	"context"
	"fmt"
	"os"
)

// OpenFile opens volume id's file as the host sees it: the plaintext of an
// encrypted volume, which must be unlocked. Snapshots read volumes this way
// and restores fill them; flag is os.OpenFile's (O_DIRECT is welcome: an
// encrypted file is served buffered whatever it asks). The caller closes it.
func (s *Store) OpenFile(ctx context.Context, id string, flag int) (*os.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx, id); err != nil {
		return nil, err
	}
	if err := s.unlocked(id); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(s.volFile(id), flag, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", id, err)
	}
	return f, nil
}

// Device returns the loop device volume id is attached to; false when it
// is not attached.
func (s *Store) Device(ctx context.Context, id string) (Device, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx, id); err != nil {
		return Device{}, false, err
	}
	d, attached, err := loopFind(s.volFile(id))
	return d.Device, attached, err
}

package blockstore

import (
	"context"
	"fmt"
	"os"
)

// Attach binds the volume to a loop device and returns it; a volume already
// attached returns its device.
func (s *Store) Attach(ctx context.Context, id string) (Device, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx, id); err != nil {
		return Device{}, err
	}
	if err := s.unlocked(id); err != nil {
		return Device{}, err
	}
	d, attached, err := loopFind(s.volFile(id))
	switch {
	case err != nil:
		return Device{}, err
	case attached && d.autoclear:
		return Device{}, fmt.Errorf("%s: %s is still detaching: %w", id, d.Path, ErrBusy)
	case attached:
		return d.Device, nil
	}
	dev, err := loopAttach(ctx, s.volFile(id), s.directIO)
	if err != nil {
		return Device{}, fmt.Errorf("attaching %s: %w", id, err)
	}
	s.log.Info("attached volume", "volume", id, "device", dev.String(), "directIO", loopDirectIO(dev, s.volFile(id)))
	return dev, nil
}

// Detach flushes the volume's device to the pool and unbinds it. Idempotent.
// ErrBusy: something still has the device open; the kernel unbinds it at
// the last close.
func (s *Store) Detach(ctx context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx, id); err != nil {
		return err
	}
	return s.detach(ctx, id)
}

func (s *Store) detach(ctx context.Context, id string) error {
	d, attached, err := loopFind(s.volFile(id))
	if err != nil || !attached {
		return err
	}
	if err := loopDetach(ctx, d.Device); err != nil {
		return fmt.Errorf("detaching %s: %w", id, err)
	}
	s.log.Info("detached volume", "volume", id, "device", d.Path)
	return nil
}

// Resize grows the volume to size bytes (a multiple of 4096). An attached
// volume's device sees the new size at once; growing the filesystem on it
// is the instance's business, as on EC2.
func (s *Store) Resize(ctx context.Context, id string, size int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx, id); err != nil {
		return err
	}
	if size <= 0 || size%4096 != 0 {
		return fmt.Errorf("volume size %d: not a positive multiple of 4096: %w", size, ErrInvalid)
	}
	if err := s.unlocked(id); err != nil {
		return err
	}
	f, err := os.OpenFile(s.volFile(id), os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("resizing %s: %w", id, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if size < fi.Size() {
		return fmt.Errorf("%s from %d to %d bytes: %w", id, fi.Size(), size, ErrShrink)
	}
	if size == fi.Size() {
		return nil
	}
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("resizing %s: %w", id, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("resizing %s: %w", id, err)
	}
	if d, attached, err := loopFind(s.volFile(id)); err != nil {
		return err
	} else if attached {
		if err := loopSetCapacity(d.Device); err != nil {
			return fmt.Errorf("resizing %s: %w", id, err)
		}
	}
	s.log.Info("resized volume", "volume", id, "from", fi.Size(), "to", size)
	return nil
}

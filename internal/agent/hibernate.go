package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"nubo/internal/instance"
	"nubo/internal/runtime"
	"nubo/internal/volume"
)

// Hibernation: an instance launched with it configured is laid out so its
// processes can be saved (runtime.Spec.Hibernatable). Stopping it with
// Hibernate set saves them into its root volume (encrypted EBS), beside the
// overlay's upper layer and out of the instance's sight; its next start
// restores them instead of booting, then erases the saved memory.
//
//	<rootvol>/hibernation/image     the runtime's checkpoint
//	<rootvol>/hibernation/complete  written last: the image is whole

func (a *Agent) hibernationDir(id string) string { return filepath.Join(a.rootvol(id), "hibernation") }

func (a *Agent) hibernator() (runtime.Hibernator, bool) {
	h, ok := a.Runtime.(runtime.Hibernator)
	return h, ok
}

// saved reports whether the instance's root volume holds a whole image.
func (a *Agent) saved(id string) bool {
	_, err := os.Stat(filepath.Join(a.hibernationDir(id), "complete"))
	return err == nil
}

// hibernate saves a running instance that is stopping with Hibernate set.
// When saving fails the instance is left running, Hibernate is cleared and
// the reason says why: the stop that follows is a normal shutdown.
func (a *Agent) hibernate(ctx context.Context, key string, in instance.Instance) error {
	if !in.Hibernate || a.saved(in.ID) {
		return nil
	}
	st, err := a.Runtime.State(ctx, in.ID)
	if errors.Is(err, runtime.ErrNotFound) || err == nil && st.Status != runtime.Running {
		return nil // nothing runs: nothing to save (the stop records what happened)
	} else if err != nil {
		return err
	}
	start := time.Now()
	err = a.checkpoint(ctx, in.ID)
	if err == nil {
		a.Log.Info("instance hibernated", "instance_id", in.ID, "took", time.Since(start))
		return nil
	}
	a.Log.Warn("hibernation failed; shutting down instead", "instance_id", in.ID, "err", err)
	why := fmt.Sprintf("%s; hibernation failed (%s), so the instance was shut down instead", instance.ReasonUserHibernate.Message, oneLine(err))
	return a.setState(ctx, key, in, func(x *instance.Instance) {
		x.Hibernate = false
		x.StateReason = &instance.Reason{Code: instance.ReasonUserStop.Code, Message: why}
	})
}

// checkpoint writes the instance's processes into its root volume.
func (a *Agent) checkpoint(ctx context.Context, id string) error {
	h, ok := a.hibernator()
	if !ok {
		return errors.New("this host's runtime cannot save instances")
	}
	if mounted, err := volume.IsMounted(a.rootvol(id)); err != nil {
		return err
	} else if !mounted {
		return errors.New("the root volume is not mounted")
	}
	dir := a.hibernationDir(id)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	if err := h.Checkpoint(ctx, id, filepath.Join(dir, "image")); err != nil {
		return err
	}
	if err := volume.SyncFS(a.rootvol(id)); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "complete"), nil, 0o600)
}

// resume brings a hibernated instance back from its root volume (mounted)
// and plumbs its network; false when there is nothing to resume from.
// The image is erased whatever happens: a failed restore boots instead.
func (a *Agent) resume(ctx context.Context, key string, in instance.Instance, spec runtime.Spec) (bool, error) {
	h, ok := a.hibernator()
	if !ok || !in.Hibernate || !a.saved(in.ID) {
		return false, a.erase(in.ID)
	}
	start := time.Now()
	if err := a.Runtime.Create(ctx, spec); err != nil {
		return false, fmt.Errorf("creating %s: %w", in.ID, err)
	}
	netns, err := h.Restore(ctx, in.ID, filepath.Join(a.hibernationDir(in.ID), "image"))
	if err != nil {
		a.Log.Warn("resuming failed; booting instead", "instance_id", in.ID, "err", err)
		if err := a.Runtime.Delete(ctx, in.ID); err != nil {
			return false, err
		}
		return false, a.erase(in.ID)
	}
	// Its processes run again: the image is spent, and this is the boot
	// a crash or a retry must not redo.
	if err := a.erase(in.ID); err != nil {
		return true, err
	}
	if err := a.resumed(ctx, key, in); err != nil {
		return true, err
	}
	for attempt := 0; ; attempt++ {
		err = a.plumb(ctx, in, netns)
		if err == nil || attempt == 2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return true, fmt.Errorf("resumed without its network: %w", err)
	}
	a.Log.Info("instance resumed", "instance_id", in.ID, "took", time.Since(start))
	return true, nil
}

// resumed records a resumed instance as the current boot, ready: it prints
// no readiness line, it never stopped running its init.
func (a *Agent) resumed(ctx context.Context, key string, in instance.Instance) error {
	if err := a.markConsole(in.ID, false); err != nil {
		return err
	}
	if err := a.setBooted(in.ID, in.Boot); err != nil {
		return err
	}
	return a.setState(ctx, key, in, func(x *instance.Instance) { x.Hibernate = false })
}

// prepare makes a hibernatable instance's PID 1 (not yet running) and
// plumbs the network namespace its runtime made, replacing the namespace
// of its last boot.
func (a *Agent) prepare(ctx context.Context, in instance.Instance) error {
	h, _ := a.hibernator()
	netns, err := h.Prepare(ctx, in.ID)
	if err != nil {
		return fmt.Errorf("preparing %s: %w", in.ID, err)
	}
	if err := a.Network.Detach(ctx, in.ID); err != nil { // the last boot's
		return err
	}
	return a.plumb(ctx, in, netns)
}

// plumb gives a hibernatable instance's own network namespace its cards.
func (a *Agent) plumb(ctx context.Context, in instance.Instance, netns string) error {
	if in.VPCID == "" {
		return nil
	}
	if err := a.Network.Adopt(ctx, in.ID, netns); err != nil {
		return err
	}
	_, err := a.attachNetwork(ctx, in)
	return err
}

// erase overwrites the saved memory, then removes it: the root volume is
// encrypted, and what the instance had in RAM should not outlive its use.
func (a *Agent) erase(id string) error {
	dir := a.hibernationDir(id)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		return zero(p)
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.RemoveAll(dir)
}

// zero overwrites a file with zeros and syncs it.
func zero(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for off := int64(0); off < fi.Size(); off += int64(len(buf)) {
		n := min(int64(len(buf)), fi.Size()-off)
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			return err
		}
	}
	return f.Sync()
}

func oneLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

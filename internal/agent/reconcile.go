package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"nubo/internal/ami"
	"nubo/internal/catalog"
	"nubo/internal/instance"
	"nubo/internal/resource"
	"nubo/internal/runtime"
	"nubo/internal/store"
	"nubo/internal/topology"
	"nubo/internal/volume"
	"nubo/internal/vpc"
)

// How PID 1 ends: nubo-init exits 0 to power off and 129 to reboot (see
// cmd/nubo-init); an init that calls reboot(2) (systemd) is ended by the
// kernel with what runc reports as 129 for a restart and 130 for a power-off.
const (
	exitPoweroff        = 0
	exitReboot          = 129
	exitPoweroffSyscall = 130
)

// ReadyMarker is the console line nubo-init prints once the instance is up.
var ReadyMarker = []byte("nubo-init: ready")

// reconcile makes the host match record in (read at revision rev).
func (a *Agent) reconcile(ctx context.Context, key string, rev int64, in instance.Instance) error {
	switch in.Desired {
	case instance.Running:
		return a.ensureRunning(ctx, key, in)
	case instance.Stopped, instance.Terminated:
		// The API released the capacity when it recorded the stop; a crash
		// between its two writes would have kept it held. Release it again,
		// unless the record changed since (a start took it back).
		held := store.Op{Key: key, ModRev: rev, Check: true}
		if err := topology.ReleaseIf(ctx, a.Store, in.Host, held, in.ID); err != nil {
			return err
		}
		if in.Desired == instance.Stopped {
			return a.ensureStopped(ctx, key, in)
		}
		return a.ensureTerminated(ctx, key, in)
	}
	return fmt.Errorf("instance %s: unknown desired state %q", in.ID, in.Desired)
}

func (a *Agent) dir(id string) string     { return filepath.Join(a.Dir, id) }
func (a *Agent) rootfs(id string) string  { return filepath.Join(a.dir(id), "rootfs") }
func (a *Agent) console(id string) string { return filepath.Join(a.dir(id), "console.log") }

// booted is the boot generation this host last started the instance at.
func (a *Agent) booted(id string) int64 {
	b, _ := os.ReadFile(filepath.Join(a.dir(id), "boot"))
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}

func (a *Agent) setBooted(id string, n int64) error {
	p := filepath.Join(a.dir(id), "boot")
	if err := os.WriteFile(p+".tmp", []byte(strconv.FormatInt(n, 10)), 0o644); err != nil {
		return err
	}
	return os.Rename(p+".tmp", p)
}

func (a *Agent) ensureRunning(ctx context.Context, key string, in instance.Instance) error {
	// Fast path while booting: the console is a file read, the runtime's
	// state is a process to run. An init that says it is ready was running;
	// if it dies right after, the next resync sees it.
	if in.State == instance.Pending && a.booted(in.ID) >= in.Boot {
		if a.Ready(in.ID) {
			a.forget(in.ID)
			return a.setState(ctx, key, in, func(x *instance.Instance) {
				x.State, x.StateReason, x.StateTransitionReason = instance.Running, nil, ""
			})
		}
		// Not up yet. Ask the runtime (did PID 1 die while booting?) only
		// now and then: polling it for every booting instance would starve
		// the boots themselves.
		if !a.checkDue(in.ID) {
			a.later(ctx, key, 25*time.Millisecond)
			return nil
		}
	}
	// A running instance's public address may have changed (an Elastic IP
	// came or went): map it first, before asking the runtime anything, so
	// that the move takes effect within milliseconds.
	if in.State == instance.Running && a.booted(in.ID) >= in.Boot {
		if err := a.syncPublic(ctx, in); err != nil {
			return err
		}
		if err := a.syncSubnet(ctx, in); err != nil {
			return err
		}
	}
	st, err := a.Runtime.State(ctx, in.ID)
	exists := err == nil
	if err != nil && !errors.Is(err, runtime.ErrNotFound) {
		return err
	}
	current := exists && a.booted(in.ID) >= in.Boot
	switch {
	case current && st.Status == runtime.Running:
		if in.State != instance.Pending {
			return nil
		}
		a.later(ctx, key, 25*time.Millisecond) // not ready yet: look again soon
		return nil
	case current && st.Status == runtime.Stopped:
		return a.exited(ctx, key, in, st.ExitCode)
	case exists && st.Status == runtime.Running:
		// A reboot was asked for: stop, then start below.
		if err := a.Runtime.Stop(ctx, in.ID, a.StopGrace); err != nil {
			return fmt.Errorf("rebooting %s: %w", in.ID, err)
		}
	}
	return a.boot(ctx, key, in, exists)
}

// boot mounts the root volume and starts the instance at generation in.Boot.
func (a *Agent) boot(ctx context.Context, key string, in instance.Instance, exists bool) error {
	im, err := a.Images.Get(ctx, in.Account, in.ImageID)
	if err != nil {
		return fmt.Errorf("image of %s: %w", in.ID, err)
	}
	// Traversable (not listable) by the instance's root, a host uid that runc
	// opens the root filesystem as.
	if err := os.MkdirAll(a.dir(in.ID), 0o711); err != nil {
		return err
	}
	if err := os.Chmod(a.Dir, 0o711); err != nil {
		return err
	}
	if err := a.mountRoot(ctx, in, im); err != nil {
		return err
	}
	// A hibernatable instance's runtime makes its network namespace: it is
	// plumbed once PID 1 exists (below), not before.
	_, hib := a.hibernator()
	hib = hib && in.Hibernation
	var netns string
	if !hib {
		if netns, err = a.attachNetwork(ctx, in); err != nil {
			return err
		}
	}
	if !exists {
		it, ok := catalog.LookupInstanceType(in.InstanceType)
		if !ok {
			return fmt.Errorf("instance %s: unknown type %s", in.ID, in.InstanceType)
		}
		devices, err := a.bootDevices(ctx, in)
		if err != nil {
			return fmt.Errorf("volumes of %s: %w", in.ID, err)
		}
		local, err := a.ephemeralDevices(ctx, in.ID, it)
		if err != nil {
			return fmt.Errorf("instance store of %s: %w", in.ID, err)
		}
		devices = append(local, devices...)
		spec := runtime.Spec{
			ID: in.ID, RootFS: a.rootfs(in.ID), Hostname: in.Hostname, Init: im.Init,
			// NUBO_INSTANCE_ID spares nubo-init a metadata request at boot.
			Env:   []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "container=nubo", "NUBO_INSTANCE_ID=" + in.ID},
			VCPUs: int(it.VCpuInfo.DefaultVCpus), MemoryMiB: it.MemoryInfo.SizeInMiB, PidsLimit: pidsLimit(it.MemoryInfo.SizeInMiB),
			UIDBase: im.UIDBase, GIDBase: im.UIDBase, IDCount: 65536,
			NetNS:        netns,
			ConsoleLog:   a.console(in.ID),
			Devices:      devices,
			Hibernatable: hib,
		}
		if resumed, err := a.resume(ctx, key, in, spec); err != nil || resumed {
			if err != nil {
				return fmt.Errorf("resuming %s: %w", in.ID, err)
			}
			a.later(ctx, key, 0) // running: the next look records it
			return nil
		}
		if err := a.Runtime.Create(ctx, spec); err != nil {
			return fmt.Errorf("creating %s: %w", in.ID, err)
		}
	}
	if hib {
		if err := a.prepare(ctx, in); err != nil {
			return err
		}
	}
	// Readiness is read from what this boot prints: remember where it starts.
	if err := a.markConsole(in.ID, waitsForMarker(im)); err != nil {
		return err
	}
	// Record the generation first: a crash after Start must not boot it twice.
	if err := a.setBooted(in.ID, in.Boot); err != nil {
		return err
	}
	if err := a.Runtime.Start(ctx, in.ID); err != nil {
		return fmt.Errorf("starting %s: %w", in.ID, err)
	}
	a.Log.Info("instance started", "instance_id", in.ID, "boot", in.Boot)
	a.later(ctx, key, 20*time.Millisecond)
	return nil
}

// pidsLimit grows with memory: 512 processes per GiB, at least 1024.
func pidsLimit(memMiB int64) int64 { return max(1024, memMiB/2) }

// exited handles PID 1 ending by itself while the instance should run.
func (a *Agent) exited(ctx context.Context, key string, in instance.Instance, code int) error {
	if code == exitReboot {
		a.Log.Info("instance rebooting itself", "instance_id", in.ID)
		return a.Runtime.Start(ctx, in.ID)
	}
	poweroff := code == exitPoweroff || code == exitPoweroffSyscall
	reason := instance.ReasonOSShutdown
	if !poweroff {
		reason = instance.ReasonCrashed
	}
	a.Log.Info("instance stopped by itself", "instance_id", in.ID, "exit_code", code)
	err := a.setState(ctx, key, in, func(x *instance.Instance) {
		x.StateReason = reason
		x.StateTransitionReason = fmt.Sprintf("%s (%s)", strings.SplitN(reason.Code, ".", 2)[1], a.Now().UTC().Format("2006-01-02 15:04:05 MST"))
		if poweroff && x.ShutdownBehavior == "terminate" {
			x.Desired, x.State = instance.Terminated, instance.ShuttingDown
		} else {
			x.Desired, x.State = instance.Stopped, instance.Stopping
		}
	})
	if err != nil {
		return err
	}
	return topology.Release(ctx, a.Store, in.Host, in.ID)
}

func (a *Agent) ensureStopped(ctx context.Context, key string, in instance.Instance) error {
	grace := a.StopGrace
	if in.ForceStop {
		grace = 0 // StopInstances --force: no time to flush or shut down
	}
	if err := a.hibernate(ctx, key, in); err != nil {
		return err
	}
	if err := a.halt(ctx, in.ID, grace); err != nil {
		return err
	}
	if err := a.detachRoot(ctx, in); err != nil {
		return err
	}
	if err := a.wipeEphemeral(ctx, in.ID, ephemeralCount(in.InstanceType)); err != nil {
		return err
	}
	if err := a.detachNetwork(ctx, in); err != nil {
		return err
	}
	// A stopped instance keeps its private address and loses its public one.
	if err := a.releasePublic(ctx, in); err != nil {
		return err
	}
	keepsPublic := in.ElasticIP != "" // an Elastic IP stays with a stopped instance
	if in.State == instance.Stopped && (in.PublicIP == "" || keepsPublic) {
		return nil
	}
	return a.setState(ctx, key, in, func(x *instance.Instance) {
		x.State = instance.Stopped
		if x.ElasticIP == "" && x.PublicIP != "" {
			x.LastPublicIP, x.PublicIP = x.PublicIP, ""
		}
	})
}

// releasePublic frees the instance's public address, if it still holds it.
// The record's field is cleared after (by the caller), so a crash in between
// is repaired by the next reconcile.
func (a *Agent) releasePublic(ctx context.Context, in instance.Instance) error {
	ip, err := netip.ParseAddr(in.PublicIP)
	if err != nil {
		return nil
	}
	return a.releaseAddress(ctx, vpc.PublicKey(ip), in.ID)
}

// disassociateElasticIP takes a terminated instance's Elastic IP off it, as
// EC2 does; the allocation stays the account's.
func (a *Agent) disassociateElasticIP(ctx context.Context, in instance.Instance) error {
	if in.ElasticIP == "" {
		return nil
	}
	key := resource.Key(resource.Scope{Account: in.Account, Region: in.Region}, resource.ElasticIP, in.ElasticIP)
	_, err := store.Update(ctx, a.Store, key, func(e *vpc.ElasticIP) error {
		if e.InstanceID == in.ID {
			e.AssociationID, e.InstanceID, e.PrivateIP = "", "", ""
		}
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// releaseAddress deletes an address claim held by holder (idempotent).
func (a *Agent) releaseAddress(ctx context.Context, key, holder string) error {
	var held vpc.Address
	rev, err := a.Store.GetRev(ctx, key, &held)
	if err != nil || rev == 0 || held.Holder != holder {
		return err
	}
	if err := a.Store.Apply(ctx, store.Op{Key: key, ModRev: rev, Delete: true}); err != nil && !errors.Is(err, store.ErrConflict) {
		return err
	}
	return nil
}

// halt stops the instance's processes, frees its runtime resources and
// unmounts its root (and its root block volume's filesystem on the host);
// the volume's data stays.
func (a *Agent) halt(ctx context.Context, id string, grace time.Duration) error {
	if _, err := a.Runtime.State(ctx, id); err == nil {
		if err := a.Runtime.Stop(ctx, id, grace); err != nil {
			return fmt.Errorf("stopping %s: %w", id, err)
		}
		if err := a.Runtime.Delete(ctx, id); err != nil {
			return fmt.Errorf("deleting %s from the runtime: %w", id, err)
		}
	} else if !errors.Is(err, runtime.ErrNotFound) {
		return err
	}
	return a.unmountRoot(id)
}

func (a *Agent) ensureTerminated(ctx context.Context, key string, in instance.Instance) error {
	if in.State == instance.Terminated {
		if a.Now().Sub(in.TerminatedAt) < a.TerminatedTTL {
			return nil
		}
		// Gone from DescribeInstances, as in EC2 about an hour after termination.
		if err := a.Store.Delete(ctx, key); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return os.RemoveAll(a.dir(in.ID))
	}
	if err := a.halt(ctx, in.ID, a.StopGrace); err != nil {
		return err
	}
	if err := a.wipeEphemeral(ctx, in.ID, ephemeralCount(in.InstanceType)); err != nil {
		return err
	}
	if err := a.detachNetwork(ctx, in); err != nil {
		return err
	}
	if err := a.releaseInterfaces(ctx, in); err != nil {
		return err
	}
	if err := a.releaseRootVolume(ctx, in); err != nil {
		return err
	}
	if err := a.releaseVolumes(ctx, in); err != nil {
		return err
	}
	if err := a.releasePublic(ctx, in); err != nil {
		return err
	}
	if err := a.disassociateElasticIP(ctx, in); err != nil {
		return err
	}
	if ip, err := netip.ParseAddr(in.PrivateIP); err == nil {
		if err := a.releaseAddress(ctx, vpc.PrivateKey(in.Account, in.Region, in.VPCID, ip), in.ID); err != nil {
			return err
		}
	}
	return a.setState(ctx, key, in, func(x *instance.Instance) {
		x.State, x.TerminatedAt = instance.Terminated, a.Now().UTC()
		x.PublicIP, x.PrivateIP, x.ElasticIP = "", "", ""
	})
}

// releaseRootVolume deletes the root volume (DeleteOnTermination) or detaches it.
func (a *Agent) releaseRootVolume(ctx context.Context, in instance.Instance) error {
	if _, block, err := a.rootVolume(ctx, in); err != nil {
		return err
	} else if block {
		return a.releaseBlockRoot(ctx, in)
	}
	sc := resource.Scope{Account: in.Account, Region: in.Region}
	vkey := resource.Key(sc, resource.Volume, in.RootVolumeID)
	if in.DeleteOnTermination {
		if err := a.Roots.Delete(in.RootVolumeID); err != nil {
			return err
		}
		if err := a.Store.Delete(ctx, vkey); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return nil
	}
	_, err := store.Update(ctx, a.Store, vkey, func(v *volume.Volume) error {
		v.State, v.Attachment = "available", nil
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// setState writes an observation, unless the API changed what it wants
// meanwhile (then the next reconcile sees the new wish).
func (a *Agent) setState(ctx context.Context, key string, seen instance.Instance, change func(*instance.Instance)) error {
	errChanged := errors.New("changed")
	_, err := store.Update(ctx, a.Store, key, func(x *instance.Instance) error {
		if x.Desired != seen.Desired || x.Boot != seen.Boot {
			return errChanged
		}
		change(x)
		return nil
	})
	if errors.Is(err, errChanged) || errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

func (a *Agent) removeOrphan(ctx context.Context, id string) error {
	a.forget(id)
	if err := a.halt(ctx, id, a.StopGrace); err != nil {
		return err
	}
	if err := a.wipeEphemeral(ctx, id, maxEphemeral); err != nil {
		return err
	}
	return a.Network.Detach(ctx, id)
}

// waitsForMarker: nubo's images say when the instance is up; another init
// (an imported image) is up once it runs.
func waitsForMarker(im ami.Image) bool {
	return im.Announces || len(im.Init) > 0 && filepath.Base(im.Init[0]) == "nubo-init"
}

// markConsole records the console's length, where the next boot's output
// starts, or -1 when the boot is ready as soon as PID 1 runs.
func (a *Agent) markConsole(id string, marker bool) error {
	size := int64(-1)
	if marker {
		size = 0
		if fi, err := os.Stat(a.console(id)); err == nil {
			size = fi.Size()
		}
	}
	return os.WriteFile(filepath.Join(a.dir(id), "console.offset"), []byte(strconv.FormatInt(size, 10)), 0o644)
}

// consoleReady reports whether the instance's init said on its console,
// during the current boot, that it is up.
func (a *Agent) consoleReady(id string) bool {
	b, _ := os.ReadFile(filepath.Join(a.dir(id), "console.offset"))
	off, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err == nil && off < 0 {
		return true // Start returned: PID 1 runs the image's init
	}
	f, err := os.Open(a.console(id))
	if err != nil {
		return false
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return false
	}
	out, _ := io.ReadAll(io.LimitReader(f, 1<<20))
	return bytes.Contains(out, ReadyMarker)
}

// checkDue reports whether a booting instance's runtime state is due for a
// look (at most once a second per instance).
func (a *Agent) checkDue(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.checked == nil {
		a.checked = map[string]time.Time{}
	}
	if now := time.Now(); now.Sub(a.checked[id]) >= time.Second {
		a.checked[id] = now
		return true
	}
	return false
}

// forget drops what checkDue keeps of an instance that finished booting.
func (a *Agent) forget(id string) {
	a.mu.Lock()
	delete(a.checked, id)
	a.mu.Unlock()
}

// later queues key again after d, for things to observe soon.
func (a *Agent) later(ctx context.Context, key string, d time.Duration) {
	go func() {
		select {
		case <-time.After(d):
			a.queue.add(key)
		case <-ctx.Done():
		}
	}()
}

// Console returns the instance's console output (its last 64 KiB).
func (a *Agent) Console(ctx context.Context, id string) ([]byte, time.Time, error) {
	f, err := os.Open(a.console(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, a.Now(), nil
	}
	if err != nil {
		return nil, time.Time{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, time.Time{}, err
	}
	const max = 64 << 10
	if fi.Size() > max {
		if _, err := f.Seek(fi.Size()-max, io.SeekStart); err != nil {
			return nil, time.Time{}, err
		}
	}
	b, err := io.ReadAll(f)
	return b, fi.ModTime(), err
}

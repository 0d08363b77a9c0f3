package blockstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Device is a block device on the host.
type Device struct {
	Path         string // /dev/loopN
	Major, Minor uint32
}

func (d Device) String() string { return fmt.Sprintf("%s (%d:%d)", d.Path, d.Major, d.Minor) }

// loopDev is a bound loop device as sysfs shows it.
type loopDev struct {
	Device
	backing   string // the backing file's path when it was attached
	autoclear bool   // set by a detach that waits for the last opener
}

// loopBound lists the loop devices that have a backing file.
func loopBound() ([]loopDev, error) {
	names, err := filepath.Glob("/sys/block/loop*")
	if err != nil {
		return nil, err
	}
	var devs []loopDev
	for _, sys := range names {
		b, err := os.ReadFile(filepath.Join(sys, "loop", "backing_file"))
		if err != nil {
			continue // unbound (no loop/ directory) or gone meanwhile
		}
		d := loopDev{backing: strings.TrimSuffix(string(b), "\n")}
		if d.Device, err = sysDevice(sys); err != nil {
			continue
		}
		ac, _ := os.ReadFile(filepath.Join(sys, "loop", "autoclear"))
		d.autoclear = strings.TrimSpace(string(ac)) == "1"
		devs = append(devs, d)
	}
	return devs, nil
}

func sysDevice(sys string) (Device, error) {
	b, err := os.ReadFile(filepath.Join(sys, "dev"))
	if err != nil {
		return Device{}, err
	}
	maj, min, ok := strings.Cut(strings.TrimSpace(string(b)), ":")
	ma, err1 := strconv.ParseUint(maj, 10, 32)
	mi, err2 := strconv.ParseUint(min, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return Device{}, fmt.Errorf("%s/dev: %q", sys, b)
	}
	return Device{Path: "/dev/" + filepath.Base(sys), Major: uint32(ma), Minor: uint32(mi)}, nil
}

// loopFind returns the loop device whose backing file is path. The path
// sysfs shows is matched first, then the file's identity (device and inode)
// confirms it, so a file that replaced another of the same name is not taken
// for it.
func loopFind(path string) (loopDev, bool, error) {
	devs, err := loopBound()
	if err != nil {
		return loopDev{}, false, err
	}
	for _, d := range devs {
		if d.backing == path && sameBacking(d.Path, path) {
			return d, true, nil
		}
	}
	return loopDev{}, false, nil
}

func sameBacking(dev, path string) bool {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
		return false
	}
	fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	info, err := unix.IoctlLoopGetStatus64(fd)
	return err == nil && info.Device == st.Dev && info.Inode == st.Ino
}

// loopAttach binds path to a free loop device. Without autoclear the binding
// outlives this process: instances keep their volumes across a nubo restart.
func loopAttach(ctx context.Context, path string, directIO bool) (Device, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return Device{}, err
	}
	defer f.Close()
	ctl, err := unix.Open("/dev/loop-control", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return Device{}, fmt.Errorf("loop-control: %w", err)
	}
	defer unix.Close(ctl)
	cfg := unix.LoopConfig{Fd: uint32(f.Fd())}
	if directIO {
		cfg.Info.Flags = unix.LO_FLAGS_DIRECT_IO
	}
	copy(cfg.Info.File_name[:len(cfg.Info.File_name)-1], path)
	// Another process may take the free device between GET_FREE and
	// CONFIGURE (EBUSY): ask again.
	for range 64 {
		if err := ctx.Err(); err != nil {
			return Device{}, err
		}
		n, err := unix.IoctlRetInt(ctl, unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return Device{}, fmt.Errorf("finding a free loop device: %w", err)
		}
		sys := "/sys/block/loop" + strconv.Itoa(n)
		dev, err := sysDevice(sys)
		if err != nil {
			return Device{}, err
		}
		fd, err := openDevNode(dev)
		if err != nil {
			return Device{}, err
		}
		err = unix.IoctlLoopConfigure(fd, &cfg)
		unix.Close(fd)
		if errors.Is(err, unix.EBUSY) {
			continue
		}
		if err != nil {
			return Device{}, fmt.Errorf("configuring %s for %s: %w", dev.Path, path, err)
		}
		return dev, nil
	}
	return Device{}, fmt.Errorf("attaching %s: every free loop device was taken meanwhile", path)
}

// openDevNode opens the device's node, waiting briefly for devtmpfs to make
// the node of a loop device that LOOP_CTL_GET_FREE has just added.
func openDevNode(dev Device) (int, error) {
	for i := 0; ; i++ {
		fd, err := unix.Open(dev.Path, unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err == nil || !errors.Is(err, unix.ENOENT) || i == 50 {
			if err != nil {
				return -1, fmt.Errorf("opening %s: %w", dev.Path, err)
			}
			return fd, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// loopDetach flushes dev to its backing file and unbinds it. When something
// else still holds the device open the kernel only marks it to unbind at the
// last close: that is ErrBusy.
func loopDetach(ctx context.Context, dev Device) error {
	fd, err := openDevNode(dev)
	if err != nil {
		return err
	}
	if err := unix.Fsync(fd); err != nil {
		unix.Close(fd)
		return fmt.Errorf("flushing %s: %w", dev.Path, err)
	}
	err = unix.IoctlSetInt(fd, unix.LOOP_CLR_FD, 0)
	unix.Close(fd)
	if err != nil && !errors.Is(err, unix.ENXIO) { // ENXIO: already unbound
		return fmt.Errorf("detaching %s: %w", dev.Path, err)
	}
	// Our own close is the last one when nobody else holds the device; the
	// unbinding it triggers may finish a moment later, and udev's probe of
	// the device's last change can hold it a while on a loaded machine.
	sys := "/sys/block/" + filepath.Base(dev.Path) + "/loop"
	for range 500 {
		if _, err := os.Stat(sys); errors.Is(err, os.ErrNotExist) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s is still open elsewhere; it detaches at its last close: %w", dev.Path, ErrBusy)
}

// loopSetCapacity makes an attached device see its backing file's new size.
func loopSetCapacity(dev Device) error {
	fd, err := openDevNode(dev)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.IoctlSetInt(fd, unix.LOOP_SET_CAPACITY, 0); err != nil {
		return fmt.Errorf("resizing %s: %w", dev.Path, err)
	}
	return nil
}

// loopDirectIO reports whether the kernel really does direct I/O on dev's
// backing file: the loop device must say so, and the file must take it. An
// fscrypt file takes direct I/O only with inline encryption, which this
// kind of host's kernel lacks: ext4 then serves it buffered, whatever the
// loop device asks for.
func loopDirectIO(dev Device, backing string) bool {
	b, _ := os.ReadFile("/sys/block/" + filepath.Base(dev.Path) + "/loop/dio")
	if strings.TrimSpace(string(b)) != "1" {
		return false
	}
	var st unix.Statx_t
	err := unix.Statx(unix.AT_FDCWD, backing, 0, unix.STATX_DIOALIGN, &st)
	return err == nil && st.Mask&unix.STATX_DIOALIGN != 0 && st.Dio_offset_align != 0
}

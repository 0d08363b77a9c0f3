package runc

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// The instance's /dev/console.
//
// PID 1's stdout and stderr are the console log itself, which is all an init
// like nubo-init needs. systemd, though, points its own stdio at /dev/null
// once it runs and writes its status lines, and the units that log to the
// console write theirs, to /dev/console, which runc makes only for a
// container with a terminal. So every run gets a pseudo-terminal from the
// host: its slave is bound at the instance's /dev/console (owned by instance
// root), and the shim copies what is written to it from the master into the
// console log, next to PID 1's own output.
//
// A pty rather than a FIFO: when nothing reads (the shim died), a write to a
// FIFO, or opening it, blocks the writer for ever, a write to a pty whose
// master is gone fails with EIO, so the instance runs on without a console.

// console is a run's pty: the master for the shim and the slave's path on
// the host, which the OCI config binds at /dev/console.
type console struct {
	master, slave *os.File
	path          string
}

// newConsole allocates a pty from the host's /dev/pts, gives its slave to
// uid:gid (instance root) and makes it raw: no echo, and no NL→CRNL, so the
// console log holds what was written.
func newConsole(uid, gid uint32) (*console, error) {
	fd, err := unix.Open("/dev/pts/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening /dev/pts/ptmx: %w", err)
	}
	master := os.NewFile(uintptr(fd), "/dev/pts/ptmx")
	fail := func(err error) (*console, error) {
		master.Close()
		return nil, fmt.Errorf("allocating a console: %w", err)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		return fail(err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		return fail(err)
	}
	path := "/dev/pts/" + strconv.FormatUint(uint64(n), 10)
	sfd, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail(err)
	}
	slave := os.NewFile(uintptr(sfd), path)
	tio, err := unix.IoctlGetTermios(sfd, unix.TCGETS)
	if err == nil {
		tio.Oflag &^= unix.OPOST
		tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		tio.Iflag &^= unix.ICRNL | unix.IXON
		err = unix.IoctlSetTermios(sfd, unix.TCSETS, tio)
	}
	if err == nil {
		err = os.Chown(path, int(uid), int(gid))
	}
	if err != nil {
		slave.Close()
		return fail(err)
	}
	return &console{master: master, slave: slave, path: path}, nil
}

func (c *console) Close() {
	c.master.Close()
	c.slave.Close()
}

// pumpConsole copies what the instance writes to its console (the pty
// master) to w until stop is closed, then what is still buffered. The slave
// the shim holds keeps the master readable while no process of the
// instance has the console open; should the pty be hung up anyway (vhangup
// by a getty), reads fail with EIO until someone opens it again, so EIO is
// waited out, not fatal.
func pumpConsole(master *os.File, w io.Writer, stop <-chan struct{}) {
	buf := make([]byte, 32<<10)
	stopping := false
	for {
		if !stopping {
			select {
			case <-stop:
				stopping = true
			default:
			}
		}
		if stopping {
			// Drain without blocking: whatever is written from now on
			// belongs to no run.
			master.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		} else {
			master.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		}
		n, err := master.Read(buf)
		if n > 0 {
			w.Write(buf[:n])
		}
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			if stopping {
				return
			}
		case errors.Is(err, unix.EIO):
			if stopping {
				return
			}
			select {
			case <-stop:
				stopping = true
			case <-time.After(100 * time.Millisecond):
			}
		default:
			return
		}
	}
}

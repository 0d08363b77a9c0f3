package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"strings"
)

// mountFstab mounts what /etc/fstab lists, as a Linux boot would: the EBS
// volumes a user put there (AWS's documented way to mount a volume at every
// boot). The instance's mount(2) of its own devices is performed by the host
// (see runtime/runc): nothing here needs privilege. Entries by UUID= or
// LABEL= need udev's /dev/disk links, which a container lacks: name the
// device (/dev/sdf, /dev/xvdf) instead.
func (in *initd) mountFstab() {
	b, err := os.ReadFile(in.path("etc/fstab"))
	if err != nil || !hasMounts(b) {
		return
	}
	cmd := exec.Command(in.path("usr/bin/mount"), "-a")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := in.procs.run(cmd); err != nil {
		in.con.logf("mount -a: %v: %s", err, strings.TrimSpace(out.String()))
		return
	}
	in.con.logf("mounted the filesystems of /etc/fstab")
}

// hasMounts reports whether an fstab has an entry other than the root's
// and swap: images ship one for / (already mounted) or none.
func hasMounts(fstab []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(fstab))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || strings.HasPrefix(f[0], "#") || f[1] == "/" || f[2] == "swap" {
			continue
		}
		return true
	}
	return false
}

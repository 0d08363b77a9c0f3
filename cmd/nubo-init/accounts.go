package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The instance's accounts are read from its own /etc/passwd and /etc/group
// (below the root nubo-init serves), never through the C library: nubo-init
// is static, and tests run it over a temporary root.

// account is one /etc/passwd entry.
type account struct {
	name     string
	uid, gid int
	home     string
}

// lookupUser finds name in root's /etc/passwd.
func lookupUser(root, name string) (account, bool) {
	var found account
	ok := false
	scanColon(filepath.Join(root, "etc/passwd"), func(f []string) bool {
		if len(f) < 7 || f[0] != name {
			return true
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			return true
		}
		found, ok = account{name: f[0], uid: uid, gid: gid, home: f[5]}, true
		return false
	})
	return found, ok
}

// lookupGroup finds a group's ID in root's /etc/group.
func lookupGroup(root, name string) (int, bool) {
	gid, ok := 0, false
	scanColon(filepath.Join(root, "etc/group"), func(f []string) bool {
		if len(f) < 3 || f[0] != name {
			return true
		}
		n, err := strconv.Atoi(f[2])
		if err != nil {
			return true
		}
		gid, ok = n, true
		return false
	})
	return gid, ok
}

// scanColon calls fn with the fields of each line of a colon-separated file
// until fn returns false.
func scanColon(path string, fn func([]string) bool) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !fn(strings.Split(line, ":")) {
			return
		}
	}
}

// resolveOwner turns "user", "user:group" or numeric IDs into IDs; the
// group defaults to the user's primary group (root: root).
func resolveOwner(root, owner string) (uid, gid int, ok bool) {
	u, g, hasGroup := strings.Cut(strings.TrimSpace(owner), ":")
	if u == "" {
		u = "root"
	}
	if n, err := strconv.Atoi(u); err == nil {
		uid, gid = n, n
	} else if a, found := lookupUser(root, u); found {
		uid, gid = a.uid, a.gid
	} else {
		return 0, 0, false
	}
	if hasGroup && g != "" {
		if n, err := strconv.Atoi(g); err == nil {
			gid = n
		} else if n, found := lookupGroup(root, g); found {
			gid = n
		} else {
			return 0, 0, false
		}
	}
	return uid, gid, true
}

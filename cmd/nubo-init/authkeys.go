package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// defaultUser is the login of nubo's images, as on AWS's Debian AMIs: the
// key pair's key is installed for it, and it has passwordless sudo.
const defaultUser = "admin"

// rootKeyOptions are the options root's copies of the keys get (cloud-init's
// disable_root, as on AWS's Debian AMIs): a login as root with the key pair
// says which user to log in as, and ends.
func rootKeyOptions(user string) string {
	return `no-port-forwarding,no-agent-forwarding,no-X11-forwarding,command="echo 'Please login as the user \"` +
		user + `\" rather than the user \"root\".';echo;sleep 10;exit 142"`
}

// addAuthorizedKeys merges keys (authorized_keys lines) into user's
// ~/.ssh/authorized_keys below root, each prefixed with options if any: a
// key already there (the same key blob) is replaced, others are appended,
// and other lines are kept. ~/.ssh is made 0700 and the file 0600, both
// owned by the user.
func addAuthorizedKeys(root, user string, keys []string, options string) error {
	a, ok := lookupUser(root, user)
	if !ok {
		return fmt.Errorf("no user %q", user)
	}
	var entries []string
	for _, k := range keys {
		k = strings.TrimSpace(k)
		if k == "" || strings.HasPrefix(k, "#") {
			continue
		}
		if options != "" {
			k = options + " " + k
		}
		entries = append(entries, k)
	}
	if len(entries) == 0 {
		return nil
	}
	dir := filepath.Join(root, a.home, ".ssh")
	if fi, err := os.Lstat(dir); err == nil && !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	} else if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		if err := os.Chown(dir, a.uid, a.gid); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	file := filepath.Join(dir, "authorized_keys")
	if fi, err := os.Lstat(file); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", file)
	}
	old, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	data := mergeAuthorizedKeys(old, entries)
	return writeFileAtomicOwned(file, data, 0o600, a.uid, a.gid)
}

// mergeAuthorizedKeys returns old with entries merged in (see
// addAuthorizedKeys).
func mergeAuthorizedKeys(old []byte, entries []string) []byte {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(old))
	sc.Buffer(make([]byte, 0, 16<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	for _, e := range entries {
		blob := keyBlob(e)
		replaced := false
		for i, l := range lines {
			if blob != "" && keyBlob(l) == blob {
				lines[i], replaced = e, true
			}
		}
		if !replaced {
			lines = append(lines, e)
		}
	}
	return []byte(strings.Join(lines, "\n") + "\n")
}

// keyBlob is the base64 key of an authorized_keys line ("" if none).
func keyBlob(line string) string {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") {
		return ""
	}
	f := strings.Fields(line)
	for i := 0; i+1 < len(f); i++ {
		if isKeyType(f[i]) {
			return f[i+1]
		}
	}
	return ""
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"time"
)

// eicCommand is the name sshd runs as AuthorizedKeysCommand (a symlink to
// nubo-init): "nubo-eic-keys USER" prints the EC2 Instance Connect keys that
// the metadata service holds for USER, pushed by SendSSHPublicKey and valid
// for a minute. sshd waits for it on every login that the user's
// authorized_keys did not already accept, so it is quick, and it prints
// nothing at all when anything goes wrong (no service, no keys, a bad user).
const eicCommand = "nubo-eic-keys"

// eicBudget bounds the whole lookup: the service is on the host and answers
// in milliseconds, or not at all.
const eicBudget = 1500 * time.Millisecond

// eicMain runs nubo-eic-keys; it always exits 0 (sshd treats output from a
// failing command as no keys anyway).
func eicMain(args []string, out io.Writer) int {
	if len(args) < 1 || !validUserName(args[0]) {
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), eicBudget)
	defer cancel()
	keys := eicKeys(ctx, newIMDS(defaultIMDS, eicBudget), args[0])
	if len(keys) > 0 {
		_, _ = io.WriteString(out, strings.Join(keys, "\n")+"\n")
	}
	return 0
}

// eicKeys fetches user's Instance Connect keys: one token attempt and one
// GET, no waiting for a service that is not there.
func eicKeys(ctx context.Context, m *imds, user string) []string {
	defer m.close()
	if err := m.fetchToken(ctx); err != nil {
		return nil
	}
	// EC2's own helper asks with a trailing slash; either form may be served.
	path := "meta-data/managed-ssh-keys/active-keys/" + user
	b, err := m.getOnce(ctx, path, 64<<10)
	if errors.Is(err, errNotFound) {
		b, err = m.getOnce(ctx, path+"/", 64<<10)
	}
	if err != nil {
		return nil
	}
	return authorizedKeyLines(b)
}

// authorizedKeyLines keeps the lines of b that are public keys in
// authorized_keys form (options allowed), dropping blank lines, comments
// and anything else the service may add (EC2 interleaves signatures).
func authorizedKeyLines(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 16<<10), 64<<10)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || !hasKeyType(line) {
			continue
		}
		out = append(out, line)
	}
	return out
}

// hasKeyType reports whether a field of an authorized_keys line names an
// SSH public key type and is followed by the key.
func hasKeyType(line string) bool {
	f := strings.Fields(line)
	for i := 0; i+1 < len(f); i++ {
		if isKeyType(f[i]) {
			return true
		}
	}
	return false
}

func isKeyType(s string) bool {
	for _, p := range []string{"ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// validUserName accepts the user names useradd would (and nothing that
// could change a metadata path).
func validUserName(s string) bool {
	if s == "" || len(s) > 32 || s[0] == '-' {
		return false
	}
	for _, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
		if !ok {
			return false
		}
	}
	return s != "." && s != ".."
}

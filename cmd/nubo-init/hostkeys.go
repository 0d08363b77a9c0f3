package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
)

// hostKeyBlock is what cloud-init's keys-to-console prints on an EC2
// instance's console at its first boot, and what users read back with
// GetConsoleOutput to check a host key before their first login: the
// fingerprints as `ssh-keygen -l` prints them (tagged, as cloud-init's logger
// tags them), then the public keys as they are. Keys are taken in the
// order of the glob /etc/ssh/ssh_host_*key.pub; DSA keys are left out, as
// cloud-init leaves them out by default. "" if there is no key.
func hostKeyBlock(sshDir string) string {
	paths, _ := filepath.Glob(filepath.Join(sshDir, "ssh_host_*key.pub"))
	var fps, keys []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		line := strings.TrimSpace(string(b))
		f := strings.Fields(line)
		if len(f) < 2 || f[0] == "ssh-dss" {
			continue
		}
		blob, err := base64.StdEncoding.DecodeString(f[1])
		if err != nil {
			continue
		}
		comment := "no comment"
		if len(f) > 2 {
			comment = strings.Join(f[2:], " ")
		}
		sum := sha256.Sum256(blob)
		fps = append(fps, fmt.Sprintf("%d SHA256:%s %s (%s)", keyBits(f[0], blob),
			base64.RawStdEncoding.EncodeToString(sum[:]), comment, keyLabel(f[0])))
		keys = append(keys, line)
	}
	if len(keys) == 0 {
		return ""
	}
	const tag, rule = "nubo-init: ", "#############################################################"
	var b strings.Builder
	b.WriteString(tag + rule + "\n" + tag + "-----BEGIN SSH HOST KEY FINGERPRINTS-----\n")
	for _, fp := range fps {
		b.WriteString(tag + fp + "\n")
	}
	b.WriteString(tag + "-----END SSH HOST KEY FINGERPRINTS-----\n" + tag + rule + "\n")
	b.WriteString("-----BEGIN SSH HOST KEY KEYS-----\n" + strings.Join(keys, "\n") + "\n-----END SSH HOST KEY KEYS-----\n")
	return b.String()
}

// keyLabel is the key type as ssh-keygen -l names it.
func keyLabel(typ string) string {
	switch {
	case typ == "ssh-ed25519":
		return "ED25519"
	case typ == "ssh-rsa":
		return "RSA"
	case strings.HasPrefix(typ, "ecdsa-sha2-"):
		return "ECDSA"
	case strings.HasPrefix(typ, "sk-ssh-ed25519"):
		return "ED25519-SK"
	case strings.HasPrefix(typ, "sk-ecdsa-"):
		return "ECDSA-SK"
	}
	return strings.ToUpper(typ)
}

// keyBits is the key size ssh-keygen -l shows: the RSA modulus' bits, the
// ECDSA curve's, 256 for Ed25519.
func keyBits(typ string, blob []byte) int {
	switch {
	case typ == "ssh-rsa":
		// string "ssh-rsa", mpint e, mpint n
		rest := blob
		var fields [][]byte
		for len(fields) < 3 && len(rest) >= 4 {
			n := binary.BigEndian.Uint32(rest)
			if uint64(len(rest)-4) < uint64(n) {
				return 0
			}
			fields = append(fields, rest[4:4+n])
			rest = rest[4+n:]
		}
		if len(fields) < 3 {
			return 0
		}
		return new(big.Int).SetBytes(fields[2]).BitLen()
	case strings.HasSuffix(typ, "nistp384"):
		return 384
	case strings.HasSuffix(typ, "nistp521"):
		return 521
	}
	return 256
}

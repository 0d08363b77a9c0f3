package main

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// writeFiles carries out the write_files entries whose defer flag is
// deferred (deferred ones are written after users and packages exist).
func (p *provisioner) writeFiles(files []writeFile, deferred bool) {
	for _, f := range files {
		if f.Defer != deferred || p.stop() {
			continue
		}
		if err := p.writeFile(f); err != nil {
			p.out.logf("write_files %s: %v", f.Path, err)
			p.failed++
			continue
		}
		p.out.logf("write_files: wrote %s", f.Path)
	}
}

func (p *provisioner) writeFile(f writeFile) error {
	if !filepath.IsAbs(f.Path) {
		return fmt.Errorf("path must be absolute")
	}
	if f.Source != nil {
		return fmt.Errorf("source (a URL) is not supported by nubo-init: give content")
	}
	data, err := decodeContent(f.Content, f.Encoding)
	if err != nil {
		return err
	}
	mode, err := decodePerms(f.Permissions)
	if err != nil {
		return err
	}
	owner := f.Owner
	if owner == "" {
		owner = "root:root"
	}
	uid, gid, ok := resolveOwner(p.root, owner)
	if !ok {
		return fmt.Errorf("owner %q: no such user or group", owner)
	}
	path := p.path(f.Path)
	if !f.Append {
		return writeFileAtomicOwned(path, data, mode, uid, gid)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, mode)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		w.Close()
		return err
	}
	if err := w.Chown(uid, gid); err != nil {
		w.Close()
		return err
	}
	if err := w.Chmod(mode); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// decodeContent undoes write_files' encoding, with cloud-init's names for it.
func decodeContent(content, encoding string) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "", "text/plain":
		return []byte(content), nil
	case "b64", "base64":
		return decodeB64(content)
	case "gz", "gzip":
		return gunzip([]byte(content))
	case "gz+b64", "gz+base64", "gzip+b64", "gzip+base64":
		b, err := decodeB64(content)
		if err != nil {
			return nil, err
		}
		return gunzip(b)
	}
	return nil, fmt.Errorf("unknown encoding %q (b64, gzip, gz+b64 or text/plain)", encoding)
}

func decodeB64(s string) ([]byte, error) {
	s = strings.Join(strings.Fields(s), "")
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("base64: %w", err)
	}
	return b, nil
}

// decodePerms reads permissions: an octal string ('0644') or a YAML 1.1
// octal number (0644 unquoted), 0644 if absent.
func decodePerms(v any) (os.FileMode, error) {
	switch p := v.(type) {
	case nil:
		return 0o644, nil
	case int:
		if p >= 0 && p <= 0o7777 {
			return fileMode(uint32(p)), nil
		}
	case string:
		n, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(p), "0o"), 8, 32)
		if err == nil && n <= 0o7777 {
			return fileMode(uint32(n)), nil
		}
	}
	return 0, fmt.Errorf("permissions %v: not an octal mode", v)
}

// fileMode converts Unix permission bits (setuid, setgid, sticky included)
// to an os.FileMode.
func fileMode(bits uint32) os.FileMode {
	m := os.FileMode(bits & 0o777)
	if bits&0o4000 != 0 {
		m |= os.ModeSetuid
	}
	if bits&0o2000 != 0 {
		m |= os.ModeSetgid
	}
	if bits&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return m
}

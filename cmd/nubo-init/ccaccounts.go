package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// sudoersFile is where cloud-init, and nubo-init, put users' sudo rules.
const sudoersFile = "etc/sudoers.d/90-cloud-init-users"

// groups creates the top-level groups and adds their members.
func (p *provisioner) groups(groups groupList) {
	for _, g := range groups {
		if p.stop() {
			return
		}
		p.ensureGroup(g.name)
		for _, m := range g.members {
			if _, ok := lookupUser(p.root, m); !ok {
				p.out.logf("groups: %s: no user %s to add", g.name, m)
				continue
			}
			p.command("usermod -a -G "+g.name+" "+m, nil, p.path("usr/sbin/usermod"), "-a", "-G", g.name, m)
		}
	}
}

// ensureGroup creates a group unless it exists.
func (p *provisioner) ensureGroup(name string) bool {
	if _, ok := lookupGroup(p.root, name); ok {
		return true
	}
	return p.command("groupadd "+name, nil, p.path("usr/sbin/groupadd"), name)
}

// users creates the users of cloud-config (an existing one is left as it
// is, as cloud-init leaves it), then installs their keys and sudo rules.
func (p *provisioner) users(users userList) {
	for _, u := range users {
		if p.stop() {
			return
		}
		if !validUserName(u.Name) {
			p.out.logf("users: %q is not a valid user name", u.Name)
			p.failed++
			continue
		}
		if _, ok := lookupUser(p.root, u.Name); ok {
			if !u.isDefault {
				p.out.logf("users: %s exists: not created again", u.Name)
			}
		} else {
			for _, g := range append([]string{u.PrimaryGroup}, u.Groups...) {
				if g != "" {
					p.ensureGroup(g)
				}
			}
			if !p.command("useradd "+u.Name, nil, append([]string{p.path("usr/sbin/useradd")}, u.useraddArgs()...)...) {
				continue
			}
		}
		if len(u.SSHAuthorizedKeys) > 0 {
			if err := addAuthorizedKeys(p.root, u.Name, u.SSHAuthorizedKeys, ""); err != nil {
				p.out.logf("users: %s: keys: %v", u.Name, err)
				p.failed++
			} else {
				p.out.logf("users: %s: installed %d SSH key(s)", u.Name, len(u.SSHAuthorizedKeys))
			}
		}
		var rules []string
		for _, r := range u.Sudo {
			rules = append(rules, u.Name+" "+strings.TrimSpace(r))
		}
		if len(rules) > 0 {
			if err := p.addSudoRules(rules); err != nil {
				p.out.logf("users: %s: sudo: %v", u.Name, err)
				p.failed++
			}
		}
	}
}

// defaultUserKeys installs cloud-config's top-level ssh_authorized_keys for
// the default user, and for root with the options that send a root login
// to it (cloud-init's disable_root, as for the key pair's key).
func (p *provisioner) defaultUserKeys(keys []string) {
	if err := addAuthorizedKeys(p.root, defaultUser, keys, ""); err != nil {
		p.out.logf("ssh_authorized_keys: %v", err)
		p.failed++
		return
	}
	if err := addAuthorizedKeys(p.root, "root", keys, rootKeyOptions(defaultUser)); err != nil {
		p.out.logf("ssh_authorized_keys for root: %v", err)
	}
	p.out.logf("ssh_authorized_keys: installed %d key(s) for %s", len(keys), defaultUser)
}

// addSudoRules appends one user's rules to the sudoers file, after visudo
// (when the image has sudo) found them valid: one bad line in sudoers.d
// makes sudo refuse to run at all, for every user.
func (p *provisioner) addSudoRules(rules []string) error {
	file := p.path(sudoersFile)
	old, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if len(old) == 0 {
		old = []byte("# Created by nubo-init from the instance's user data (cloud-config users)\n")
	} else if old[len(old)-1] != '\n' {
		old = append(old, '\n')
	}
	data := append(old, []byte(strings.Join(rules, "\n")+"\n")...)
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	if visudo := p.path("usr/sbin/visudo"); fileExists(visudo) {
		// The check's name has a dot: sudo's includedir skips it.
		tmp, err := os.CreateTemp(filepath.Dir(file), ".sudoers-check*")
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		_, werr := tmp.Write(data)
		if cerr := tmp.Close(); werr != nil || cerr != nil {
			return errors.Join(werr, cerr)
		}
		if !p.command("visudo -c", nil, visudo, "-c", "-q", "-f", tmp.Name()) {
			return fmt.Errorf("rules %q are not valid sudoers lines: not installed", rules)
		}
	}
	if err := writeFileAtomicOwned(file, data, 0o440, 0, 0); err != nil {
		return err
	}
	p.out.logf("users: %q in /%s", rules, sudoersFile)
	return nil
}

package main

import (
	"errors"
	"fmt"
	"strings"

	yaml "sigs.k8s.io/yaml/goyaml.v2"
)

// userSpec is one entry of cloud-config users; "default" stands for the
// image's default user (admin).
type userSpec struct {
	Name              string     `yaml:"name"`
	Gecos             string     `yaml:"gecos"`
	Groups            stringList `yaml:"groups"`
	PrimaryGroup      string     `yaml:"primary_group"`
	Shell             string     `yaml:"shell"`
	Sudo              sudoRules  `yaml:"sudo"`
	SSHAuthorizedKeys []string   `yaml:"ssh_authorized_keys"`
	LockPasswd        *bool      `yaml:"lock_passwd"`
	Passwd            string     `yaml:"passwd"` // a crypt(3) hash
	HashedPasswd      string     `yaml:"hashed_passwd"`
	Homedir           string     `yaml:"homedir"`
	System            bool       `yaml:"system"`
	UID               any        `yaml:"uid"`
	NoCreateHome      bool       `yaml:"no_create_home"`
	NoUserGroup       bool       `yaml:"no_user_group"`

	isDefault bool
}

// userList is cloud-config users: a list of "default", names and
// mappings, or one string of names separated by commas.
type userList []userSpec

func (l *userList) UnmarshalYAML(unmarshal func(any) error) error {
	var names stringList
	var items []any
	if err := unmarshal(&items); err != nil {
		if err := unmarshal(&names); err != nil {
			return errors.New("users is a list of names and mappings")
		}
		for _, n := range names {
			items = append(items, n)
		}
	}
	*l = nil
	for _, it := range items {
		switch v := it.(type) {
		case string:
			if v == "default" {
				*l = append(*l, userSpec{Name: defaultUser, isDefault: true})
			} else {
				*l = append(*l, userSpec{Name: v})
			}
		case map[any]any:
			b, err := yaml.Marshal(v)
			if err != nil {
				return err
			}
			var u userSpec
			if err := yaml.Unmarshal(b, &u); err != nil {
				return fmt.Errorf("user %v: %w", v["name"], err)
			}
			if u.Name == "" {
				return errors.New("a user without a name")
			}
			*l = append(*l, u)
		default:
			return fmt.Errorf("a user is a name or a mapping, not %T", it)
		}
	}
	return nil
}

// sudoRules is a user's sudo: one rule, a list, or false / null for none.
type sudoRules []string

func (s *sudoRules) UnmarshalYAML(unmarshal func(any) error) error {
	var v any
	if err := unmarshal(&v); err != nil {
		return err
	}
	*s = nil
	switch r := v.(type) {
	case nil, bool:
		if r == true {
			return errors.New(`sudo: true is not a rule (say "ALL=(ALL) NOPASSWD:ALL")`)
		}
	case string:
		*s = sudoRules{r}
	case []any:
		for _, x := range r {
			*s = append(*s, fmt.Sprint(x))
		}
	default:
		return fmt.Errorf("sudo is a rule or a list of rules, not %T", v)
	}
	return nil
}

// useraddArgs are the arguments that create u, as cloud-init makes them.
func (u userSpec) useraddArgs() []string {
	args := []string{u.Name}
	if u.Gecos != "" {
		args = append(args, "--comment", u.Gecos)
	}
	if u.Homedir != "" {
		args = append(args, "--home", u.Homedir)
	}
	if u.PrimaryGroup != "" {
		args = append(args, "--gid", u.PrimaryGroup)
	}
	if len(u.Groups) > 0 {
		args = append(args, "--groups", strings.Join(u.Groups, ","))
	}
	if u.Shell != "" {
		args = append(args, "--shell", u.Shell)
	}
	if u.UID != nil {
		args = append(args, "--uid", fmt.Sprint(u.UID))
	}
	if u.System {
		args = append(args, "--system")
	}
	if u.NoUserGroup {
		args = append(args, "--no-user-group")
	}
	if pw := u.password(); pw != "" {
		args = append(args, "--password", pw)
	}
	if u.NoCreateHome || u.System {
		args = append(args, "-M")
	} else {
		args = append(args, "-m")
	}
	return args
}

// password is the hash to set: only when lock_passwd is false (it is true
// by default, and a new account's password is locked anyway).
func (u userSpec) password() string {
	if u.LockPasswd == nil || *u.LockPasswd {
		return ""
	}
	if u.HashedPasswd != "" {
		return u.HashedPasswd
	}
	return u.Passwd
}

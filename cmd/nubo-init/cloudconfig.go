package main

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	// YAML 1.1, as cloud-init's PyYAML reads it: 0644 is octal, yes/no are
	// booleans.
	yaml "sigs.k8s.io/yaml/goyaml.v2"
)

// cloudConfig is the part of cloud-config that nubo-init carries out, in
// cloud-init's order: bootcmd (every boot), write_files, groups, users,
// ssh_authorized_keys (the default user's), packages, deferred write_files,
// then the user's scripts and runcmd. debian-12 runs the real cloud-init.
type cloudConfig struct {
	BootCmd           []command   `yaml:"bootcmd"`
	WriteFiles        []writeFile `yaml:"write_files"`
	Groups            groupList   `yaml:"groups"`
	Users             userList    `yaml:"users"`
	SSHAuthorizedKeys []string    `yaml:"ssh_authorized_keys"`
	PackageUpdate     bool        `yaml:"package_update"`
	AptUpdate         bool        `yaml:"apt_update"`
	PackageUpgrade    bool        `yaml:"package_upgrade"`
	AptUpgrade        bool        `yaml:"apt_upgrade"`
	Packages          []pkgSpec   `yaml:"packages"`
	RunCmd            []command   `yaml:"runcmd"`
}

// cloudConfigKeys are the top-level keys nubo-init acts on; it logs the
// others as ignored.
var cloudConfigKeys = map[string]bool{
	"bootcmd": true, "write_files": true, "groups": true, "users": true, "ssh_authorized_keys": true,
	"package_update": true, "apt_update": true, "package_upgrade": true, "apt_upgrade": true,
	"packages": true, "runcmd": true, "merge_how": true, "merge_type": true,
}

// parseCloudConfig reads one #cloud-config document: a YAML mapping.
func parseCloudConfig(b []byte) (map[any]any, error) {
	var doc any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("cloud-config: %w", err)
	}
	switch d := doc.(type) {
	case nil:
		return map[any]any{}, nil
	case map[any]any:
		return d, nil
	}
	return nil, fmt.Errorf("cloud-config: a %T, not a mapping", doc)
}

// mergeConfig merges b into a, as cloud-init merges cloud-config parts by
// default: b's keys replace a's, mappings merging key by key.
func mergeConfig(a, b map[any]any) map[any]any {
	if a == nil {
		a = map[any]any{}
	}
	for k, v := range b {
		am, ok1 := a[k].(map[any]any)
		bm, ok2 := v.(map[any]any)
		if ok1 && ok2 {
			a[k] = mergeConfig(am, bm)
			continue
		}
		a[k] = v
	}
	return a
}

// decodeCloudConfig turns merged documents into a cloudConfig. Keys it
// cannot read (a wrong type) are reported in problems and left out; the
// rest still counts.
func decodeCloudConfig(doc map[any]any) (cfg cloudConfig, ignored []string, problems []string) {
	for k := range doc {
		if ks, ok := k.(string); !ok || !cloudConfigKeys[ks] {
			ignored = append(ignored, fmt.Sprint(k))
		}
	}
	sort.Strings(ignored)
	b, err := yaml.Marshal(doc)
	if err != nil {
		return cfg, ignored, []string{err.Error()}
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return cfg, ignored, te.Errors
		}
		return cfg, ignored, []string{err.Error()}
	}
	return cfg, ignored, nil
}

// command is a bootcmd or runcmd entry: a string for the shell, or a list
// of arguments (quoted for the shell, as cloud-init does).
type command string

func (c *command) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err == nil {
		*c = command(s)
		return nil
	}
	var args []any
	if err := unmarshal(&args); err != nil {
		return fmt.Errorf("a command is a string or a list of arguments")
	}
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(fmt.Sprint(a))
	}
	*c = command(strings.Join(q, " "))
	return nil
}

// shellScript makes commands into one /bin/sh script, a line each, as
// cloud-init does for runcmd and bootcmd (no `set -e`: a failing command
// does not stop the next).
func shellScript(cmds []command) []byte {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	for _, c := range cmds {
		b.WriteString(string(c) + "\n")
	}
	return []byte(b.String())
}

var shellSafe = regexp.MustCompile(`^[\w@%+=:,./-]+$`)

// shellQuote quotes s for /bin/sh as Python's shlex.quote does.
func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

// stringList is a list of strings, or one string of comma-separated items.
type stringList []string

func (l *stringList) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err == nil {
		*l = nil
		for _, f := range strings.Split(s, ",") {
			if f = strings.TrimSpace(f); f != "" {
				*l = append(*l, f)
			}
		}
		return nil
	}
	var items []any
	if err := unmarshal(&items); err != nil {
		return errors.New("a list of names, or one string of names separated by commas")
	}
	*l = nil
	for _, it := range items {
		*l = append(*l, strings.TrimSpace(fmt.Sprint(it)))
	}
	return nil
}

// pkgSpec is a package to install: "name", or [name, version].
type pkgSpec string

func (p *pkgSpec) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err == nil {
		*p = pkgSpec(s)
		return nil
	}
	var pair []any
	if err := unmarshal(&pair); err != nil || len(pair) == 0 || len(pair) > 2 {
		return errors.New("a package is a name or [name, version]")
	}
	s = fmt.Sprint(pair[0])
	if len(pair) == 2 {
		s += "=" + fmt.Sprint(pair[1])
	}
	*p = pkgSpec(s)
	return nil
}

// writeFile is one write_files entry.
type writeFile struct {
	Path        string `yaml:"path"`
	Content     string `yaml:"content"`
	Source      any    `yaml:"source"`
	Owner       string `yaml:"owner"`
	Permissions any    `yaml:"permissions"`
	Encoding    string `yaml:"encoding"`
	Append      bool   `yaml:"append"`
	Defer       bool   `yaml:"defer"`
}

// groupList is the top-level groups: names, or {name: [members]}.
type groupList []groupSpec

type groupSpec struct {
	name    string
	members []string
}

func (l *groupList) UnmarshalYAML(unmarshal func(any) error) error {
	var items []any
	if err := unmarshal(&items); err != nil {
		var one map[any]any
		if err := unmarshal(&one); err != nil {
			return errors.New("groups is a list of names or of {name: [members]}")
		}
		items = []any{one}
	}
	for _, it := range items {
		switch v := it.(type) {
		case map[any]any:
			for k, m := range v {
				g := groupSpec{name: fmt.Sprint(k)}
				switch ms := m.(type) {
				case []any:
					for _, x := range ms {
						g.members = append(g.members, fmt.Sprint(x))
					}
				case string:
					g.members = append(g.members, ms)
				}
				*l = append(*l, g)
			}
		default:
			*l = append(*l, groupSpec{name: fmt.Sprint(v)})
		}
	}
	return nil
}

package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"syscall"
)

// powerAction is what a shutdown command asks PID 1 to do.
type powerAction int

const (
	actPoweroff powerAction = iota + 1
	actHalt
	actReboot
)

func (a powerAction) String() string {
	switch a {
	case actPoweroff:
		return "poweroff"
	case actHalt:
		return "halt"
	case actReboot:
		return "reboot"
	}
	return "none"
}

// signal is what PID 1 receives for the action (see the package doc).
func (a powerAction) signal() syscall.Signal {
	switch a {
	case actHalt:
		return syscall.SIGUSR1
	case actReboot:
		return syscall.SIGINT
	}
	return syscall.SIGUSR2
}

// powerRequest is a parsed shutdown command line.
type powerRequest struct {
	action powerAction
	noop   bool   // -w, -k, shutdown -c: nothing is signalled
	note   string // said on stderr when noop
}

var errHelp = errors.New("help requested")

func isPowerCommand(name string) bool {
	switch name {
	case "poweroff", "halt", "reboot", "shutdown":
		return true
	}
	return false
}

const powerUsage = `usage: poweroff|halt|reboot [-p|--poweroff] [--halt] [--reboot] [-f] [-w] [-n] [--no-wall]
       shutdown [-h|-P|--poweroff] [-H|--halt] [-r|--reboot] [-k] [-c] [now|+0] [message]`

// parsePowerArgs parses the arguments of poweroff, halt, reboot or shutdown
// (cmd) the way sysvinit and systemd accept them, keeping only what matters
// to an instance: which action, and whether to act at all.
func parsePowerArgs(cmd string, args []string) (powerRequest, error) {
	req := powerRequest{action: map[string]powerAction{
		"poweroff": actPoweroff, "halt": actHalt, "reboot": actReboot, "shutdown": actPoweroff,
	}[cmd]}
	if req.action == 0 {
		return req, fmt.Errorf("unknown command %q", cmd)
	}
	shutdown := cmd == "shutdown"
	var positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			positional = append(positional, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "--"):
			switch a {
			case "--poweroff":
				req.action = actPoweroff
			case "--halt":
				req.action = actHalt
			case "--reboot":
				req.action = actReboot
			case "--help":
				return req, errHelp
			case "--no-wall", "--force", "--no-sync", "--no-wtmp", "--quiet":
			case "--wtmp-only":
				req.noop, req.note = true, "only a wtmp record was asked for: nothing to do"
			default:
				return req, fmt.Errorf("unknown option %s", a)
			}
		case strings.HasPrefix(a, "-") && len(a) > 1:
			for j := 1; j < len(a); j++ {
				switch c := a[j]; {
				case c == 'f' || c == 'n' || c == 'd' || c == 'i' || c == 'q' || c == 'F' || c == 'a':
				case c == 'p' && !shutdown:
					req.action = actPoweroff
				case c == 'w' && !shutdown:
					req.noop, req.note = true, "only a wtmp record was asked for: nothing to do"
				case shutdown && (c == 'h' || c == 'P'):
					req.action = actPoweroff
				case shutdown && c == 'H':
					req.action = actHalt
				case shutdown && c == 'r':
					req.action = actReboot
				case shutdown && c == 'k':
					req.noop, req.note = true, "-k: warning only, not shutting down"
				case shutdown && c == 'c':
					req.noop, req.note = true, "no scheduled shutdown to cancel"
				case shutdown && c == 't':
					// -t SECONDS (sysvinit): the delay between SIGTERM and SIGKILL; ours is fixed.
					if j == len(a)-1 {
						i++
						if i == len(args) {
							return req, errors.New("-t needs an argument")
						}
					}
					j = len(a)
				default:
					return req, fmt.Errorf("unknown option -%c", c)
				}
			}
		default:
			positional = append(positional, a)
		}
	}
	if len(positional) == 0 {
		return req, nil
	}
	if !shutdown {
		return req, fmt.Errorf("unexpected argument %q", positional[0])
	}
	// shutdown [TIME] [WALL...]: only an immediate time is supported.
	switch t := positional[0]; {
	case t == "now" || t == "+0" || t == "0":
	case isTimeSpec(t):
		return req, fmt.Errorf("scheduled shutdown (%s) is not supported: use 'now'", t)
	default:
		return req, fmt.Errorf("bad time %q: use 'now'", t)
	}
	return req, nil
}

// isTimeSpec reports whether s is a shutdown TIME: +MINUTES, MINUTES or HH:MM.
func isTimeSpec(s string) bool {
	if h, m, ok := strings.Cut(s, ":"); ok {
		hh, err1 := strconv.Atoi(h)
		mm, err2 := strconv.Atoi(m)
		return err1 == nil && err2 == nil && hh >= 0 && hh < 24 && mm >= 0 && mm < 60
	}
	_, err := strconv.ParseUint(strings.TrimPrefix(s, "+"), 10, 32)
	return err == nil
}

// powerCommand runs poweroff/halt/reboot/shutdown: parse, then send the
// action's signal to PID 1 with send. It returns the process exit code.
func powerCommand(cmd string, args []string, stderr io.Writer, send func(syscall.Signal) error) int {
	req, err := parsePowerArgs(cmd, args)
	if errors.Is(err, errHelp) {
		fmt.Fprintln(stderr, powerUsage)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n%s\n", cmd, err, powerUsage)
		return 2
	}
	if req.noop {
		fmt.Fprintf(stderr, "%s: %s\n", cmd, req.note)
		return 0
	}
	if err := send(req.action.signal()); err != nil {
		fmt.Fprintf(stderr, "%s: cannot signal init: %v\n", cmd, err)
		return 1
	}
	return 0
}

// signalInit sends sig to PID 1 of the caller's PID namespace.
func signalInit(sig syscall.Signal) error {
	return syscall.Kill(1, sig)
}

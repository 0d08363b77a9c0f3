package main

import (
	"bytes"
	"errors"
	"strings"
	"syscall"
	"testing"
)

func TestParsePowerArgs(t *testing.T) {
	tests := []struct {
		cmd    string
		args   string
		want   powerAction
		noop   bool
		errSub string
	}{
		{"poweroff", "", actPoweroff, false, ""},
		{"poweroff", "-f", actPoweroff, false, ""},
		{"poweroff", "--no-wall --force", actPoweroff, false, ""},
		{"poweroff", "--reboot", actReboot, false, ""},
		{"poweroff", "-w", actPoweroff, true, ""},
		{"halt", "", actHalt, false, ""},
		{"halt", "-p", actPoweroff, false, ""},
		{"halt", "--poweroff", actPoweroff, false, ""},
		{"reboot", "", actReboot, false, ""},
		{"reboot", "-f", actReboot, false, ""},
		{"reboot", "-fn", actReboot, false, ""},
		{"shutdown", "now", actPoweroff, false, ""},
		{"shutdown", "", actPoweroff, false, ""},
		{"shutdown", "-h now", actPoweroff, false, ""},
		{"shutdown", "-P now", actPoweroff, false, ""},
		{"shutdown", "-hP now", actPoweroff, false, ""},
		{"shutdown", "-H now", actHalt, false, ""},
		{"shutdown", "-r now", actReboot, false, ""},
		{"shutdown", "--reboot now going down for maintenance", actReboot, false, ""},
		{"shutdown", "-r +0", actReboot, false, ""},
		{"shutdown", "-t 5 -r now", actReboot, false, ""},
		{"shutdown", "-t5 -h now", actPoweroff, false, ""},
		{"shutdown", "-k now", actPoweroff, true, ""},
		{"shutdown", "-c", actPoweroff, true, ""},
		{"shutdown", "-h -- now", actPoweroff, false, ""},
		{"shutdown", "-r +5", 0, false, "not supported"},
		{"shutdown", "-h 23:30", 0, false, "not supported"},
		{"shutdown", "-h soon", 0, false, "bad time"},
		{"shutdown", "-t", 0, false, "needs an argument"},
		{"shutdown", "-x now", 0, false, "unknown option -x"},
		{"reboot", "now", 0, false, "unexpected argument"},
		{"poweroff", "--bogus", 0, false, "unknown option --bogus"},
		{"halt", "-r", 0, false, "unknown option -r"},
		{"frobnicate", "", 0, false, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.cmd+" "+tt.args, func(t *testing.T) {
			req, err := parsePowerArgs(tt.cmd, strings.Fields(tt.args))
			if tt.errSub != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errSub) {
					t.Fatalf("err = %v, want one containing %q", err, tt.errSub)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if req.action != tt.want || req.noop != tt.noop {
				t.Fatalf("got %v noop=%v, want %v noop=%v", req.action, req.noop, tt.want, tt.noop)
			}
		})
	}
}

func TestPowerCommandSignals(t *testing.T) {
	tests := []struct {
		cmd, args string
		sig       syscall.Signal // 0: none sent
		code      int
	}{
		{"poweroff", "", syscall.SIGUSR2, 0},
		{"halt", "", syscall.SIGUSR1, 0},
		{"reboot", "", syscall.SIGINT, 0},
		{"shutdown", "-r now", syscall.SIGINT, 0},
		{"shutdown", "-h now", syscall.SIGUSR2, 0},
		{"shutdown", "-k now", 0, 0},
		{"shutdown", "--help", 0, 0},
		{"shutdown", "-r +10", 0, 2},
	}
	for _, tt := range tests {
		var got syscall.Signal
		var stderr bytes.Buffer
		code := powerCommand(tt.cmd, strings.Fields(tt.args), &stderr, func(s syscall.Signal) error { got = s; return nil })
		if code != tt.code || got != tt.sig {
			t.Errorf("%s %s: code %d signal %v, want %d %v (stderr %q)", tt.cmd, tt.args, code, got, tt.code, tt.sig, stderr.String())
		}
	}
	var stderr bytes.Buffer
	code := powerCommand("reboot", nil, &stderr, func(syscall.Signal) error { return syscall.EPERM })
	if code != 1 || !strings.Contains(stderr.String(), "cannot signal init") {
		t.Errorf("failed send: code %d stderr %q", code, stderr.String())
	}
}

func TestIsTimeSpec(t *testing.T) {
	for s, want := range map[string]bool{"+5": true, "10": true, "23:59": true, "24:00": false, "now": false, "1:x": false, "-3": false} {
		if got := isTimeSpec(s); got != want {
			t.Errorf("isTimeSpec(%q) = %v", s, got)
		}
	}
	if !errors.Is(func() error { _, err := parsePowerArgs("shutdown", []string{"--help"}); return err }(), errHelp) {
		t.Error("--help is not errHelp")
	}
}

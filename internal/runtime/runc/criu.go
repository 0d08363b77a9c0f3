package runc

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// CRIUPath is where `make install` puts CRIU 4 (scripts/install-criu.sh):
// Debian 12's CRIU 3.17 cannot dump on kernels from 6.13 on.
const CRIUPath = "/usr/local/lib/nubo/criu/criu"

// CheckCRIU reports whether CRIU at path can checkpoint on this host
// (`criu check`), and why not.
func CheckCRIU(ctx context.Context, path string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "check")
	// Hardware breakpoints never fire in some VMs, and CRIU then waits
	// for them forever (see docs/criu-notes.md).
	cmd.Env = append(cmd.Environ(), "CRIU_FAULT=130")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s check: %w: %s", path, err, lastOf(string(out)))
	}
	return nil
}

func lastOf(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

package nubotest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"nubo/internal/image"
)

// ImageCache returns an image dir holding the named image, building it the
// first time: below $NUBO_IMAGE_CACHE, or a directory under the system temp
// dir that tests do not delete, shared by every test package (a file lock
// keeps two packages from building at once). Built images never change, so
// the dir is named for what goes into one: the recipe's version and the
// nubo-init binary.
func ImageCache(ctx context.Context, name string) (string, error) {
	base := os.Getenv("NUBO_IMAGE_CACHE")
	if base == "" {
		base = filepath.Join(os.TempDir(), "nubo-image-cache")
	}
	bin, err := Binary()
	if err != nil {
		return "", err
	}
	initBin, err := os.ReadFile(filepath.Join(filepath.Dir(bin), "nubo-init"))
	if err != nil {
		return "", fmt.Errorf("nubo-init next to %s: %w", bin, err)
	}
	sum := sha256.Sum256(append([]byte(image.RecipeVersion(name)+"\x00"), initBin...))
	dir := filepath.Join(base, hex.EncodeToString(sum[:6]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, bin, "image", "build", name, "--image-dir", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building image %s: %v\n%s", name, err, out)
	}
	return dir, nil
}

// InstancePID is the host PID of an instance's PID 1, from runc's state.
func (s *Server) InstancePID(id string) (string, error) {
	out, err := exec.Command("runc", "--root", filepath.Join(s.DataDir, "runtime", "runc"), "state", id).Output()
	if err != nil {
		return "", fmt.Errorf("runc state %s: %w", id, err)
	}
	var st struct {
		Pid    int    `json:"pid"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return "", err
	}
	if st.Status != "running" || st.Pid == 0 {
		return "", fmt.Errorf("instance %s is %s", id, st.Status)
	}
	return strconv.Itoa(st.Pid), nil
}

// Cleanup stops the server and removes every instance, cgroup and mount it
// made (nubo serve --cleanup). Register it with t.Cleanup.
func (s *Server) Cleanup(t testing.TB) {
	s.Stop()
	out, err := exec.Command(s.Bin, "serve", "--cleanup", "--data-dir", s.DataDir).CombinedOutput()
	if err != nil {
		t.Errorf("nubo serve --cleanup: %v\n%s", err, out)
	}
}

package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// outputLog is where cloud-init, and so EC2's documentation, puts the
// output of user data; nubo-init keeps it there too.
const outputLog = "var/log/cloud-init-output.log"

// output copies what user data prints to the console and to
// /var/log/cloud-init-output.log. Commands get the write end of a pipe as
// their stdout and stderr (an *os.File: PID 1 reaps its children itself, so
// exec.Cmd never copies for it), and one goroutine copies from the read end.
// nubo-init's own lines about user data go through the same pipe, so they
// stay in order with the commands' output.
type output struct {
	w    *os.File
	r    *os.File
	done chan struct{}
}

// openOutput starts copying to console and to the log below root (mode
// 0640, group adm, which the default user is in, as cloud-init does).
func openOutput(root string, console io.Writer) (*output, error) {
	logPath := filepath.Join(root, outputLog)
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, err
	}
	if gid, ok := lookupGroup(root, "adm"); ok {
		_ = f.Chown(0, gid)
	}
	r, w, err := os.Pipe()
	if err != nil {
		f.Close()
		return nil, err
	}
	o := &output{w: w, r: r, done: make(chan struct{})}
	go func() {
		defer close(o.done)
		defer f.Close()
		defer r.Close()
		buf := make([]byte, 32<<10)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				_, _ = console.Write(buf[:n]) // a broken console must not stop the log
				_, _ = f.Write(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}()
	return o, nil
}

// logf writes one "nubo-init: " line, in one write(2).
func (o *output) logf(format string, args ...any) {
	_, _ = io.WriteString(o.w, "nubo-init: "+fmt.Sprintf(format, args...)+"\n")
}

// Write writes raw text, e.g. the host key block.
func (o *output) Write(p []byte) (int, error) { return o.w.Write(p) }

// close closes nubo-init's write end and waits a little for the copy to
// drain. Processes that user data left running in the background may hold
// the pipe open for their whole life, as they do with cloud-init: their
// output keeps flowing, and nothing waits for them.
func (o *output) close() {
	o.w.Close()
	select {
	case <-o.done:
	case <-time.After(200 * time.Millisecond):
	}
}

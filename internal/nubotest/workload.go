package nubotest

// RAMWorkload is user data (debian-12-minimal) that starts, under the
// instance's init, what a hibernation must keep: a counter held only in a
// shell variable (written to /run/counter every 100 ms; its PID in
// /run/counter.pid) and a perl process holding 256 MiB of random data in
// its memory, which writes the data's sha256 to /run/data.sha256 once the
// data is made, and to /run/data.sha256.now on SIGUSR1 (PID in
// /run/data.pid).
const RAMWorkload = `#!/bin/sh
nohup perl -e '
  open(my $r, "<", "/dev/urandom") or die; read($r, my $d, 256 << 20) == 256 << 20 or die;
  sub sum { open(my $o, "|-", "sha256sum | cut -d\" \" -f1 > $_[0].tmp && mv $_[0].tmp $_[0]") or die; print $o $d; close $o }
  $SIG{USR1} = sub { sum("/run/data.sha256.now") };
  sum("/run/data.sha256");
  sleep 1 while 1;' >/dev/null 2>&1 &
echo $! > /run/data.pid
nohup sh -c 'echo $$ > /run/counter.pid; i=0; while :; do i=$((i+1)); echo $i > /run/counter; sleep 0.1; done' >/dev/null 2>&1 &
`

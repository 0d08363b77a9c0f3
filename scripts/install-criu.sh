#!/usr/bin/env bash
# install-criu.sh — provide CRIU 4.x at /usr/local/lib/nubo/criu/criu (idempotent).
#
# Why: Debian 12's criu 3.17 (/usr/sbin/criu) fails on kernels >= 6.13
# ("vdso: Unexpected rt vDSO area bounds"). We build the upstream tarball of
# Debian trixie's criu source package (4.1.1) with plain `make criu` and install
# only the binary under /usr/local/lib/nubo/criu; Debian's package is left alone.
#
# - Fast path: quiet, no-op when the installed binary reports version >= 4
#   and was built with the patches in scripts/criu/ (recorded beside it).
# - Patches (scripts/criu/*.patch) fix what this CRIU gets wrong on recent
#   kernels: 0001, Linux >= 6.16 answers EOPNOTSUPP for SO_PASSCRED and
#   SO_PASSSEC on inet sockets, and CRIU 4.1.1 then fails to dump any
#   instance with a TCP socket (sshd's).
# - The trixie source is fetched with a throw-away apt configuration (temporary
#   sources list, lists and cache dirs); the host's apt configuration and state
#   are not changed. apt verifies the tarball against trixie's signed Sources
#   index; we re-check its SHA-256 ourselves because some mirrors/proxies serve
#   the .orig.tar.xz but not the .dsc/.debian.tar.xz (then `apt-get source`
#   fails after downloading the tarball, which is all `make criu` needs).
# - Writes /usr/local/lib/nubo/criu/criu.conf (use it with CRIU_CONFIG_FILE).
# - Runs `criu check` and fails loudly if it fails.
#
# Runtime environment nubo must set when calling this criu on hosts like ours:
#   CRIU_FAULT=130   ptrace hardware breakpoints never fire in the Firecracker VM;
#                    without it a dump hangs forever.
#   CRIU_CONFIG_FILE=/usr/local/lib/nubo/criu/criu.conf
set -euo pipefail

PREFIX=${NUBO_CRIU_DIR:-/usr/local/lib/nubo/criu}
CRIU=$PREFIX/criu
CONF=$PREFIX/criu.conf
SUITE=${NUBO_CRIU_SUITE:-trixie}
MIRROR=${NUBO_CRIU_MIRROR:-http://deb.debian.org/debian}

# Build dependencies of the `criu` binary alone (plain `make criu`, no docs,
# no python tools, no plugins), all from bookworm:
#   libprotobuf-c-dev protobuf-c-compiler  image format (protoc-c + runtime)
#   libprotobuf-dev   google/protobuf/descriptor.proto (images/opts.proto imports it);
#                     protoc itself (protobuf-compiler) is not needed
#   libnl-3-dev       netlink (required)
#   libnet1-dev       libsoccr / TCP repair (required, linked -lnet)
#   libcap-dev        listed as required by criu/Makefile.packages
#   uuid-dev          required (-luuid)
#   libnftables-dev   optional upstream, needed here: `network-lock nftables`
#                     (there is no iptables binary on nubo hosts)
#   pkgconf gcc make libc6-dev   toolchain
#   xz-utils patch    unpack the tarball, apply scripts/criu/*.patch
# Not needed: asciidoc/xmlto (docs), python3-* (crit/pycriu), libbsd-dev
# (setproctitle only), libgnutls28-dev (TLS page server; built with NO_GNUTLS=1
# so the result does not depend on what happens to be installed).
BUILD_DEBS=(libprotobuf-c-dev protobuf-c-compiler libprotobuf-dev libnl-3-dev
	libnet1-dev libcap-dev uuid-dev libnftables-dev pkgconf gcc make libc6-dev
	xz-utils patch)

PATCHES=$(cd "$(dirname "$0")/criu" && pwd)
patchlevel() { cat "$PATCHES"/*.patch | sha256sum | cut -d' ' -f1; }

have_criu4() {
	[ -x "$CRIU" ] || return 1
	[ "$(cat "$PREFIX/patches" 2>/dev/null)" = "$(patchlevel)" ] || return 1
	local v
	v=$("$CRIU" --version 2>/dev/null | sed -n 's/^Version: *\([0-9]*\).*/\1/p')
	[ -n "$v" ] && [ "$v" -ge 4 ]
}

write_conf() {
	local want
	# Minimal: CRIU's default network lock shells out to iptables, which nubo
	# hosts do not have. Nothing else (no tcp-established, no shell-job: callers
	# pass what they need).
	want='network-lock nftables'
	if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$want" ]; then
		mkdir -p "$PREFIX"
		printf '%s\n' "$want" >"$CONF.tmp" && mv "$CONF.tmp" "$CONF"
		echo "install-criu: wrote $CONF"
	fi
}

if have_criu4; then
	write_conf
	exit 0
fi

[ "$(id -u)" = 0 ] || { echo "install-criu: must run as root" >&2; exit 1; }

work=$(mktemp -d /tmp/nubo-criu-build.XXXXXX)
trap 'rm -rf "$work"' EXIT

missing=()
for p in "${BUILD_DEBS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "install-criu: installing build dependencies: ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Private apt configuration: only $SUITE's deb-src, own lists and cache.
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/src"
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR $SUITE main" >"$work/sources.list"
apto=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
	-o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
	-o "APT::Sandbox::User=root")
apt-get "${apto[@]}" -qq update
src=$(apt-cache "${apto[@]}" showsrc criu)
ver=$(awk '/^Version:/ {print $2; exit}' <<<"$src")
upver=${ver%-*}; upver=${upver#*:}
orig="criu_${upver}.orig.tar.xz"
sum=$(awk -v f="$orig" '/^Checksums-Sha256:/ {s=1; next} /^[^ ]/ {s=0} s && $3 == f {print $1; exit}' <<<"$src")
[ -n "$sum" ] || { echo "install-criu: no $orig in $SUITE's Sources for criu $ver" >&2; exit 1; }
case "$upver" in [0-9]*) [ "${upver%%.*}" -ge 4 ] || { echo "install-criu: $SUITE has criu $ver (< 4)" >&2; exit 1; } ;; esac

echo "install-criu: building CRIU $ver from Debian $SUITE (about 20-60 s)"
(cd "$work/src" && apt-get "${apto[@]}" -qq source --download-only criu >"$work/apt-source.log" 2>&1) || true
[ -f "$work/src/$orig" ] || { cat "$work/apt-source.log" >&2; echo "install-criu: could not download $orig" >&2; exit 1; }
echo "$sum  $work/src/$orig" | sha256sum -c --quiet - || { echo "install-criu: checksum mismatch for $orig" >&2; exit 1; }

tar -C "$work/src" -xf "$work/src/$orig"
srcdir=$(find "$work/src" -mindepth 1 -maxdepth 1 -type d -name 'criu-*' | head -n1)
for p in "$PATCHES"/*.patch; do
	patch -s -d "$srcdir" -p1 <"$p" || { echo "install-criu: $p does not apply" >&2; exit 1; }
done
if ! make -C "$srcdir" -j"$(nproc)" NO_GNUTLS=1 criu >"$work/build.log" 2>&1; then
	tail -n 40 "$work/build.log" >&2
	echo "install-criu: build failed" >&2
	exit 1
fi
grep -q 'Building without nftables' "$work/build.log" && { echo "install-criu: built without nftables support" >&2; exit 1; }

mkdir -p "$PREFIX"
install -m 0755 "$srcdir/criu/criu" "$CRIU.tmp"
mv "$CRIU.tmp" "$CRIU"
patchlevel >"$PREFIX/patches"
write_conf

# `criu check` must pass. `criu check --all` only warns here: "Dirty tracking
# is OFF" (no soft-dirty in this kernel: no pre-dump / lazy iterative
# migration, only stop-and-copy), which nubo does not use.
if ! out=$("$CRIU" check 2>&1); then
	echo "$out" >&2
	echo "install-criu: '$CRIU check' FAILED" >&2
	exit 1
fi
echo "install-criu: installed $("$CRIU" --version | head -n1) at $CRIU ($out)"

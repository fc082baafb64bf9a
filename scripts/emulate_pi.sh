#!/usr/bin/env bash
# Run a command on an emulated 64-bit Raspberry Pi OS: a Debian bookworm arm64 root (what Raspberry Pi
# OS is built on) under qemu-user, with this checkout installed from its own files and visible at the
# same path.
#
#     sudo scripts/emulate_pi.sh [COMMAND ...]        # default COMMAND: c3t-edge demo
#     sudo scripts/emulate_pi.sh c3t-edge replay --json c3t_edge/assets/demo/wrist_session.c3trec
#     sudo scripts/emulate_pi.sh python bench/bench_bundle.py     # says its times are emulated ones
#     sudo .venv/bin/python bench/bench_emulated_pi.py            # arm64 instructions per window instead
#
# Needs root and the Debian packages debootstrap, qemu-user-static and binfmt-support. The first run
# builds the root with debootstrap (2 to 5 minutes) and a virtual environment inside it with
# `pip install .` of the runtime (aarch64 wheels of numpy and onnxruntime from the package index);
# both are cached under .cache/pi-root/ (ignored by git). A later run reinstalls the package only when
# pyproject.toml, README.md or c3t_edge/ changed. The command runs in a chroot with /proc, /sys, /dev
# and the checkout mounted; every mount is undone on exit, also on failure or Ctrl-C.
#
# Environment:
#   C3T_PI_MIRROR   Debian mirror for debootstrap (default http://deb.debian.org/debian; when that is
#                   unreachable, the first Debian mirror of this machine's /etc/apt/sources.list*)
#   C3T_PI_ROOT     where the root lives (default CHECKOUT/.cache/pi-root)
#   C3T_PI_CPU      the emulated core: cortex-a76 (Raspberry Pi 5, default) or cortex-a72 (Pi 4); qemu
#                   then offers exactly that core's instruction set (a76: int8 dot product; a72: not)
#
# Emulated timings are not Raspberry Pi timings: qemu-user translates every arm64 instruction into x86
# code, at a cost that differs per instruction class. See export/raspberry-pi.md.
set -euo pipefail

CHECKOUT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
CACHE="${C3T_PI_ROOT:-$CHECKOUT/.cache/pi-root}"
ROOT="$CACHE/rootfs"
VENV=/opt/c3t-venv          # inside the root
SUITE=bookworm
DEFAULT_MIRROR=http://deb.debian.org/debian
MOUNTS=()                   # mount points (host paths) in the order they were made
PI_CPU="${C3T_PI_CPU:-cortex-a76}"

die() { echo "emulate_pi: $*" >&2; exit 1; }
log() { echo "emulate_pi: $*" >&2; }

check_tools() {
    [ "$(id -u)" = 0 ] || die "needs root (debootstrap, binfmt_misc, chroot and mounts): run it with sudo"
    local tool missing=()
    for tool in debootstrap qemu-aarch64-static update-binfmts chroot mount umount flock python3; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    [ ${#missing[@]} = 0 ] || die "missing ${missing[*]}: apt-get install debootstrap qemu-user-static binfmt-support"
}

# Let the kernel run arm64 ELF files through qemu-aarch64-static (binfmt_misc).
enable_binfmt() {
    local dir=/proc/sys/fs/binfmt_misc
    if [ ! -e "$dir/status" ]; then
        mount -t binfmt_misc binfmt_misc "$dir" || die "cannot mount binfmt_misc on $dir"
    fi
    if ! grep -qx enabled "$dir/qemu-aarch64" 2>/dev/null; then  # (--import: a package installed before the mount)
        update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 \
            || { update-binfmts --import qemu-aarch64 >/dev/null 2>&1; update-binfmts --enable qemu-aarch64 >/dev/null; } \
            || die "update-binfmts --enable qemu-aarch64 failed"
    fi
    grep -qx enabled "$dir/qemu-aarch64" 2>/dev/null || die "binfmt_misc has no enabled qemu-aarch64 entry"
}

reachable() {  # URL: the mirror answers for the suite's Release file within 15 s
    python3 - "$1/dists/$SUITE/Release" <<'EOF' >/dev/null 2>&1
import sys, urllib.request
urllib.request.urlopen(urllib.request.Request(sys.argv[1], method="HEAD"), timeout=15)
EOF
}

# C3T_PI_MIRROR, else deb.debian.org, else the first Debian archive mirror apt uses on this machine.
pick_mirror() {
    if [ -n "${C3T_PI_MIRROR:-}" ]; then echo "$C3T_PI_MIRROR"; return; fi
    local candidates uri
    candidates="$DEFAULT_MIRROR $(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
        /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v security | tr -d ' ' | sed 's:/$::' | sort -u)"
    for uri in $candidates; do
        if reachable "$uri"; then echo "$uri"; return; fi
    done
    die "no Debian mirror reachable (tried: $candidates); set C3T_PI_MIRROR"
}

mounted_under() {  # DIR: mount points at or below DIR, deepest first
    python3 - "$1" <<'EOF'
import sys
top = sys.argv[1].rstrip("/")
points = [line.split()[1].encode().decode("unicode_escape") for line in open("/proc/mounts")]
for p in sorted({p for p in points if p == top or p.startswith(top + "/")}, key=len, reverse=True):
    print(p)
EOF
}

unmount_all() {  # DIR: undo every mount below DIR (ours, and any debootstrap left behind)
    local point
    while read -r point; do
        [ -n "$point" ] || continue
        umount "$point" 2>/dev/null || umount -l "$point" 2>/dev/null || log "could not unmount $point"
    done < <(mounted_under "$1")
}

cleanup() {
    local i
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        umount "${MOUNTS[$i]}" 2>/dev/null || umount -l "${MOUNTS[$i]}" 2>/dev/null || true
    done
    MOUNTS=()
    [ -d "$ROOT" ] && unmount_all "$ROOT"
    [ -d "$ROOT.partial" ] && unmount_all "$ROOT.partial"
    return 0
}

bind() {  # SRC DEST [ro]: bind-mount SRC at DEST (a path inside the root), remembered for cleanup
    local src="$1" dest="$ROOT$2"
    if [ -d "$src" ]; then mkdir -p "$dest"; else mkdir -p "$(dirname "$dest")"; touch "$dest"; fi
    mount --bind "$src" "$dest"
    MOUNTS+=("$dest")
    if [ "${3:-}" = ro ]; then mount -o remount,bind,ro "$dest"; fi
}

build_root() {
    [ -f "$CACHE/rootfs.ok" ] && return 0
    local mirror partial="$ROOT.partial"
    mirror="$(pick_mirror)"
    unmount_all "$partial"
    unmount_all "$ROOT"
    [ -z "$(mounted_under "$partial")$(mounted_under "$ROOT")" ] || die "mounts left below $CACHE; not removing it"
    rm -rf "$partial" "$ROOT"
    mkdir -p "$CACHE"
    log "debootstrap $SUITE arm64 from $mirror into $ROOT (once, a few minutes)"
    local start=$SECONDS
    if ! debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,ca-certificates \
            "$SUITE" "$partial" "$mirror" >"$CACHE/debootstrap.log" 2>&1; then
        unmount_all "$partial"
        tail -n 5 "$CACHE/debootstrap.log" >&2
        die "debootstrap failed (full log: $CACHE/debootstrap.log)"
    fi
    unmount_all "$partial"
    mv "$partial" "$ROOT"
    echo "$mirror $(date -u +%FT%TZ) $((SECONDS - start))s" >"$CACHE/rootfs.ok"
    log "root built in $((SECONDS - start)) s"
}

# /proc/cpuinfo as the emulated Pi's kernel writes it. qemu-aarch64 7.2 passes the host's (x86) file
# through, and onnxruntime's cpuinfo library crashes on it (a NULL dereference at import) once /sys is
# mounted; the processor count is the host's, which is what /sys shows.
fake_cpuinfo() {
    local part variant revision features n i file="$CACHE/cpuinfo.$PI_CPU"
    case "$PI_CPU" in
        cortex-a76) part=0xd0b variant=0x4 revision=1
                    features="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp" ;;
        cortex-a72) part=0xd08 variant=0x0 revision=3 features="fp asimd evtstrm crc32 cpuid" ;;
        *) die "C3T_PI_CPU=$PI_CPU: use cortex-a76 (Raspberry Pi 5) or cortex-a72 (Raspberry Pi 4)" ;;
    esac
    n="$(getconf _NPROCESSORS_CONF)"
    : >"$file"
    for ((i = 0; i < n; i++)); do
        printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\n' "$i" "$features"
        printf 'CPU architecture: 8\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %d\n\n' "$variant" "$part" "$revision"
    done >>"$file"
    bind "$file" /proc/cpuinfo ro
}

# The host's network and package-index configuration, so that apt and pip inside reach what the
# host reaches: resolv.conf, the CA bundle, pip.conf files, and local directories they point to.
host_config() {
    cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
    local ca=/etc/ssl/certs/ca-certificates.crt
    [ -f "$ca" ] && { mkdir -p "$ROOT/etc/ssl/certs"; cp -L "$ca" "$ROOT$ca"; }
    local conf dest files=() paths
    [ -f /etc/pip.conf ] && files+=(/etc/pip.conf)
    [ -f "$HOME/.config/pip/pip.conf" ] && files+=("$HOME/.config/pip/pip.conf")
    [ -f "$HOME/.pip/pip.conf" ] && files+=("$HOME/.pip/pip.conf")
    [ -n "${PIP_CONFIG_FILE:-}" ] && [ -f "$PIP_CONFIG_FILE" ] && files+=("$PIP_CONFIG_FILE")
    rm -f "$ROOT/etc/pip.conf" "$ROOT/root/.config/pip/pip.conf" "$ROOT/root/.pip/pip.conf"
    for conf in "${files[@]}"; do
        dest="$ROOT$conf"  # the command runs as root inside: a user's file goes to /root
        case "$conf" in "$HOME"/*) dest="$ROOT/root/${conf#"$HOME"/}" ;; esac
        mkdir -p "$(dirname "$dest")"
        cp -L "$conf" "$dest"
    done
    # local indexes and wheel folders the configuration names (a */simple index: its parent, which
    # holds the files it links to), read-only at the same path
    paths="$( { cat "${files[@]}" /dev/null; env | grep -E '^PIP_(FIND_LINKS|INDEX_URL|EXTRA_INDEX_URL)='; } \
        | grep -oE '(file://)?/[^ ="]+' | sed -e 's,^file://,,' -e 's,/simple/*$,,' | sort -u)"
    for conf in $paths; do
        case "$conf" in /|/proc*|/sys*|/dev*|/opt/c3t-venv*|"$CHECKOUT"*) continue ;; esac
        [ -d "$conf" ] && bind "$conf" "$conf" ro
    done
}

# What runs inside: a clean environment, plus the host's pip and CA settings and a few knobs.
chroot_env() {
    local name
    printf '%s\n' HOME=/root LANG=C.UTF-8 "TERM=${TERM:-dumb}" "QEMU_CPU=$PI_CPU" "C3T_EMULATED=qemu-aarch64 $PI_CPU"
    echo "PATH=$VENV/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    for name in $(compgen -e); do
        case "$name" in
            PIP_*|SSL_CERT_FILE|SSL_CERT_DIR|REQUESTS_CA_BUNDLE|OMP_NUM_THREADS|PYTHONHASHSEED)
                printf '%s=%s\n' "$name" "${!name}" ;;
        esac
    done
}

in_root() {  # run ARGS inside the root, in directory $WORKDIR
    local -a envs
    mapfile -t envs < <(chroot_env)
    QEMU_CPU="$PI_CPU" chroot "$ROOT" /usr/bin/env -i "${envs[@]}" /bin/bash -c 'cd "$1" && shift && exec "$@"' - "$WORKDIR" "$@"
}

pip_in_root() {  # pip ARGS in the venv; without the host configuration's notes on x86-only local indexes
    in_root "$VENV/bin/python" -m pip "$@" 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
}

# pip install . of the runtime into $VENV inside the root, from a copy of the checkout's own files
# (pyproject.toml, README.md, c3t_edge/), redone only when they changed.
install_package() {
    local stamp="$ROOT$VENV/.c3t-source" digest
    digest="$(cd "$CHECKOUT" && find pyproject.toml README.md c3t_edge -type f ! -path '*/__pycache__/*' \
        ! -name '*.pyc' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)"
    [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ] && return 0
    log "installing the checkout into $VENV inside the root (pip install .; aarch64 wheels)"
    local start=$SECONDS src=/tmp/c3t-edge-src
    rm -rf "$ROOT$src"
    mkdir -p "$ROOT$src"
    (cd "$CHECKOUT" && tar -cf - --exclude=__pycache__ --exclude='*.pyc' pyproject.toml README.md c3t_edge) \
        | tar -xf - -C "$ROOT$src"
    local WORKDIR=/
    if [ ! -x "$ROOT$VENV/bin/python" ]; then
        in_root python3 -m venv "$VENV"
        pip_in_root install --quiet --upgrade pip
    fi
    pip_in_root install --quiet "$src"
    rm -rf "$ROOT$src"
    echo "$digest" >"$stamp"
    log "installed in $((SECONDS - start)) s"
}

main() {
    check_tools
    mkdir -p "$CACHE"
    exec 9>"$CACHE.lock"
    flock 9  # one run at a time: the mounts below the root are shared
    trap cleanup EXIT
    cleanup  # mounts a killed run (kill -9) left behind
    trap 'exit 130' INT
    trap 'exit 143' TERM
    enable_binfmt
    build_root
    bind /proc /proc
    fake_cpuinfo
    bind /sys /sys
    bind /dev /dev ro  # read-only: device nodes still work, and nothing below can be deleted through it
    bind "$CHECKOUT" "$CHECKOUT"
    host_config
    install_package
    WORKDIR="$(pwd -P)"
    case "$WORKDIR" in "$CHECKOUT"|"$CHECKOUT"/*) ;; *) WORKDIR="$CHECKOUT" ;; esac
    [ $# -gt 0 ] || set -- c3t-edge demo
    local rc=0
    in_root "$@" || rc=$?
    return $rc
}

main "$@"; exit  # exit here: bash reads a script as it runs, and this file may be edited meanwhile

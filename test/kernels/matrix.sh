#!/usr/bin/env bash
# make test-kernels: boot Debian's packaged kernels under qemu and run the
# test suite inside each one.  The guest's root is the host's own root, shared
# read-only over virtiofs under a tmpfs overlay (see initramfs-init), so the
# guest runs exactly the tools and build the host has.  Kernels are fetched
# with apt-get download and cached in .cache/kernels (out of git).
set -u

usage() {
	cat <<'EOF'
Usage: test/kernels/matrix.sh [--list] [KERNEL_PACKAGE...]   (as root; 'sudo make test-kernels')

Boots each kernel under qemu (KVM where it works, else TCG emulation) and runs
test/run.sh inside it.  Default kernels: Debian 12's cloud kernel (6.1), its
6.12 cloud kernel and Debian 11's 5.10 (the oldest supported), each with the
cases most tied to the kernel (6.1 a wider set; both lists top of this file).
KERNEL_PACKAGE is [SUITE/]PACKAGE[@PATTERN,PATTERN...]: no patterns, the
whole suite but test/kernels/host-only.  Ends with "N passed, N failed, N skipped" over all guests; exit 0 only if every guest
ran and passed.

Environment:
  SB_KERNELS          kernel packages (default: the three above)
  SB_GUEST_TESTS      test/run.sh PATTERN[,PATTERN] inside guests without their
                      own @PATTERN (default: every test but those
                      test/kernels/host-only lists, each with why)
  SB_GUEST_ALL=1      run the host-only ones too
  SB_GUEST_TIMEOUT    seconds one guest may run (default 3600)
  SB_KERNEL_CACHE     cache directory (default .cache/kernels)
  SB_ACCEL            kvm or tcg (default: kvm if a probe boot works, else tcg)
EOF
}

case "${1:-}" in -h | --help) usage; exit 0 ;; esac
if [ "$(id -u)" != 0 ]; then
	echo "matrix.sh: must run as root (it starts qemu and virtiofsd): sudo make test-kernels" >&2
	exit 3
fi

root=$(cd "$(dirname "$0")/../.." && pwd)
cache=${SB_KERNEL_CACHE:-$root/.cache/kernels}
guest_timeout=${SB_GUEST_TIMEOUT:-3600}
virtiofsd=/usr/lib/qemu/virtiofsd
# Every guest runs the cases most tied to the kernel; 6.1 (Debian 12's own
# kernel) a wider set: the documented kernel limits, ordering, counters, the
# copy/splice proxy. CI has 90 minutes in all and a case takes ~50 s under TCG
# (the whole suite on 6.1 took 3,339 s of them, and CI timed out)
kernel_cases="bypass:,backpressure: walked,backpressure: iperf3,backpressure: blocking,lifecycle: unload,netns: identical"
kernel_cases+=",errors: degraded,order: fionread,order: waitall,trace: trace_lines,scope: excluded"
kernel_cases+=",memory: stalled,memory: memory_limit,proxy: sockmap_every,proxy: eof_after,portmap: names"
# bytes before registration: 5.10's verdict repeated half-read skbs (README, the proxy splice)
kernel_cases+=",proxy: bytes_and_fin"
# the sockets handed back mid-stream: what the verdict left waits on them for recv()
kernel_cases+=",proxy: detach"
# bytes left on a socket whose connection the peer's FIN then closed: kernels
# before 5.15 took such a socket out of the map then, dropping them
kernel_cases+=",proxy: a_half_closed"
wider_cases="$kernel_cases,limits:,order: msg_peek,order: half_close_client,counters: counters_match"
wider_cases+=",proxy: copy_and_splice,faults: peer_killed"
if [ $# -gt 0 ]; then kernels="$*"; else
	kernels=${SB_KERNELS:-linux-image-cloud-amd64@${wider_cases// /+} linux-image-6.12-cloud-amd64@${kernel_cases// /+}
		bullseye/linux-image-cloud-amd64@${kernel_cases// /+}}
fi

need_packages() {
	local missing=()
	command -v qemu-system-x86_64 >/dev/null && [ -x "$virtiofsd" ] || missing+=(qemu-system-x86)
	[ -x /bin/busybox ] || missing+=(busybox-static)
	command -v cpio >/dev/null || missing+=(cpio)
	command -v depmod >/dev/null || missing+=(kmod)
	command -v xz >/dev/null || missing+=(xz-utils)
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "matrix: installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null && return 0
	echo "matrix.sh: could not install ${missing[*]}: apt-get install ${missing[*]}" >&2
	exit 10
}

# apt for SUITE/PACKAGE names (bullseye/linux-image-cloud-amd64): a private
# sources list and cache under $cache/apt-SUITE, nothing of the host's touched.
apt_for() { # suite command...
	local suite=$1 dir="$cache/apt-$1"
	shift
	mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
	echo "deb http://deb.debian.org/debian $suite main" >"$dir/sources.list"
	"$@" -o Dir::Etc::sourcelist="$dir/sources.list" -o Dir::Etc::sourceparts=- \
		-o Dir::State::Lists="$dir/lists" -o Dir::Cache="$dir/cache" -o APT::Get::List-Cleanup=0
}

# A meta package (linux-image-cloud-amd64) names the versioned one it pulls.
resolve_package() { # [suite/]package
	local dep suite='' pkg=$1 apt=()
	case "$pkg" in */*) suite=${pkg%%/*} pkg=${pkg#*/}
		if [ ! -f "$cache/apt-$suite/updated" ]; then
			apt_for "$suite" apt-get -q update >/dev/null 2>&1 && touch "$cache/apt-$suite/updated"
		fi
		apt=(apt_for "$suite") ;;
	esac
	dep=$("${apt[@]}" apt-cache depends "$pkg" 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
	echo "${suite:+$suite/}${dep:-$pkg}"
}

# Fetches, unpacks and indexes one kernel package and builds its initramfs.
prepare_kernel() { # [suite/]package dir
	local pkg=$1 dir=$2 version ko apt=()
	[ -f "$dir/ready" ] && return 0
	case "$pkg" in */*) apt=(apt_for "${pkg%%/*}") pkg=${pkg#*/} ;; esac
	rm -rf "$dir" && mkdir -p "$dir/deb" "$dir/initramfs/bin" "$dir/initramfs/modules"
	(cd "$dir/deb" && "${apt[@]}" apt-get download -q "$pkg" >/dev/null 2>&1) ||
		{ "${apt[@]}" apt-get update -q >/dev/null 2>&1
		  (cd "$dir/deb" && "${apt[@]}" apt-get download -q "$pkg" >/dev/null 2>&1); } ||
		{ echo "matrix: apt-get download $pkg failed" >&2; return 1; }
	dpkg-deb -x "$dir"/deb/*.deb "$dir/root" && rm -rf "$dir/deb"
	version=$(ls "$dir/root/lib/modules")
	depmod -b "$dir/root" "$version"
	cp /bin/busybox "$dir/initramfs/bin/"
	cp "$root/test/kernels/initramfs-init" "$dir/initramfs/init"
	# What mounting the host's root needs, in load order; built-ins print nothing.
	for m in virtio_pci virtiofs overlay; do
		modprobe -d "$dir/root" -S "$version" --show-depends "$m" | awk '$1 == "insmod" { print $2 }'
	done | awk '!seen[$0]++' | while read -r ko; do
		case "$ko" in
		*.xz) xz -dc "$ko" >"$dir/initramfs/modules/$(basename "$ko" .xz)" ;;
		*) cp "$ko" "$dir/initramfs/modules/" ;;
		esac
		basename "${ko%.xz}" >>"$dir/initramfs/modules/order"
	done
	touch "$dir/initramfs/modules/order"
	(cd "$dir/initramfs" && find . | cpio -o -H newc 2>/dev/null | gzip -1) >"$dir/initrd.gz"
	echo "$version" >"$dir/ready"
}

qemu_base() { # dir accel: sets qemu=(the command, without -cpu and devices)
	local version
	version=$(cat "$1/ready")
	qemu=(qemu-system-x86_64 -accel "$2" -machine q35 -smp 2 -m 2G -nographic -no-reboot -display none
		-kernel "$1/root/boot/vmlinuz-$version")
}

# KVM is present on some hosts but unusable (nested MSR errors): try a boot.
pick_accel() { # dir
	if [ -n "${SB_ACCEL:-}" ]; then echo "$SB_ACCEL"; return; fi
	qemu_base "$1" kvm
	if [ -w /dev/kvm ] && timeout 20 "${qemu[@]}" -cpu host \
		-append "console=ttyS0 panic=-1 rdinit=/no-such-init" 2>&1 | grep -q 'Kernel panic'; then
		echo kvm
	else
		echo tcg
	fi
}

run_dir=$(mktemp -d /tmp/sockbypass-matrix.XXXXXX)
pids=()
cleanup() {
	local pid
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$run_dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Runs the suite in one guest; prints its console and leaves it in $log.
run_guest() { # dir accel log tests
	local dir=$1 accel=$2 log=$3 tests=$4 version sock cpu=max
	version=$(cat "$dir/ready")
	sock="$run_dir/vfs-$version.sock"
	"$virtiofsd" --socket-path="$sock" -o source=/ -o cache=auto -o sandbox=chroot \
		>"$run_dir/virtiofsd-$version.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
	[ "$accel" = kvm ] && cpu=host
	qemu_base "$dir" "$accel"
	timeout -k 10 "$guest_timeout" "${qemu[@]}" -cpu "$cpu" \
		-object memory-backend-memfd,id=mem,size=2G,share=on -numa node,memdev=mem \
		-chardev socket,id=vfs,path="$sock" -device vhost-user-fs-pci,chardev=vfs,tag=hostroot \
		-initrd "$dir/initrd.gz" \
		-append "console=ttyS0 panic=-1 quiet sb.project=$root sb.modules=$dir/root/lib/modules/$version sb.tests=${tests// /+} sb.all=${SB_GUEST_ALL:-0} sb.timeout=600 sb.ci=${CI:-}" \
		</dev/null 2>&1 | sed -u 's/\r$//' | tee "$log" | sed -u "s/^/[$version] /"
}

need_packages
mkdir -p "$cache"
total_pass=0 total_fail=0 total_skip=0 broken=() recap=()
for spec in $kernels; do
	pkg=${spec%%@*} tests=${SB_GUEST_TESTS:-}
	[ "$spec" != "$pkg" ] && tests=${spec#*@}
	concrete=$(resolve_package "$pkg")
	dir="$cache/${concrete#*/}"
	echo "matrix: $concrete${tests:+, cases matching: ${tests//+/ }}"
	if ! prepare_kernel "$concrete" "$dir"; then broken+=("$concrete (not fetched)"); continue; fi
	accel=$(pick_accel "$dir")
	log="$run_dir/${concrete#*/}.log"
	start=$(date +%s)
	run_guest "$dir" "$accel" "$log" "$tests"
	summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped' "$log" | tail -n 1)
	line="matrix: $concrete ($accel, $(($(date +%s) - start)) s): ${summary:-no summary: the guest crashed or timed out}"
	echo "$line"
	# kept for the recap at the end, where a CI log's tail shows every guest
	recap+=("$line")
	while IFS= read -r failed; do recap+=("  $failed"); done < <(grep '^# failed:' "$log")
	if [ -z "$summary" ]; then broken+=("$concrete"); continue; fi
	read -r p _ f _ s _ <<<"$summary"
	total_pass=$((total_pass + p)) total_fail=$((total_fail + f)) total_skip=$((total_skip + s))
done
printf '%s\n' "${recap[@]}"
[ ${#broken[@]} -gt 0 ] && echo "# guests that did not finish: ${broken[*]}"
echo "$total_pass passed, $((total_fail + ${#broken[@]})) failed, $total_skip skipped"
[ "$total_fail" -eq 0 ] && [ ${#broken[@]} -eq 0 ]

#!/usr/bin/env bash
# `make demo`: boot one VM node from this checkout, end to end, on this
# machine. It installs what it needs (Debian packages), builds the three
# programs, makes a sandbox controller, builds a busybox image with a Debian
# kernel, starts warewulfd in a private network namespace and boots a qemu
# node there, showing its console until the node reports in. Then it stops
# everything it started. Needs root (namespaces, tap devices, DHCP, TFTP).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

if [ "$(id -u)" != 0 ]; then
	echo "demo: run as root: it makes a network namespace and tap devices" >&2
	exit 1
fi
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
start=$(date +%s)

step "installing the Debian packages the demo uses"
./test/deps.sh

step "building wwctl, warewulfd and wwclient"
make -s build

CACHE=${WW_TEST_CACHE:-/var/cache/warewulf-test/e2e}
DEMO=$(mktemp -d /tmp/warewulf-demo.XXXXXX)
NS=wwdemo-$$
IP=10.99.0.1 NODEIP=10.99.0.21 MAC=52:54:00:99:00:21
pids=()
cleanup() {
	step "stopping everything the demo started"
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$DEMO"
	echo "done in $(($(date +%s) - start)) s"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "making a sandbox controller in $DEMO"
bin/wwctl genconfig sandbox "$DEMO/ww" --ipaddr $IP --netmask 255.255.255.0
export WW_CONFIG=$DEMO/ww/warewulf.conf
step "building the busybox image with a Debian kernel (cached in $CACHE)"
mkdir -p "$CACHE/kernel"
deb=$(ls "$CACHE"/kernel/linux-image-*.deb 2>/dev/null | tail -1 || true)
if [ -z "$deb" ]; then
	pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
	(cd "$CACHE/kernel" && apt-get download "$pkg")
	deb=$(ls "$CACHE"/kernel/linux-image-*.deb | tail -1)
fi
kroot=$DEMO/kernel
dpkg-deb -x "$deb" "$kroot"
kver=$(basename "$(ls -d "$kroot"/lib/modules/*)")
root=$DEMO/rootfs
mkdir -p "$root"/{bin,dev,proc,sys,run,tmp,root,etc,boot,lib/modules/"$kver"}
cp /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list-full); do
	[ "$applet" = bin/busybox ] && continue
	mkdir -p "$root/$(dirname "$applet")"
	ln -sf /bin/busybox "$root/$applet"
done
mknod -m 600 "$root/dev/console" c 5 1
mknod -m 666 "$root/dev/null" c 1 3
cat >"$root/etc/inittab" <<'EOF'
::sysinit:/bin/echo "busybox init: system up on $(hostname)"
ttyS0::askfirst:-/bin/sh
::shutdown:/bin/umount -a -r
EOF
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"
cp "$kroot/boot/vmlinuz-$kver" "$root/boot/"
# Only the NIC drivers a qemu node needs, with their dependencies.
depmod -b "$kroot" "$kver"
for m in $(for mod in virtio_pci virtio_net; do modprobe -d "$kroot" -S "$kver" --show-depends "$mod"; done | awk '/^insmod/ {print $2}' | sort -u); do
	rel=${m#"$kroot"/lib/modules/"$kver"/}
	install -D -m 0644 "$m" "$root/lib/modules/$kver/$rel"
done
cp "$kroot/lib/modules/$kver"/modules.{order,builtin,builtin.modinfo} "$root/lib/modules/$kver/"
depmod -b "$root" "$kver"
bin/wwctl image import "$root" demo
bin/wwctl image build demo

step "adding node n1 ($MAC, $NODEIP) and building its overlays"
bin/wwctl profile set default --image demo --kernelargs "console=ttyS0 quiet"
bin/wwctl node add n1 --hwaddr $MAC --ipaddr $NODEIP --netmask 255.255.255.0 --netdev eth0
bin/wwctl node list n1
bin/wwctl overlay build n1

step "starting warewulfd (HTTP, TFTP, DHCP) on $IP in network namespace $NS"
ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" link add br0 type bridge
ip -n "$NS" addr add $IP/24 dev br0
ip -n "$NS" link set br0 up
ip -n "$NS" tuntap add dev tap0 mode tap
ip -n "$NS" link set tap0 master br0
ip -n "$NS" link set tap0 up
ip netns exec "$NS" bin/warewulfd >"$DEMO/warewulfd.log" 2>&1 &
pids+=($!)
sleep 1

step "powering on node n1 ($MAC): iPXE, DHCP, kernel, image, overlays, wwinit, wwclient"
poweron=$(date +%s.%N)
ip netns exec "$NS" qemu-system-x86_64 -name n1 -machine pc,accel=tcg -m 768 \
	-nodefaults -display none -serial stdio -monitor none -boot n \
	-netdev tap,id=net0,ifname=tap0,script=no,downscript=no \
	-device virtio-net-pci,netdev=net0,mac=$MAC </dev/null >"$DEMO/console.log" 2>&1 &
pids+=($!)
tail -n +1 -f "$DEMO/console.log" &
pids+=($!)

for _ in $(seq 480); do
	if grep -q "runtime overlay applied" "$DEMO/console.log"; then
		step "n1 reported in $(awk -v a="$poweron" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }') s after power-on; warewulfd saw:"
		grep -E "stage=|dhcp: ACK" "$DEMO/warewulfd.log" | sed 's/^time="[^"]*" //' | head -12
		exit 0
	fi
	sleep 0.5
done
echo "demo: n1 did not report in within 4 minutes; warewulfd's log:" >&2
tail -20 "$DEMO/warewulfd.log" >&2
exit 1

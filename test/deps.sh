#!/usr/bin/env bash
# Installs every Debian package the build, the tests, the benchmarks and the
# demo use. Idempotent; needs root.
set -euo pipefail
pkgs=(
  make gcc git cpio pigz zstd busybox-static iproute2 kmod    # build, archives, depmod
  ipxe qemu-system-x86 ovmf                                   # VM boots
  shim-signed grub-efi-amd64-signed grub-efi-amd64-bin        # Secure Boot: shim + GRUB; grub-mkimage
  qemu-system-arm qemu-efi-aarch64                            # arm64 nodes
  tftp-hpa dnsmasq udhcpc isc-dhcp-client isc-dhcp-server     # TFTP and DHCP peers
  docker-registry umoci skopeo debootstrap                    # images
  nginx-light wrk tftpd-hpa                                   # benchmarks
  curl python3 python3-yaml util-linux                        # the compat corpus runners
  openipmi ipmitool tmux dropbear-bin                         # BMCs (ipmi_sim), console, ssh on test nodes
  fdisk e2fsprogs gdisk ignition                              # disk overlays' tools, copied into test images
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The distribution registry, nginx and tftpd-hpa are started by the tests that need
# them, on loopback; keep the packaged services from holding their ports.
for svc in docker-registry nginx dnsmasq isc-dhcp-server tftpd-hpa; do
  systemctl disable --now "$svc" >/dev/null 2>&1 || true
done

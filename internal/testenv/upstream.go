package testenv

// The warewulf.conf and nodes.conf upstream Warewulf 4.7 installs, keys and
// values as its files have them.
const UpstreamWarewulfConf = `ipaddr: 10.0.0.1
netmask: 255.255.252.0
warewulf:
  secure: false
  update interval: 60
  autobuild overlays: true
  host overlay: true
  systemd name: warewulfd
dhcp:
  enabled: true
  range start: 10.0.1.1
  range end: 10.0.1.255
  systemd name: dhcpd
  template: default
tftp:
  enabled: true
  systemd name: tftp
  ipxe:
    00:09: ipxe-snponly-x86_64.efi
    00:00: undionly.kpxe
    00:0B: arm64-efi/snponly.efi
    00:07: ipxe-snponly-x86_64.efi
nfs:
  enabled: true
  export paths:
  - path: /home
    export options: rw,sync
  - path: /opt
    export options: ro,sync,no_root_squash
  systemd name: nfs-server
image mounts:
  - source: /etc/resolv.conf
    dest: /etc/resolv.conf
    readonly: true
ssh:
  key types:
    - ed25519
    - ecdsa
    - rsa
`

const UpstreamNodesConf = `nodeprofiles:
  default:
    comment: This profile is automatically included for each node
    runtime overlay:
      - hosts
      - ssh.authorized_keys
    system overlay:
      - wwinit
      - wwclient
      - hosts
      - fstab
      - hostname
      - ssh.host_keys
      - issue
      - resolv
      - udev.netname
      - systemd.netname
      - ifcfg
      - ifupdown
      - NetworkManager
      - wicked
      - ignition
    kernel:
      args:
       - quiet
       - crashkernel=no
       - net.ifnames=1
    init: /sbin/init
    root: initramfs
    ipxe template: default
    ipmi:
      template: ipmitool.tmpl
    resources:
      fstab:
        - spec: warewulf:/home
          file: /home
          vfstype: nfs
          mntops: defaults,nofail
        - spec: warewulf:/opt
          file: /opt
          vfstype: nfs
          mntops: defaults,noauto,nofail,ro
nodes: {}
`

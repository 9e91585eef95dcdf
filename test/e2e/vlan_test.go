package e2e

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/warewulf-ng/warewulf/internal/testenv"
)

// vlanEndpoint gives the controller's side of the test network an address
// on VLAN vid, for kernels without 802.1Q (this machine's has none): a
// tap on the namespace's bridge carries the tagged frames (the trunk),
// another tap holds the address, and a goroutine moves frames between the
// two, removing the tag on the way in and adding it on the way out, as a
// switch port would. Both taps go when the test ends.
func vlanEndpoint(t *testing.T, n *netns, vid uint16, cidr string) {
	t.Helper()
	// The taps are made here and moved into the namespace: entering it
	// would need a thread of our own, and the thread that started
	// warewulfd or a VM must not end (their Pdeathsig fires on it).
	access := "vl" + strconv.Itoa(int(vid))
	var files []*os.File
	for _, name := range []string{"vtrunk", access} {
		tmp := fmt.Sprintf("wwt%d%s", os.Getpid()%100000, name[:2])
		f, err := openTap(tmp)
		if err != nil {
			t.Fatalf("tap %s: %v", tmp, err)
		}
		t.Cleanup(func() { f.Close() })
		run(t, nil, "ip", "link", "set", "dev", tmp, "netns", n.name)
		run(t, nil, "ip", "-n", n.name, "link", "set", "dev", tmp, "name", name)
		files = append(files, f)
	}
	trunkF, accessF := files[0], files[1]
	for _, c := range [][]string{
		{"link", "set", "vtrunk", "master", n.bridge},
		{"link", "set", "vtrunk", "up"},
		{"addr", "add", cidr, "dev", access},
		{"link", "set", access, "up"},
	} {
		run(t, nil, append([]string{"ip", "-n", n.name}, c...)...)
	}
	// Tagged frames of vid in from the trunk lose their tag.
	go func() {
		buf := make([]byte, 65536)
		for {
			m, err := trunkF.Read(buf)
			if err != nil {
				return
			}
			f := buf[:m]
			if m < 18 || binary.BigEndian.Uint16(f[12:14]) != 0x8100 || binary.BigEndian.Uint16(f[14:16])&0x0fff != vid {
				continue
			}
			out := append(append([]byte{}, f[:12]...), f[16:]...)
			accessF.Write(out)
		}
	}()
	// Frames out of the address's tap get the tag.
	go func() {
		buf := make([]byte, 65536)
		for {
			m, err := accessF.Read(buf)
			if err != nil {
				return
			}
			f := buf[:m]
			if m < 14 {
				continue
			}
			out := make([]byte, 0, m+4)
			out = append(out, f[:12]...)
			out = binary.BigEndian.AppendUint16(out, 0x8100)
			out = binary.BigEndian.AppendUint16(out, vid)
			out = append(out, f[12:]...)
			trunkF.Write(out)
		}
	}()
}

// openTap creates a tap device (no packet information header).
func openTap(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	var req [unix.IFNAMSIZ + 64]byte
	copy(req[:unix.IFNAMSIZ], name)
	*(*uint16)(unsafe.Pointer(&req[unix.IFNAMSIZ])) = unix.IFF_TAP | unix.IFF_NO_PI
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req[0]))); e != 0 {
		unix.Close(fd)
		return nil, e
	}
	// Non-blocking: reads go through the poller, so Close ends them.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), "/dev/net/tun:"+name), nil
}

// TestVLANEndpoint: two namespaces, each with a VLAN 42 endpoint on its
// bridge, the bridges joined by a veth pair; they ping each other over
// tagged frames.
func TestVLANEndpoint(t *testing.T) {
	testenv.Need(t, "needs root (network namespaces, taps)", os.Geteuid() == 0)
	a, b := newNetns(t, "vlana"), newNetns(t, "vlanb")
	t.Cleanup(func() { a.del(); b.del() })
	run(t, nil, "ip", "-n", a.name, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", b.name)
	for _, c := range []struct {
		n   *netns
		dev string
	}{{a, "va"}, {b, "vb"}} {
		run(t, nil, "ip", "-n", c.n.name, "link", "set", c.dev, "master", c.n.bridge)
		run(t, nil, "ip", "-n", c.n.name, "link", "set", c.dev, "up")
	}
	vlanEndpoint(t, a, 42, "10.42.0.1/24")
	vlanEndpoint(t, b, 42, "10.42.0.2/24")
	if out, err := runErr(nil, a.exec("busybox", "ping", "-c", "2", "-W", "2", "10.42.0.2")...); err != nil {
		t.Fatalf("ping over VLAN 42: %v\n%s", err, out)
	}
}

package stage1

import (
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// findLink waits up to timeout for the interface with hardware address mac
// (drivers load asynchronously).
func findLink(mac string, timeout time.Duration) (*net.Interface, error) {
	deadline := time.Now().Add(timeout)
	for {
		ifs, _ := net.Interfaces()
		for i := range ifs {
			if strings.EqualFold(ifs[i].HardwareAddr.String(), mac) {
				return &ifs[i], nil
			}
		}
		if time.Now().After(deadline) {
			var names []string
			for _, i := range ifs {
				names = append(names, i.Name+"="+i.HardwareAddr.String())
			}
			return nil, fmt.Errorf("no network interface has MAC %s (have %s)", mac, strings.Join(names, ", "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ifup gives an interface an IPv4 address and brings it (and lo) up, with
// the ioctls ifconfig uses. The address is the one iPXE got by DHCP.
func ifup(name string, ip, mask net.IP) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := setFlags(fd, "lo", unix.IFF_UP); err != nil {
		return fmt.Errorf("lo: %w", err)
	}
	for _, s := range []struct {
		req  uint
		addr net.IP
	}{{unix.SIOCSIFADDR, ip}, {unix.SIOCSIFNETMASK, mask}} {
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return err
		}
		if err := ifr.SetInet4Addr(s.addr.To4()); err != nil {
			return err
		}
		if err := unix.IoctlIfreq(fd, s.req, ifr); err != nil {
			return fmt.Errorf("%s: set address %s: %w", name, s.addr, err)
		}
	}
	return setFlags(fd, name, unix.IFF_UP)
}

// ifdown removes the address again, so the image's own network setup
// starts from a clean interface, as after a single-stage boot.
func ifdown(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	ifr.SetInet4Addr(net.IPv4zero.To4())
	return unix.IoctlIfreq(fd, unix.SIOCSIFADDR, ifr)
}

func setFlags(fd int, name string, flags uint16) error {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | flags)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// defaultRoute adds "default via gw" over netlink (RTM_NEWROUTE).
func defaultRoute(gw net.IP) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	// struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope,
	// type, then 32 bits of flags.
	rt := []byte{unix.AF_INET, 0, 0, 0, unix.RT_TABLE_MAIN, unix.RTPROT_BOOT, unix.RT_SCOPE_UNIVERSE, unix.RTN_UNICAST, 0, 0, 0, 0}
	attr := make([]byte, 8)
	binary.NativeEndian.PutUint16(attr[0:], 8)
	binary.NativeEndian.PutUint16(attr[2:], unix.RTA_GATEWAY)
	copy(attr[4:], gw.To4())
	body := append(rt, attr...)
	msg := make([]byte, unix.SizeofNlMsghdr, unix.SizeofNlMsghdr+len(body))
	binary.NativeEndian.PutUint32(msg[0:], uint32(unix.SizeofNlMsghdr+len(body)))
	binary.NativeEndian.PutUint16(msg[4:], unix.RTM_NEWROUTE)
	binary.NativeEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK)
	binary.NativeEndian.PutUint32(msg[8:], 1)
	msg = append(msg, body...)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return err
	}
	if n >= unix.SizeofNlMsghdr+4 && binary.NativeEndian.Uint16(buf[4:]) == unix.NLMSG_ERROR {
		if e := int32(binary.NativeEndian.Uint32(buf[unix.SizeofNlMsghdr:])); e != 0 && unix.Errno(-e) != unix.EEXIST {
			return fmt.Errorf("default route via %s: %w", gw, unix.Errno(-e))
		}
	}
	return nil
}

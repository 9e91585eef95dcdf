package warewulfd

import (
	"net"
	"strings"
	"testing"
)

func FuzzParseMAC(f *testing.F) {
	for _, s := range []string{"52:54:00:00:00:01", "52-54-00-AA-bb-01", "52:54-00:00:00:01", "", "zz:zz:zz:zz:zz:zz", "5254.0000.0001"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		mac, err := ParseMAC(s)
		if err != nil {
			return
		}
		hw, perr := net.ParseMAC(mac)
		if perr != nil || hw.String() != mac || len(hw) != 6 {
			t.Fatalf("ParseMAC(%q) = %q, not canonical", s, mac)
		}
		if !strings.EqualFold(strings.ReplaceAll(s, "-", ":"), mac) {
			t.Fatalf("ParseMAC(%q) = %q changed more than case and separator", s, mac)
		}
	})
}

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"/ipxe/52:54:00:00:00:01", "/runtime/52-54-00-00-00-01", "/kernel/../../etc/passwd", "//", "/ipxe/", "/image/52:54:00:00:00:01/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		stage, mac, err := ParsePath(p)
		if err != nil {
			return
		}
		if stage < 0 || stage >= stageCount || strings.ContainsAny(mac, "/.") || p != "/"+stage.String()+"/"+p[len(stage.String())+2:] {
			t.Fatalf("ParsePath(%q) = %v %q", p, stage, mac)
		}
		if _, err := ParseMAC(mac); err != nil {
			t.Fatalf("ParsePath(%q) returned a MAC ParseMAC refuses: %q", p, mac)
		}
	})
}

func FuzzCheckTFTPName(f *testing.F) {
	for _, s := range []string{"undionly.kpxe", "arm64-efi/snponly.efi", "../etc/passwd", "/etc/passwd", "a//b", "a\\..\\b", "."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if CheckTFTPName(name) != nil {
			return
		}
		if strings.HasPrefix(name, "/") || strings.Contains(name, "\\") || strings.Contains(name, "\x00") {
			t.Fatalf("accepted %q", name)
		}
		for _, el := range strings.Split(name, "/") {
			if el == ".." || el == "." || el == "" {
				t.Fatalf("accepted %q with element %q", name, el)
			}
		}
	})
}

func TestParseMACForms(t *testing.T) {
	for in, want := range map[string]string{
		"52:54:00:00:00:01": "52:54:00:00:00:01",
		"52-54-00-AA-BB-01": "52:54:00:aa:bb:01",
		"52:54:00:aa:BB:01": "52:54:00:aa:bb:01",
	} {
		if got, err := ParseMAC(in); err != nil || got != want {
			t.Errorf("ParseMAC(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"52:54-00:00:00:01", "52:54:00:00:00", "52:54:00:00:00:0g", "5254.0000.0001", "52:54:00:00:00:01:02", ""} {
		if got, err := ParseMAC(bad); err == nil {
			t.Errorf("ParseMAC(%q) = %q, want an error", bad, got)
		}
	}
}

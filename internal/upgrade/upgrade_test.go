package upgrade

import (
	"strings"
	"testing"
)

func TestConfigLegacyKeys(t *testing.T) {
	in := `# site comment
WW_INTERNAL: 43
ipaddr: 10.0.0.1
ipv6net: fd00:10::1/64
warewulf:
  syslog: true
nfs:
  exports:
  - /home
  - /opt
`
	out, notes, err := Config([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{"# site comment", "ipaddr6: fd00:10::1", `prefixlen6: "64"`, "- path: /home", "- path: /opt"} {
		if !strings.Contains(s, want) {
			t.Errorf("no %q in\n%s", want, s)
		}
	}
	for _, gone := range []string{"WW_INTERNAL", "ipv6net", "syslog", "exports:"} {
		if strings.Contains(s, gone) {
			t.Errorf("%q kept in\n%s", gone, s)
		}
	}
	if len(notes) != 4 {
		t.Errorf("notes: %q", notes)
	}
	again, notes, _ := Config(out)
	if string(again) != s || len(notes) != 0 {
		t.Errorf("not stable: %q\n%s", notes, again)
	}
	// Upstream drops an unparsable ipv6net with a warning.
	out, notes, err = Config([]byte("ipv6net: nonsense\nipaddr: 10.0.0.1\n"))
	if err != nil || strings.Contains(string(out), "nonsense") || len(notes) != 1 || !strings.Contains(notes[0], "nonsense") {
		t.Errorf("bad ipv6net: %v %q\n%s", err, notes, out)
	}
}

// Upstream's rewrite omits empty fields and writes prefixlen6 as a string.
func TestConfigEmptyValues(t *testing.T) {
	in := "prefixlen6: 64\nwarewulf:\n  datastore: \"\"\n  port: 9873\ntftp:\n  tftproot: \"\"\n  enabled: true\n  systemd name:\n"
	out, _, err := Config([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := "prefixlen6: \"64\"\nwarewulf:\n  port: 9873\ntftp:\n  enabled: true\n"
	if string(out) != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
}

func TestExports(t *testing.T) {
	ex, err := Exports([]byte("nfs:\n  exports: [/a]\n  export paths:\n  - {path: /b, mount: true, mount options: ro}\n  - {path: /c, mount: false}\n"))
	if err != nil || len(ex) != 2 || ex[0].Path != "/a" || ex[1].MountOptions != "ro" {
		t.Errorf("%+v %v", ex, err)
	}
}

func TestReplaceOverlay(t *testing.T) {
	got := replaceOverlay([]string{"a", "wwinit", "hostname", "b"}, "wwinit", wwinitSplit)
	if strings.Join(got, ",") != "a,wwinit,wwclient,fstab,ssh.host_keys,issue,resolv,udev.netname,systemd.netname,ifcfg,ifupdown,NetworkManager,wicked,ignition,hostname,b" {
		t.Errorf("got %v", got)
	}
}

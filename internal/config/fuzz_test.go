package config

import "testing"

// FuzzParse: any warewulf.conf gives an error naming a key or a
// configuration that marshals and reads back, never a panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte("ipaddr: 10.0.0.1/24\nipaddr6: fd00::1/64\nwarewulf: {tls: true}\npaths: {sysconfdir: /etc}\n"))
	f.Add([]byte("container mounts: [{source: /etc/resolv.conf, copy: true}]\nfrobnicate: 1\n"))
	f.Add([]byte("dhcp: {range6 start: fd00::10}\napi: {allowed subnets: [10.0.0.0/8]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(out); err != nil {
			t.Fatalf("a parsed configuration does not read back: %v\n%s", err, out)
		}
	})
}

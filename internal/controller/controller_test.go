package controller

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/warewulf-ng/warewulf/internal/config"
)

func testConfig(t *testing.T, extra string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	conf := "ipaddr: 10.0.0.1\nnetmask: 255.255.255.0\n" + extra +
		"paths:\n  sysconfdir: etc\n  localstatedir: state\n  ipxesource: ipxe\n"
	file := filepath.Join(dir, "warewulf.conf")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestReplaceBlock(t *testing.T) {
	site := "127.0.0.1 localhost\n10.1.1.1 printer"
	first, err := ReplaceBlock([]byte(site), "10.0.0.11 n1\n")
	if err != nil {
		t.Fatal(err)
	}
	want := site + "\n" + BeginMarker + "\n10.0.0.11 n1\n" + EndMarker + "\n"
	if string(first) != want {
		t.Fatalf("got %q, want %q", first, want)
	}
	second, err := ReplaceBlock(append(first, "# site line after\n"...), "10.0.0.12 n2\n")
	if err != nil {
		t.Fatal(err)
	}
	want = site + "\n" + BeginMarker + "\n10.0.0.12 n2\n" + EndMarker + "\n# site line after\n"
	if string(second) != want {
		t.Fatalf("got %q, want %q", second, want)
	}
	if _, err := ReplaceBlock([]byte(BeginMarker+"\nstuff\n"), "x\n"); err == nil {
		t.Fatal("accepted a block without an end marker")
	}
}

func TestUpdateBlockKeepsModeAndRefusesBrokenFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "hosts")
	os.WriteFile(file, []byte("127.0.0.1 localhost\n"), 0o600)
	changed, err := UpdateBlock(file, "10.0.0.11 n1\n")
	if err != nil || !changed {
		t.Fatalf("changed %v err %v", changed, err)
	}
	if st, _ := os.Stat(file); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode())
	}
	if changed, err := UpdateBlock(file, "10.0.0.11 n1\n"); err != nil || changed {
		t.Errorf("second run changed %v err %v", changed, err)
	}
	broken := []byte("127.0.0.1 localhost\n" + BeginMarker + "\n")
	os.WriteFile(file, broken, 0o644)
	if _, err := UpdateBlock(file, "x\n"); err == nil {
		t.Fatal("rewrote a file with a dangling marker")
	}
	if data, _ := os.ReadFile(file); string(data) != string(broken) {
		t.Errorf("a failed update changed the file: %q", data)
	}
}

func TestEnsureSSHKeys(t *testing.T) {
	cfg := testConfig(t, "ssh:\n  key types: [ed25519, ecdsa, rsa]\n")
	created, err := EnsureSSHKeys(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(created) != 2 {
		t.Fatalf("created %v", created)
	}
	for _, f := range []string{ClusterKeyFile(cfg)} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		k, err := ssh.ParsePrivateKey(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		pub, err := os.ReadFile(f + ".pub")
		if err != nil {
			t.Fatal(err)
		}
		pk, _, _, _, err := ssh.ParseAuthorizedKey(pub)
		if err != nil || string(pk.Marshal()) != string(k.PublicKey().Marshal()) {
			t.Fatalf("%s.pub does not match: %v", f, err)
		}
		if st, _ := os.Stat(f); st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", f, st.Mode())
		}
		if keygen, err := exec.LookPath("ssh-keygen"); err == nil {
			if out, err := exec.Command(keygen, "-l", "-f", f).CombinedOutput(); err != nil {
				t.Errorf("ssh-keygen -l %s: %v %s", f, err, out)
			}
		}
	}
	before, _ := os.ReadFile(ClusterKeyFile(cfg))
	again, err := EnsureSSHKeys(cfg)
	if err != nil || len(again) != 0 {
		t.Fatalf("second run created %v, %v", again, err)
	}
	if after, _ := os.ReadFile(ClusterKeyFile(cfg)); string(after) != string(before) {
		t.Error("an existing key was replaced")
	}
}

func TestEnsureSSHKeysRejectsDSA(t *testing.T) {
	cfg := testConfig(t, "ssh:\n  key types: [ed25519, dsa]\n")
	if _, err := EnsureSSHKeys(cfg); err == nil || !strings.Contains(err.Error(), `"dsa"`) {
		t.Fatalf("err %v", err)
	}
	if _, err := os.Stat(cfg.KeyDir()); !os.IsNotExist(err) {
		t.Errorf("a rejected run wrote %s", cfg.KeyDir())
	}
}

func TestCopyIPXE(t *testing.T) {
	cfg := testConfig(t, "tftp:\n  tftproot: tftp\n")
	src := cfg.IpxeSourceDir()
	os.MkdirAll(filepath.Join(src, "arm64-efi"), 0o755)
	if _, _, err := CopyIPXE(cfg); err == nil || !strings.Contains(err.Error(), "undionly.kpxe") {
		t.Fatalf("no binaries at all: %v", err)
	}
	if _, err := os.Stat(cfg.TftpRoot()); !os.IsNotExist(err) {
		t.Fatal("a failed copy wrote into the TFTP root")
	}
	for _, f := range []string{"undionly.kpxe", "snponly.efi"} {
		os.WriteFile(filepath.Join(src, f), []byte("ipxe "+f), 0o644)
	}
	files, missing, err := CopyIPXE(cfg)
	if err != nil || len(files) != 2 || len(missing) != 1 || !strings.HasSuffix(missing[0], "arm64-efi/snponly.efi") {
		t.Fatalf("without arm64: %v %v %v", files, missing, err)
	}
	os.WriteFile(filepath.Join(src, "arm64-efi", "snponly.efi"), []byte("arm"), 0o644)
	files, missing, err = CopyIPXE(cfg)
	if err != nil || len(files) != 3 || len(missing) != 0 {
		t.Fatalf("%v %v %v", files, missing, err)
	}
	if data, _ := os.ReadFile(filepath.Join(cfg.TftpRoot(), "arm64-efi", "snponly.efi")); string(data) != "arm" {
		t.Errorf("copied %q", data)
	}
	// Upstream's default name, which DHCP hands out, holds Debian's
	// snponly.efi; nothing is copied under Debian's name.
	if data, _ := os.ReadFile(filepath.Join(cfg.TftpRoot(), "ipxe-snponly-x86_64.efi")); string(data) != "ipxe snponly.efi" {
		t.Errorf("ipxe-snponly-x86_64.efi: copied %q", data)
	}
	if _, err := os.Stat(filepath.Join(cfg.TftpRoot(), "snponly.efi")); !os.IsNotExist(err) {
		t.Errorf("snponly.efi copied under Debian's name: %v", err)
	}
	// A site that names its own binaries gets them, not an alias.
	os.WriteFile(filepath.Join(src, "ipxe-snponly-x86_64.efi"), []byte("site"), 0o644)
	if _, _, err := CopyIPXE(cfg); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(filepath.Join(cfg.TftpRoot(), "ipxe-snponly-x86_64.efi")); string(data) != "site" {
		t.Errorf("a site's own ipxe-snponly-x86_64.efi: copied %q", data)
	}
}

package overlay

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warewulf-ng/warewulf/internal/config"
)

// keyWorker is one user of a key store file, as one wwctl or warewulfd
// process is: its own store; per round, load, a key of a node only it makes
// and of a node every worker makes, save. It returns "ID PUBLIC" of every
// key as its store holds it after the save that wrote it.
func keyWorker(file string, w, rounds int) ([]string, error) {
	k := &keyStore{file: file}
	var out []string
	for r := 0; r < rounds; r++ {
		if err := k.load(); err != nil {
			return nil, err
		}
		ids := []string{fmt.Sprintf("w%d-n%d", w, r), fmt.Sprintf("shared-%d", r%4)}
		for _, n := range ids {
			if _, err := k.get(n, "ed25519"); err != nil {
				return nil, err
			}
		}
		if err := k.save(); err != nil {
			return nil, err
		}
		k.mu.Lock()
		for _, n := range ids {
			out = append(out, n+" ed25519 "+strconv.Quote(k.keys[n+" ed25519"].Public))
		}
		k.mu.Unlock()
	}
	return out, nil
}

const keyWorkerEnv = "WWOVERLAY_KEY_WORKER" // FILE:WORKER:ROUNDS

func TestMain(m *testing.M) {
	if spec := os.Getenv(fullDiskEnv); spec != "" { // a child of TestBuildFullDiskCounts
		os.Exit(fullDiskChild(spec))
	}
	if spec := os.Getenv(keyWorkerEnv); spec != "" {
		f := strings.Split(spec, ":")
		w, _ := strconv.Atoi(f[1])
		rounds, _ := strconv.Atoi(f[2])
		out, err := keyWorker(f[0], w, rounds)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(strings.Join(out, "\n"))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fileKeys reads the key file as "ID" -> quoted public key.
func fileKeys(t *testing.T, file string) map[string]string {
	t.Helper()
	keys, err := readHostKeys(file)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for id, hk := range keys {
		out[id] = strconv.Quote(hk.Public)
	}
	return out
}

// Several stores saving into one file at once, as processes or as
// goroutines with a store each: every key any of them made is kept, a node
// that several made a key for ends with one they all hold, and a key never
// changes once in the file.
func TestKeyStoreConcurrentWriters(t *testing.T) {
	const workers, rounds = 6, 12
	for _, mode := range []string{"processes", "goroutines"} {
		t.Run(mode, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "keys", "ssh_host_keys")
			// Keys there before, as from an earlier build.
			seedOut, err := keyWorker(file, 99, 3)
			if err != nil {
				t.Fatal(err)
			}
			seed := fileKeys(t, file)

			// Watch the file: a key, once seen, must never change or go.
			seen := map[string]string{}
			var watchErr error
			stop := make(chan struct{})
			var watch sync.WaitGroup
			watch.Add(1)
			go func() {
				defer watch.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					keys, err := readHostKeys(file)
					if err != nil {
						watchErr = err
						return
					}
					for id := range seen {
						if keys[id] == nil {
							watchErr = fmt.Errorf("key %s disappeared", id)
							return
						}
					}
					for id, hk := range keys {
						if old, ok := seen[id]; ok && old != hk.Public {
							watchErr = fmt.Errorf("key %s changed", id)
							return
						}
						seen[id] = hk.Public
					}
					time.Sleep(time.Millisecond)
				}
			}()

			outs := make([][]string, workers)
			errs := make([]error, workers)
			var wg sync.WaitGroup
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					if mode == "goroutines" {
						outs[w], errs[w] = keyWorker(file, w, rounds)
						return
					}
					cmd := exec.Command(os.Args[0], "-test.run=^$")
					cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s:%d:%d", keyWorkerEnv, file, w, rounds))
					var stderr bytes.Buffer
					cmd.Stderr = &stderr
					out, err := cmd.Output()
					if err != nil {
						errs[w] = fmt.Errorf("worker %d: %v: %s", w, err, stderr.String())
						return
					}
					sc := bufio.NewScanner(bytes.NewReader(out))
					for sc.Scan() {
						if sc.Text() != "" {
							outs[w] = append(outs[w], sc.Text())
						}
					}
				}(w)
			}
			wg.Wait()
			close(stop)
			watch.Wait()
			for _, err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			if watchErr != nil {
				t.Fatal(watchErr)
			}

			final := fileKeys(t, file)
			for id, pub := range seed {
				if final[id] != pub {
					t.Fatalf("key %s there before the writers changed or went", id)
				}
			}
			held := 0
			for w, out := range append(outs, seedOut) {
				for _, l := range out {
					held++
					node, rest, _ := strings.Cut(l, " ")
					typ, pub, _ := strings.Cut(rest, " ")
					if final[node+" "+typ] != pub {
						t.Fatalf("worker %d: its key of %s %s is not the file's (lost or replaced)", w, node, typ)
					}
				}
			}
			if want := workers*rounds + 3 + 4; len(final) != want {
				t.Fatalf("%d keys in the file, want %d", len(final), want)
			}
			if held != workers*rounds*2+3*2 {
				t.Fatalf("workers reported %d keys", held)
			}
		})
	}
}

// TestDefaultKeyTypesRSA: with upstream's default key types (ed25519,
// ecdsa, rsa) a node's ssh.host_keys overlay carries an RSA host key as
// well, made once and kept: the next render has the same key.
func TestDefaultKeyTypesRSA(t *testing.T) {
	sb := newSandbox(t, t.TempDir())
	sb.cfg.SSH.KeyTypes = config.Default().SSH.KeyTypes
	db := sampleDB(t)
	render := func() map[string]string {
		outs, err := NewBuilder(sb.cfg, Options{HostRoot: sb.hostRoot}).Render(db, "ssh.host_keys", "etc/ssh/ssh_host_keys.ww", "n1")
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, o := range outs {
			got[o.Path] = string(o.Data)
		}
		return got
	}
	first := render()
	for _, typ := range []string{"ed25519", "ecdsa", "rsa"} {
		if _, ok := first["etc/ssh/ssh_host_"+typ+"_key"]; !ok {
			t.Errorf("no %s host key with the default key types; got %v", typ, keys(first))
		}
	}
	if pub := first["etc/ssh/ssh_host_rsa_key.pub"]; !strings.HasPrefix(pub, "ssh-rsa ") {
		t.Errorf("ssh_host_rsa_key.pub: %q", pub)
	}
	if again := render(); again["etc/ssh/ssh_host_rsa_key"] != first["etc/ssh/ssh_host_rsa_key"] {
		t.Error("the RSA host key changed between renders")
	}
}

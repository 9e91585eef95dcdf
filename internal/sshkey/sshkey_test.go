package sshkey

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestNewMakesMatchingPairs(t *testing.T) {
	for _, typ := range []string{"ed25519", "ecdsa", "rsa"} {
		k, err := New(typ, "root@n1")
		if err != nil {
			t.Fatal(err)
		}
		signer, err := ssh.ParsePrivateKey([]byte(k.Private))
		if err != nil {
			t.Fatalf("%s: private key does not parse: %v", typ, err)
		}
		pub, comment, _, _, err := ssh.ParseAuthorizedKey([]byte(k.Public))
		if err != nil || comment != "root@n1" {
			t.Fatalf("%s: public line %q: %v", typ, k.Public, err)
		}
		if !bytes.Equal(pub.Marshal(), signer.PublicKey().Marshal()) {
			t.Errorf("%s: public and private halves differ", typ)
		}
		if !Valid(typ) {
			t.Errorf("%s: not Valid", typ)
		}
	}
	if _, err := New("dsa", "x"); err == nil || !strings.Contains(err.Error(), `"dsa"`) || Valid("dsa") {
		t.Errorf("dsa: %v", err)
	}
}

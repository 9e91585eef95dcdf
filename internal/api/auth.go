package api

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"
)

// users is auth.conf, upstream's format:
//
//	users:
//	  - name: admin
//	    password hash: $2b$05$...   (bcrypt; `htpasswd -bnBC 10 "" PASSWORD | tr -d ':\n'`)
type users struct {
	Users []struct {
		Name         string `yaml:"name"`
		PasswordHash string `yaml:"password hash"`
	} `yaml:"users"`
}

// errDenied is all a client learns: which check failed is for the log.
var errDenied = errors.New("unknown user or wrong password")

// authenticate checks a user's password against auth.conf, read on every
// request so that an edit takes effect at once.
func authenticate(file, name, pass string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("no users: %w", err)
	}
	var u users
	if err := yaml.Unmarshal(data, &u); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	for _, e := range u.Users {
		if e.Name == name {
			if bcrypt.CompareHashAndPassword([]byte(e.PasswordHash), []byte(pass)) != nil {
				return fmt.Errorf("user %q: wrong password", name)
			}
			return nil
		}
	}
	// Spend the time a hash takes, so that timing tells no user names.
	bcrypt.CompareHashAndPassword([]byte("$2a$10$7EqJtq98hPqEX7fNZaFWoOhi5BWX4Z7R2EHfq0xfUe0cmgYH4KP5u"), []byte(pass))
	return fmt.Errorf("user %q: %w", name, errDenied)
}

package node

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"unicode"
)

// Values end up in iPXE scripts, /etc/hosts, kernel command lines and
// file paths. A newline in one adds a line there (a command in the iPXE
// script); a "../" in a name reaches outside the directory it names a
// file in. Both are refused when the value is stored, not found at boot.

var (
	// plainRE is a name that is one file name: image, overlay and iPXE
	// template names, as the image and overlay stores accept them.
	plainRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)
	// netnameRE is a key under `network devices` (it ends up in host names).
	netnameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	// deviceRE is a Linux interface name (IFNAMSIZ: at most 15 bytes).
	deviceRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@-]{0,14}$`)
)

// checkInput refuses control characters in the values of c (not in the
// free-form resources, disks, filesystems and unknown keys, which
// templates read as data) and names that are not plain names.
func (c *Conf) checkInput() error {
	if err := noControl(reflect.ValueOf(c).Elem(), ""); err != nil {
		return err
	}
	for key, v := range map[string]string{"image name": c.ImageName, "ipxe template": c.IpxeTemplate} {
		if v != "" && !plainRE.MatchString(v) {
			return fmt.Errorf("%s %q is not a plain name (letters, digits, '.', '_', '+', '-')", key, v)
		}
	}
	for key, list := range map[string]List{"system overlay": c.SystemOverlay, "runtime overlay": c.RuntimeOverlay} {
		for _, o := range list {
			if name := strings.TrimPrefix(o, "~"); !plainRE.MatchString(name) || strings.Contains(name, "..") {
				return fmt.Errorf("%s %q is not an overlay name (letters, digits, '.', '_', '+', '-')", key, o)
			}
		}
	}
	// A kernel version may be a path inside the image; it must stay inside.
	if k := c.Kernel; k != nil && k.Version != "" && hasDotDot(k.Version) {
		return fmt.Errorf("kernel version %q climbs out of the image with '..'", k.Version)
	}
	for name, d := range c.NetDevs {
		if !netnameRE.MatchString(name) {
			return fmt.Errorf("network device name %q is not a name (letters, digits, '.', '_', '-')", name)
		}
		if d != nil && d.Device != "" && !deviceRE.MatchString(d.Device) {
			return fmt.Errorf("network device %s: device %q is not an interface name (at most 15 letters, digits, '.', '_', ':', '@', '-')", name, d.Device)
		}
	}
	return nil
}

func hasDotDot(p string) bool {
	for _, e := range strings.Split(p, "/") {
		if e == ".." {
			return true
		}
	}
	return false
}

// noControl walks the strings of a node record (struct fields by their
// YAML key, lists, string maps and their keys) for control characters.
func noControl(v reflect.Value, key string) error {
	switch v.Kind() {
	case reflect.String:
		if s := v.String(); strings.IndexFunc(s, unicode.IsControl) >= 0 {
			return fmt.Errorf("%s %q holds a control character (a newline?)", key, s)
		}
	case reflect.Pointer:
		if !v.IsNil() {
			return noControl(v.Elem(), key)
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			if err := noControl(v.Index(i), key); err != nil {
				return err
			}
		}
	case reflect.Map:
		if v.Type().Elem().Kind() == reflect.Interface {
			return nil // free-form data
		}
		iter := v.MapRange()
		for iter.Next() {
			k := iter.Key().String()
			if err := noControl(iter.Key(), key+" key"); err != nil {
				return err
			}
			if err := noControl(iter.Value(), strings.TrimSpace(key+" "+k)); err != nil {
				return err
			}
		}
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			if name == "" || name == "-" || !t.Field(i).IsExported() {
				continue // inline unknown keys, or not stored
			}
			if err := noControl(v.Field(i), strings.TrimSpace(key+" "+name)); err != nil {
				return err
			}
		}
	}
	return nil
}

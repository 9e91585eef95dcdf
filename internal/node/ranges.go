package node

import (
	"encoding/binary"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// MaxExpand bounds how many names one pattern may expand to, so a typo such
// as n[1-99999999] is an error rather than an out-of-memory.
const MaxExpand = 1_000_000

// ExpandNames expands node name patterns: comma lists ("n1,n2") and bracket
// ranges ("n[001-100]", "n[1-3,7]", "r[1-2]n[01-04]"), keeping order and
// dropping repeats.
func ExpandNames(args []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, arg := range args {
		for _, part := range splitOutsideBrackets(arg) {
			if part == "" {
				continue
			}
			names, err := expandOne(part)
			if err != nil {
				return nil, err
			}
			for _, n := range names {
				if !seen[n] {
					seen[n] = true
					out = append(out, n)
				}
			}
			if len(out) > MaxExpand {
				return nil, fmt.Errorf("%q expands to more than %d names", arg, MaxExpand)
			}
		}
	}
	return out, nil
}

func splitOutsideBrackets(s string) []string {
	var parts []string
	depth, start := 0, 0
	for i, r := range s {
		switch r {
		case '[':
			depth++
		case ']':
			depth--
		case ',':
			if depth == 0 {
				parts = append(parts, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	return append(parts, strings.TrimSpace(s[start:]))
}

func expandOne(p string) ([]string, error) {
	open := strings.IndexByte(p, '[')
	if open < 0 {
		if strings.ContainsRune(p, ']') {
			return nil, fmt.Errorf("%q: unbalanced ']'", p)
		}
		return []string{p}, nil
	}
	end := strings.IndexByte(p[open:], ']')
	if end < 0 {
		return nil, fmt.Errorf("%q: missing ']'", p)
	}
	end += open
	prefix, body, rest := p[:open], p[open+1:end], p[end+1:]
	if strings.ContainsRune(body, '[') {
		return nil, fmt.Errorf("%q: nested '['", p)
	}
	tails, err := expandOne(rest)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, item := range strings.Split(body, ",") {
		nums, err := expandRange(strings.TrimSpace(item))
		if err != nil {
			return nil, fmt.Errorf("%q: %w", p, err)
		}
		if len(nums)*len(tails) > MaxExpand {
			return nil, fmt.Errorf("%q expands to more than %d names", p, MaxExpand)
		}
		for _, n := range nums {
			for _, t := range tails {
				out = append(out, prefix+n+t)
			}
		}
	}
	return out, nil
}

// expandRange turns "001-010" into "001".."010" (width kept when the start
// has a leading zero) and "7" into "7".
func expandRange(item string) ([]string, error) {
	lo, hi, isRange := strings.Cut(item, "-")
	if !isRange {
		if _, err := strconv.ParseUint(item, 10, 32); err != nil {
			return nil, fmt.Errorf("%q is not a number", item)
		}
		return []string{item}, nil
	}
	a, err1 := strconv.ParseUint(lo, 10, 32)
	b, err2 := strconv.ParseUint(hi, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("%q is not a range of numbers", item)
	}
	if b < a {
		return nil, fmt.Errorf("range %q runs backwards", item)
	}
	if b-a >= MaxExpand {
		return nil, fmt.Errorf("range %q has more than %d numbers", item, MaxExpand)
	}
	width := 0
	if len(lo) > 1 && lo[0] == '0' {
		width = len(lo)
	}
	out := make([]string, 0, b-a+1)
	for i := a; i <= b; i++ {
		out = append(out, fmt.Sprintf("%0*d", width, i))
	}
	return out, nil
}

// StepIP returns ip advanced by n addresses (IPv4 or IPv6), as Warewulf
// admins expect when one --ipaddr is given for a range of nodes. It fails if
// the result leaves the address space.
func StepIP(ip string, n int) (string, error) {
	if n == 0 {
		return ip, nil
	}
	parsed := net.ParseIP(ip)
	if parsed == nil {
		return "", fmt.Errorf("%q is not an IP address", ip)
	}
	if v4 := parsed.To4(); v4 != nil {
		v := uint64(binary.BigEndian.Uint32(v4)) + uint64(n)
		if v > 0xffffffff {
			return "", fmt.Errorf("%s + %d leaves the IPv4 address space", ip, n)
		}
		out := make(net.IP, 4)
		binary.BigEndian.PutUint32(out, uint32(v))
		return out.String(), nil
	}
	out := make(net.IP, 16)
	copy(out, parsed.To16())
	carry := uint64(n)
	for i := 15; i >= 0 && carry > 0; i-- {
		sum := uint64(out[i]) + carry
		out[i] = byte(sum)
		carry = sum >> 8
	}
	if carry > 0 {
		return "", fmt.Errorf("%s + %d leaves the IPv6 address space", ip, n)
	}
	return out.String(), nil
}

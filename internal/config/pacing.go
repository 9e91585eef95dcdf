package config

import (
	"fmt"
	"strconv"
	"strings"
)

// PacingConf is the `pacing:` section: how warewulfd holds image
// downloads to a budget in a boot storm (docs/boot.md). A client over the
// budget gets 503 with Retry-After, which the two-stage boot's stage 1
// honours. Unset, nothing is paced.
type PacingConf struct {
	// ImageDownloads is the most image transfers at once (0: no limit).
	ImageDownloads int `yaml:"image downloads,omitempty"`
	// ImageBandwidth is what all image transfers together may send: bytes
	// a second with an optional k, M or G (powers of 1000), or bits with
	// kbit, Mbit or Gbit ("10Gbit"). Empty: no limit.
	ImageBandwidth string `yaml:"image bandwidth,omitempty"`

	Extra map[string]any `yaml:",inline"`
}

// Bandwidth is ImageBandwidth in bytes a second (0: no limit).
func (p PacingConf) Bandwidth() int64 {
	b, _ := ParseBandwidth(p.ImageBandwidth)
	return b
}

func (p PacingConf) validate() error {
	if p.ImageDownloads < 0 {
		return fmt.Errorf("pacing: image downloads: %d must be 0 (no limit) or more", p.ImageDownloads)
	}
	if _, err := ParseBandwidth(p.ImageBandwidth); err != nil {
		return fmt.Errorf("pacing: image bandwidth: %w", err)
	}
	return nil
}

// ParseBandwidth reads a rate: "125000000", "125M", "1Gbit"; bytes a
// second. "" and "0" mean no limit.
func ParseBandwidth(s string) (int64, error) {
	v := strings.TrimSpace(s)
	if v == "" {
		return 0, nil
	}
	mult := 1.0
	for _, u := range []struct {
		suffix string
		m      float64
	}{{"kbit", 1e3 / 8}, {"Mbit", 1e6 / 8}, {"Gbit", 1e9 / 8}, {"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}} {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = n, u.m
			break
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || f < 0 || f*mult > 1e15 {
		return 0, fmt.Errorf("%q is not a rate (bytes a second, or with k, M, G, kbit, Mbit, Gbit)", s)
	}
	return int64(f * mult), nil
}

package config

import (
	"fmt"
	"time"
)

// MarshalText writes d as a Go duration string such as "30s".
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(d.Duration.String()), nil
}

// UnmarshalText reads a Go duration string such as "30s" or "5m". JSON and
// YAML numbers are rejected: a bare 30 would be ambiguous.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf("%w; write a Go duration such as 30s, 5m or 1h30m", err)
	}
	d.Duration = v
	return nil
}

package main

import (
	"encoding/json"
	"net/url"
	"time"
)

func pathEscape(s string) string { return url.PathEscape(s) }

// jsonTime reads RFC 3339 times and tolerates their absence.
type jsonTime struct{ time.Time }

func (t *jsonTime) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) != nil || s == "" {
		return nil
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil
	}
	t.Time = v
	return nil
}

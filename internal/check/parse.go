package check

import (
	"strconv"
	"strings"
)

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

type samples []sample

// parse reads the subset of the text exposition format mohd writes:
// `name{k="v",...} value`. Lines it cannot read are skipped: a plugin
// should judge the box on what it can read, not die on a new series.
func parse(text string) samples {
	var out samples
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		s := sample{name: line[:sp], value: v, labels: map[string]string{}}
		if i := strings.IndexByte(s.name, '{'); i >= 0 && strings.HasSuffix(s.name, "}") {
			s.labels = parseLabels(s.name[i+1 : len(s.name)-1])
			s.name = s.name[:i]
		}
		out = append(out, s)
	}
	return out
}

func parseLabels(s string) map[string]string {
	m := map[string]string{}
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq < 0 || eq+1 >= len(s) || s[eq+1] != '"' {
			return m
		}
		key := s[:eq]
		rest := s[eq+2:]
		var val strings.Builder
		i := 0
		for ; i < len(rest); i++ {
			c := rest[i]
			if c == '\\' && i+1 < len(rest) {
				i++
				switch rest[i] {
				case 'n':
					val.WriteByte('\n')
				default:
					val.WriteByte(rest[i])
				}
				continue
			}
			if c == '"' {
				break
			}
			val.WriteByte(c)
		}
		m[key] = val.String()
		if i+1 >= len(rest) {
			return m
		}
		s = strings.TrimPrefix(rest[i+1:], ",")
	}
	return m
}

// get returns the value of the series name whose labels include want.
func (ss samples) get(name string, want map[string]string) (float64, bool) {
	for _, s := range ss {
		if s.name != name {
			continue
		}
		match := true
		for k, v := range want {
			if s.labels[k] != v {
				match = false
			}
		}
		if match {
			return s.value, true
		}
	}
	return 0, false
}

func (ss samples) first(name string) (float64, map[string]string, bool) {
	for _, s := range ss {
		if s.name == name {
			return s.value, s.labels, true
		}
	}
	return 0, nil, false
}

func (ss samples) sum(name string) float64 {
	var t float64
	for _, s := range ss {
		if s.name == name {
			t += s.value
		}
	}
	return t
}

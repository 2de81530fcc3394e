package notify

import (
	"maps"
	"strings"
	"testing"
	"time"
)

func TestParseLimits(t *testing.T) {
	good := []struct {
		in   string
		want map[string]Limit
	}{
		{"", map[string]Limit{}},
		{"  ", map[string]Limit{}},
		{"email=100/s,webhook=500/s", map[string]Limit{
			"email":   {Rate: 100, Per: time.Second},
			"webhook": {Rate: 500, Per: time.Second},
		}},
		{"email=20/h", map[string]Limit{"email": {Rate: 20, Per: time.Hour}}},
		{" sms = 3/m , push=1/s ", map[string]Limit{
			"sms":  {Rate: 3, Per: time.Minute},
			"push": {Rate: 1, Per: time.Second},
		}},
	}
	for _, c := range good {
		got, err := ParseLimits(c.in)
		if err != nil || !maps.Equal(got, c.want) {
			t.Errorf("ParseLimits(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	bad := []struct{ in, names string }{
		{"email", `"email"`},
		{"=5/s", `"=5/s"`},
		{"email=5", `"email=5"`},
		{"email=5/d", `unit "d"`},
		{"email=0/s", `rate "0"`},
		{"email=-1/s", `rate "-1"`},
		{"email=x/s", `rate "x"`},
		{"email=5/s,sms=5/w", `"sms=5/w"`},
		{"email=5/s,email=6/s", "email is limited twice"},
		{"email=5/s,,sms=1/s", `""`},
	}
	for _, c := range bad {
		_, err := ParseLimits(c.in)
		if err == nil || !strings.Contains(err.Error(), c.names) {
			t.Errorf("ParseLimits(%q): error %v, want one naming %s", c.in, err, c.names)
		}
	}
}

func TestLimitGCRA(t *testing.T) {
	cases := []struct {
		l                   Limit
		interval, tolerance int64
	}{
		{Limit{Rate: 30, Per: time.Second}, 33333, 33333 * 30},
		{Limit{Rate: 5, Per: time.Hour}, 720e6, 3600e6},
		{Limit{Rate: 10, Per: time.Second, Burst: 1}, 100e3, 100e3},
		{Limit{Rate: 1e9, Per: time.Second, Burst: 2}, 1, 2},
	}
	for _, c := range cases {
		i, tol, err := c.l.GCRA()
		if err != nil || i != c.interval || tol != c.tolerance {
			t.Errorf("%v.GCRA() = %d, %d, %v; want %d, %d", c.l, i, tol, err, c.interval, c.tolerance)
		}
	}
	for _, l := range []Limit{{}, {Rate: 1}, {Per: time.Second}, {Rate: 1, Per: time.Second, Burst: -1}} {
		if _, _, err := l.GCRA(); err == nil {
			t.Errorf("%v.GCRA(): no error", l)
		}
	}
}

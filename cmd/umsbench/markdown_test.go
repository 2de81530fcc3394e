package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The notification target row of `umsbench report` reads the median of
// notify-http-batch-redis: met at 20,000/s or more, missed below.
func TestReportNotificationTarget(t *testing.T) {
	for _, tc := range []struct {
		rates []float64
		want  string
	}{
		{[]float64{20890, 21440, 20950}, "| notifications ≥ 20,000/s end to end with the guards in Redis (issue 12) | 20,950/s; ums 24,840/s on the embedded guards | met |"},
		{[]float64{19990, 25000, 18000}, "| notifications ≥ 20,000/s end to end with the guards in Redis (issue 12) | 19,990/s; ums 24,840/s on the embedded guards | missed |"},
	} {
		var lines []string
		for _, r := range tc.rates {
			lines = append(lines, fmt.Sprintf(`{"mode":"notify","scenario":"notify-http-batch-redis","broker":"ums","delivered_per_s":%g,"lost":0}`, r))
		}
		lines = append(lines, `{"mode":"notify","scenario":"notify-http-batch","broker":"ums","delivered_per_s":24840,"lost":0}`)
		file := filepath.Join(t.TempDir(), "results.jsonl")
		if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		var out, errOut bytes.Buffer
		if err := reportMain([]string{file}, &out, &errOut); err != nil {
			t.Fatalf("report: %v (%s)", err, errOut.String())
		}
		if !strings.Contains(out.String(), tc.want+"\n") {
			t.Errorf("rates %v: the targets table has no line\n%s\nin:\n%s", tc.rates, tc.want, out.String())
		}
	}
}

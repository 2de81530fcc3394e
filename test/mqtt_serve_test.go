package test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/unifiedms/ums/config"
	"github.com/unifiedms/ums/internal/testutil"
)

// TestMQTTServe is not a test: it runs a broker with MQTT on UMS_MQTT_SERVE
// for HOLD (30s), so that umsbench can be pointed at it while the test
// binary profiles it (-test.cpuprofile, -test.memprofile):
//
//	go test -c -o /tmp/umstest ./test/
//	UMS_MQTT_SERVE=127.0.0.1:1883 HOLD=60s /tmp/umstest -test.run 'TestMQTTServe$' -test.cpuprofile cpu.out &
//	go run ./cmd/umsbench mqtt -addr 127.0.0.1:1883 -qos 1 -duration 30s
func TestMQTTServe(t *testing.T) {
	addr := os.Getenv("UMS_MQTT_SERVE")
	if addr == "" {
		t.Skip("set UMS_MQTT_SERVE to run a broker for profiling under load")
	}
	hold := 30 * time.Second
	if v := os.Getenv("HOLD"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("HOLD: %v", err)
		}
		hold = d
	}
	b := testutil.StartBroker(t, testutil.WithProtocols(testutil.MQTT),
		testutil.WithConfig(func(c *config.Config) { c.MQTTListen = addr }))
	fmt.Printf("SERVING %s\n", b.MQTTAddr)
	time.Sleep(hold)
	b.Stop()
}

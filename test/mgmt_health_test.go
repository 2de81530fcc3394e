package test

import (
	"net/http"
	"strings"
	"testing"
)

func TestMgmtAPIHealth(t *testing.T) {
	s, base := startMgmt(t)
	const g = "guest"
	// Probes need no login.
	apiWant(t, http.StatusOK, "GET", base+"/healthz", "", "", "")
	apiWant(t, http.StatusOK, "GET", base+"/readyz", "", "", "")

	s.Core.SetAlarm("memory", "memory above the high watermark", true)
	data := apiWant(t, http.StatusServiceUnavailable, "GET", base+"/readyz", "", "", "")
	if !strings.Contains(string(data), "memory above the high watermark") {
		t.Fatalf("readyz during an alarm: %s", data)
	}
	apiWant(t, http.StatusOK, "GET", base+"/healthz", "", "", "")
	s.Core.SetAlarm("memory", "", false)
	apiWant(t, http.StatusOK, "GET", base+"/readyz", "", "", "")

	// The aliveness test, twice (the queue stays, as in RabbitMQ).
	for range 2 {
		var st struct{ Status string }
		decodeInto(t, apiWant(t, http.StatusOK, "GET", base+"/api/aliveness-test/%2F", g, g, ""), &st)
		if st.Status != "ok" {
			t.Fatalf("aliveness: %+v", st)
		}
	}
	apiWant(t, http.StatusOK, "GET", base+"/api/queues/%2F/aliveness-test", g, g, "")
	apiError(t, http.StatusUnauthorized, "", "GET", base+"/api/aliveness-test/%2F", "", "", "")
	apiError(t, http.StatusNotFound, "", "GET", base+"/api/aliveness-test/nowhere", g, g, "")
	apiWant(t, http.StatusCreated, "PUT", base+"/api/users/mon", g, g, `{"password":"pw","tags":"monitoring"}`)
	apiError(t, http.StatusUnauthorized, "virtual host", "GET", base+"/api/aliveness-test/%2F", "mon", "pw", "")
	apiWant(t, http.StatusCreated, "PUT", base+"/api/permissions/%2F/mon", g, g, `{"configure":"^aliveness-test$","write":"^amq\\.default$","read":"^aliveness-test$"}`)
	apiWant(t, http.StatusOK, "GET", base+"/api/aliveness-test/%2F", "mon", "pw", "")
}

package test

import "github.com/unifiedms/ums/internal/mqttraw"

// Raw MQTT 3.1.1 pieces for tests that must control the bytes on the wire
// (pipelined publishes, packets cut by a crash); see internal/mqttraw.
var (
	rawConnect      = mqttraw.Connect
	rawStr          = mqttraw.Str
	appendRemaining = mqttraw.AppendRemaining
	newRawReader    = mqttraw.NewReader
)

type rawReader = mqttraw.Reader

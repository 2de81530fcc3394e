package main

import "github.com/unifiedms/ums/internal/mqttraw"

// The raw MQTT client pieces of the load generator (see internal/mqttraw).
const (
	connectClean      = mqttraw.ConnectClean
	connectPersistent = mqttraw.ConnectPersistent
)

var (
	rawConnect      = mqttraw.Connect
	rawDisconnect   = mqttraw.Disconnect
	rawStr          = mqttraw.Str
	appendRemaining = mqttraw.AppendRemaining
	newRawReader    = mqttraw.NewReader
)

type rawReader = mqttraw.Reader

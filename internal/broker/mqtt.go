package broker

import "context"

// startMQTT starts the MQTT listeners (TCP and WebSocket) when configured.
func (b *Broker) startMQTT() error { return nil }

// stopMQTT closes the MQTT listeners and sessions.
func (b *Broker) stopMQTT(ctx context.Context) error { return nil }

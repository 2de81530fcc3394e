package broker

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/unifiedms/ums/config"
	"github.com/unifiedms/ums/notify"
	"github.com/unifiedms/ums/notify/pipeline"
	"github.com/unifiedms/ums/notify/redisstore"
)

// Check checks what New would refuse in cfg without opening a store, a
// listener or a connection: listen addresses (and two listeners on one
// port), the TLS certificate, key and CA files, the data directory if it exists, the Redis URL, the notification
// limits and worker counts, and every configured channel, the gateways:
// list included (decoded and built, ${NAME} expanded from the environment).
func Check(cfg *config.Config) error {
	var errs []error
	errs = append(errs, checkListeners(cfg)...)
	if cfg.TLSCertFile != "" {
		if _, err := newCertHolder(cfg.TLSCertFile, cfg.TLSKeyFile, cfg.TLSCAFile, cfg.TLSVerifyPeer, nil); err != nil {
			errs = append(errs, err)
		}
	}
	if fi, err := os.Stat(cfg.DataDir); err == nil && !fi.IsDir() {
		errs = append(errs, fmt.Errorf("data-dir: %s is not a directory", cfg.DataDir))
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("data-dir: %w", err))
	}
	if cfg.RedisURL != "" {
		c, err := redisstore.NewClient(cfg.RedisURL)
		if err != nil {
			errs = append(errs, fmt.Errorf("--redis-url: %w", err))
		} else {
			c.Close()
		}
	}
	np := &notifyParts{}
	o := pipeline.Options{Senders: map[string]notify.Sender{}, Address: map[string]func(string) error{}}
	if err := channelSenders(cfg, time.Now, &o, np); err != nil {
		errs = append(errs, err)
	}
	np.shutdown()
	return errors.Join(errs...)
}

// checkListeners checks that every listen address other than off is
// host:port with a port number, and that no two listeners share a port on
// the same or every address (port 0, any free port, may repeat).
func checkListeners(cfg *config.Config) []error {
	var errs []error
	type bound struct{ name, host string }
	seen := map[int][]bound{}
	wildcard := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	all := []struct{ name, addr string }{
		{"amqp-listen", cfg.AMQPListen}, {"mqtt-listen", cfg.MQTTListen}, {"mqtt-ws-listen", cfg.MQTTWSListen},
		{"stomp-listen", cfg.STOMPListen}, {"stomp-ws-listen", cfg.STOMPWSListen}, {"http-listen", cfg.HTTPListen},
	}
	if cfg.TLSCertFile != "" { // the TLS listeners open only with a certificate
		all = append(all, []struct{ name, addr string }{
			{"amqps-listen", cfg.AMQPSListen}, {"mqtts-listen", cfg.MQTTSListen}, {"mqtt-wss-listen", cfg.MQTTWSSListen},
			{"stomps-listen", cfg.STOMPSListen}, {"stomp-wss-listen", cfg.STOMPWSSListen}, {"https-listen", cfg.HTTPSListen},
		}...)
	}
	for _, l := range all {
		if !listening(l.addr) {
			continue
		}
		host, port, err := net.SplitHostPort(l.addr)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not host:port: %v", l.name, l.addr, err))
			continue
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < 0 || n > 65535 {
			errs = append(errs, fmt.Errorf("%s: port %q is not a number from 0 to 65535", l.name, port))
			continue
		}
		if n == 0 {
			continue
		}
		for _, o := range seen[n] {
			if o.host == host || wildcard(o.host) || wildcard(host) {
				errs = append(errs, fmt.Errorf("%s: %s is also %s's port", l.name, l.addr, o.name))
				break
			}
		}
		seen[n] = append(seen[n], bound{l.name, host})
	}
	return errs
}

// Package config holds the server's settings: defaults, a YAML file, the
// environment and the command line, in rising order of precedence (flags beat
// env beats file beats defaults).
//
// One table of settings drives all four sources: every setting has a flag
// name (which is also its key in the file) and an environment variable.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole server configuration.
type Config struct {
	ConfigFile      string
	CheckConfig     bool
	DataDir         string
	AMQPListen      string
	MQTTListen      string
	MQTTWSListen    string
	STOMPListen     string
	STOMPWSListen   string
	HTTPListen      string
	MetricsListen   string
	MetricsPerQueue bool
	AdaptiveProcs   bool
	ConsoleRefresh  time.Duration
	PprofListen     string
	RedisURL        string

	TLSCertFile    string
	TLSKeyFile     string
	TLSCAFile      string
	TLSVerifyPeer  bool
	AMQPSListen    string
	MQTTSListen    string
	MQTTWSSListen  string
	STOMPSListen   string
	STOMPWSSListen string
	HTTPSListen    string
	LogLevel       string

	AMQPFrameMax        int
	AMQPChannelMax      int
	AMQPHeartbeat       time.Duration
	AMQPProduct         string
	MaxMessageSize      int
	QueuePageAfter      int
	MemoryHighWatermark float64
	DiskFreeLimit       int64
	DefaultUser         string
	DefaultPass         string
	DefaultUserAnyHost  bool

	MaxConnections        int
	MaxConnectionsPerUser int
	MaxConsumersPerQueue  int
	LoginFailureDelay     time.Duration

	MQTTExchange         string
	MQTTDefaultVhost     string
	MQTTMaxSessionExpiry uint32
	MQTTMaxPacketSize    int
	MQTTMaxInflight      int
	MQTTMaxQueueLength   int
	MQTTAllowAnonymous   bool
	MQTTDefaultUser      string
	MQTTDefaultPass      string

	STOMPMaxFrameSize    int
	STOMPMaxHeaders      int
	STOMPMaxHeaderLength int

	RedisFailOpen        bool
	SMTPURL              string
	SMTPTLS              string
	SMTPFrom             string
	WebhookSecret        string
	WebhookTimeout       time.Duration
	WebhookAllowHTTP     bool
	WebhookAllowPrivate  bool
	NotifyMaxAttempts    int
	NotifyBackoffBase    time.Duration
	NotifyBackoffMax     time.Duration
	NotifyDedupTTL       time.Duration
	NotifyRateLimit      string
	NotifyRecipientLimit string
	NotifyTenantLimit    string
	NotifyWorkers        string
	NotifySendTimeout    time.Duration

	PublicURL                 string
	TwilioAccountSID          string
	TwilioAuthToken           string
	TwilioFrom                string
	TwilioMessagingServiceSID string
	TwilioBaseURL             string
	SMSMaxSegments            int
	FCMCredentials            string
	FCMProjectID              string
	FCMEndpoint               string
	WebPushVAPIDPublicKey     string
	WebPushVAPIDPrivateKey    string
	WebPushSubject            string
	APNsKeyFile               string
	APNsKeyID                 string
	APNsTeamID                string
	APNsTopic                 string
	APNsProduction            bool
	APNsEndpoint              string

	// Gateways is the file's gateways: list (generic HTTP SMS and
	// KakaoTalk providers), re-encoded as YAML for the gateway channel to
	// decode; it has no flag.
	Gateways []byte
	// GatewaysAt is where the list is in the file, for error messages.
	GatewaysAt string
}

// Off is the listen address that disables a listener.
const Off = "off"

type setting struct {
	flag, env, def, help, meta string
	set                        func(c *Config, v string) error
}

func str(p func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *p(c) = v; return nil }
}

func integer(p func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("not an integer: %q", v)
		}
		*p(c) = n
		return nil
	}
}

func duration(p func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			if n, nerr := strconv.Atoi(v); nerr == nil {
				d = time.Duration(n) * time.Second
			} else {
				return fmt.Errorf("not a duration: %q", v)
			}
		}
		*p(c) = d
		return nil
	}
}

// positive parses an integer between 1 and most.
func positive(p func(*Config) *int, most int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > most {
			return fmt.Errorf("not an integer between 1 and %d: %q", most, v)
		}
		*p(c) = n
		return nil
	}
}

// nonNegative parses an integer of 0 or more.
func nonNegative(p func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("not an integer of 0 or more: %q", v)
		}
		*p(c) = n
		return nil
	}
}

func boolean(p func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("not a boolean: %q", v)
		}
		*p(c) = b
		return nil
	}
}

var settings = []setting{
	{"config", "UMS_CONFIG", "", "configuration file (YAML; keys are the flag names)", "FILE", str(func(c *Config) *string { return &c.ConfigFile })},
	{"check-config", "UMS_CHECK_CONFIG", "false", "load and check the configuration without starting: print \"configuration OK\" and exit 0, or the error and exit 1", "BOOL", boolean(func(c *Config) *bool { return &c.CheckConfig })},
	{"data-dir", "UMS_DATA_DIR", "./data", "directory for persistent data", "DIR", str(func(c *Config) *string { return &c.DataDir })},
	{"amqp-listen", "UMS_AMQP_LISTEN", ":5672", "AMQP 0-9-1 listen address, or off", "ADDR", str(func(c *Config) *string { return &c.AMQPListen })},
	{"mqtt-listen", "UMS_MQTT_LISTEN", ":1883", "MQTT listen address, or off", "ADDR", str(func(c *Config) *string { return &c.MQTTListen })},
	{"mqtt-ws-listen", "UMS_MQTT_WS_LISTEN", ":15675", "MQTT over WebSocket listen address (path /ws), or off", "ADDR", str(func(c *Config) *string { return &c.MQTTWSListen })},
	{"stomp-listen", "UMS_STOMP_LISTEN", ":61613", "STOMP listen address, or off", "ADDR", str(func(c *Config) *string { return &c.STOMPListen })},
	{"stomp-ws-listen", "UMS_STOMP_WS_LISTEN", ":15674", "STOMP over WebSocket listen address (path /ws), or off", "ADDR", str(func(c *Config) *string { return &c.STOMPWSListen })},
	{"http-listen", "UMS_HTTP_LISTEN", ":15672", "management HTTP API listen address, or off", "ADDR", str(func(c *Config) *string { return &c.HTTPListen })},
	{"metrics-listen", "UMS_METRICS_LISTEN", "", "Prometheus /metrics listen address (empty: served at /metrics on the HTTP listener; either way without authentication; off: not served)", "ADDR", str(func(c *Config) *string { return &c.MetricsListen })},
	{"metrics-per-queue", "UMS_METRICS_PER_QUEUE", "false", "export queue metrics per queue (labels vhost, queue) instead of totals; one series per queue", "BOOL", boolean(func(c *Config) *bool { return &c.MetricsPerQueue })},
	{"pprof-listen", "UMS_PPROF_LISTEN", "", "Go's profiler (net/http/pprof, /debug/pprof/) on a listener of its own, without login: give it a loopback address such as 127.0.0.1:6060 (empty or off: not served)", "ADDR", str(func(c *Config) *string { return &c.PprofListen })},
	{"console-refresh", "UMS_CONSOLE_REFRESH", "5s", "how often the web console's pages refresh their data", "DURATION", duration(func(c *Config) *time.Duration { return &c.ConsoleRefresh })},
	{"tls-cert-file", "UMS_TLS_CERT_FILE", "", "PEM certificate (chain) of the TLS listeners; setting it turns them on. Reloaded on SIGHUP and when the file changes", "FILE", str(func(c *Config) *string { return &c.TLSCertFile })},
	{"tls-key-file", "UMS_TLS_KEY_FILE", "", "PEM private key of --tls-cert-file", "FILE", str(func(c *Config) *string { return &c.TLSKeyFile })},
	{"tls-ca-file", "UMS_TLS_CA_FILE", "", "PEM CA certificates that client certificates are verified against", "FILE", str(func(c *Config) *string { return &c.TLSCAFile })},
	{"tls-verify-peer", "UMS_TLS_VERIFY_PEER", "false", "require a client certificate signed by --tls-ca-file on the TLS listeners; its common name may log in (AMQP EXTERNAL)", "BOOL", boolean(func(c *Config) *bool { return &c.TLSVerifyPeer })},
	{"amqps-listen", "UMS_AMQPS_LISTEN", ":5671", "AMQP 0-9-1 over TLS listen address, or off (on only with --tls-cert-file)", "ADDR", str(func(c *Config) *string { return &c.AMQPSListen })},
	{"mqtts-listen", "UMS_MQTTS_LISTEN", ":8883", "MQTT over TLS listen address, or off (on only with --tls-cert-file)", "ADDR", str(func(c *Config) *string { return &c.MQTTSListen })},
	{"mqtt-wss-listen", "UMS_MQTT_WSS_LISTEN", ":15676", "MQTT over secure WebSocket listen address (path /ws), or off (on only with --tls-cert-file)", "ADDR", str(func(c *Config) *string { return &c.MQTTWSSListen })},
	{"stomps-listen", "UMS_STOMPS_LISTEN", ":61614", "STOMP over TLS listen address, or off (on only with --tls-cert-file)", "ADDR", str(func(c *Config) *string { return &c.STOMPSListen })},
	{"stomp-wss-listen", "UMS_STOMP_WSS_LISTEN", ":15673", "STOMP over secure WebSocket listen address (path /ws), or off (on only with --tls-cert-file)", "ADDR", str(func(c *Config) *string { return &c.STOMPWSSListen })},
	{"https-listen", "UMS_HTTPS_LISTEN", ":15671", "management HTTP API over TLS listen address, or off (on only with --tls-cert-file)", "ADDR", str(func(c *Config) *string { return &c.HTTPSListen })},
	{"redis-url", "UMS_REDIS_URL", "", "Redis URL for deduplication and rate limits (empty: embedded)", "URL", str(func(c *Config) *string { return &c.RedisURL })},
	{"log-level", "UMS_LOG_LEVEL", "info", "log level: debug, info, warn, error", "LEVEL", str(func(c *Config) *string { return &c.LogLevel })},
	{"amqp-frame-max", "UMS_AMQP_FRAME_MAX", "131072", "largest AMQP frame in bytes offered to clients", "BYTES", integer(func(c *Config) *int { return &c.AMQPFrameMax })},
	{"amqp-channel-max", "UMS_AMQP_CHANNEL_MAX", "2047", "most AMQP channels per connection", "N", integer(func(c *Config) *int { return &c.AMQPChannelMax })},
	{"amqp-heartbeat", "UMS_AMQP_HEARTBEAT", "60s", "AMQP heartbeat interval offered to clients (0 disables)", "DURATION", duration(func(c *Config) *time.Duration { return &c.AMQPHeartbeat })},
	{"amqp-product", "UMS_AMQP_PRODUCT", "UMS", "product name in connection.start (some clients enable RabbitMQ extensions only for \"RabbitMQ\")", "NAME", str(func(c *Config) *string { return &c.AMQPProduct })},
	{"max-message-size", "UMS_MAX_MESSAGE_SIZE", "134217728", "largest message body accepted, in bytes", "BYTES", integer(func(c *Config) *int { return &c.MaxMessageSize })},
	{"queue-page-after", "UMS_QUEUE_PAGE_AFTER", "10000", "ready messages a durable queue keeps in memory; bodies of persistent messages behind them stay on disk until needed (0 keeps all in memory)", "N", integer(func(c *Config) *int { return &c.QueuePageAfter })},
	{"memory-high-watermark", "UMS_MEMORY_HIGH_WATERMARK", "0.4", "block publishers when the server uses more than this fraction of RAM (0 disables)", "FRACTION", func(c *Config, v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || f > 1 {
			return fmt.Errorf("not a fraction between 0 and 1: %q", v)
		}
		c.MemoryHighWatermark = f
		return nil
	}},
	{"disk-free-limit", "UMS_DISK_FREE_LIMIT", "104857600", "block publishers when the data directory's disk has fewer free bytes (0 disables)", "BYTES", func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("not a byte count: %q", v)
		}
		c.DiskFreeLimit = n
		return nil
	}},
	{"adaptive-procs", "UMS_ADAPTIVE_PROCS", "true", "run on one processor while the server uses little CPU (saves the thread wake-ups of moderate rates) and on all as soon as load rises; off when GOMAXPROCS is set", "BOOL", boolean(func(c *Config) *bool { return &c.AdaptiveProcs })},
	{"max-connections", "UMS_MAX_CONNECTIONS", "0", "most open client connections per listener (AMQP, MQTT, STOMP, each TLS and WebSocket listener on its own); more are refused the protocol's way (0: no limit)", "N", nonNegative(func(c *Config) *int { return &c.MaxConnections })},
	{"max-connections-per-user", "UMS_MAX_CONNECTIONS_PER_USER", "0", "most client connections of one user over all protocols; more are refused at login (0: no limit)", "N", nonNegative(func(c *Config) *int { return &c.MaxConnectionsPerUser })},
	{"max-consumers-per-queue", "UMS_MAX_CONSUMERS_PER_QUEUE", "0", "most consumers of one queue (AMQP consumers, STOMP subscriptions, MQTT shared subscription members); more are refused (0: no limit)", "N", nonNegative(func(c *Config) *int { return &c.MaxConsumersPerQueue })},
	{"login-failure-delay", "UMS_LOGIN_FAILURE_DELAY", "1s", "how long a failed login (AMQP, MQTT, STOMP, HTTP) waits before it is answered (0: at once)", "DURATION", duration(func(c *Config) *time.Duration { return &c.LoginFailureDelay })},
	{"default-user", "UMS_DEFAULT_USER", "guest", "user created at first start", "NAME", str(func(c *Config) *string { return &c.DefaultUser })},
	{"default-pass", "UMS_DEFAULT_PASS", "guest", "password of the default user", "PASSWORD", str(func(c *Config) *string { return &c.DefaultPass })},
	{"mqtt-exchange", "UMS_MQTT_EXCHANGE", "amq.topic", "topic exchange MQTT publishes to and subscribes on, in every vhost", "NAME", str(func(c *Config) *string { return &c.MQTTExchange })},
	{"mqtt-default-vhost", "UMS_MQTT_DEFAULT_VHOST", "/", "vhost of MQTT users named without a \"vhost:\" prefix", "VHOST", str(func(c *Config) *string { return &c.MQTTDefaultVhost })},
	{"mqtt-max-session-expiry", "UMS_MQTT_MAX_SESSION_EXPIRY", "86400", "longest MQTT session expiry interval granted, in seconds, or infinity; MQTT 3.1.1 persistent sessions get it", "SECONDS", func(c *Config, v string) error {
		if v == "infinity" {
			c.MQTTMaxSessionExpiry = 1<<32 - 1
			return nil
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == 0 {
			return fmt.Errorf("not a number of seconds (1 to 4294967295) or infinity: %q", v)
		}
		c.MQTTMaxSessionExpiry = uint32(n)
		return nil
	}},
	{"mqtt-max-packet-size", "UMS_MQTT_MAX_PACKET_SIZE", "16777216", "largest MQTT packet accepted, in bytes", "BYTES", positive(func(c *Config) *int { return &c.MQTTMaxPacketSize }, 1<<28)},
	{"mqtt-max-inflight", "UMS_MQTT_MAX_INFLIGHT", "256", "most unacknowledged QoS 1/2 deliveries per MQTT client", "N", positive(func(c *Config) *int { return &c.MQTTMaxInflight }, 65535)},
	{"mqtt-max-queue-length", "UMS_MQTT_MAX_QUEUE_LENGTH", "100000", "messages an MQTT session queue holds before publishers are refused (QoS 1) or the oldest is dropped (QoS 0); -1: no bound", "N", integer(func(c *Config) *int { return &c.MQTTMaxQueueLength })},
	{"mqtt-allow-anonymous", "UMS_MQTT_ALLOW_ANONYMOUS", "true", "let MQTT clients connect without a user name, as --mqtt-default-user", "BOOL", boolean(func(c *Config) *bool { return &c.MQTTAllowAnonymous })},
	{"mqtt-default-user", "UMS_MQTT_DEFAULT_USER", "guest", "user whose rights anonymous MQTT clients get", "NAME", str(func(c *Config) *string { return &c.MQTTDefaultUser })},
	{"mqtt-default-pass", "UMS_MQTT_DEFAULT_PASS", "guest", "password of --mqtt-default-user", "PASSWORD", str(func(c *Config) *string { return &c.MQTTDefaultPass })},
	{"stomp-max-frame-size", "UMS_STOMP_MAX_FRAME_SIZE", "16777216", "largest STOMP frame accepted (command, headers and body), in bytes", "BYTES", positive(func(c *Config) *int { return &c.STOMPMaxFrameSize }, 1<<30)},
	{"stomp-max-headers", "UMS_STOMP_MAX_HEADERS", "1000", "most headers in a STOMP frame", "N", positive(func(c *Config) *int { return &c.STOMPMaxHeaders }, 1<<20)},
	{"stomp-max-header-length", "UMS_STOMP_MAX_HEADER_LENGTH", "102400", "longest STOMP header line (name and value), in bytes", "BYTES", positive(func(c *Config) *int { return &c.STOMPMaxHeaderLength }, 1<<24)},
	{"redis-fail-open", "UMS_REDIS_FAIL_OPEN", "true", "while Redis is unreachable keep delivering notifications on the embedded guards (false: hold sending until it is back)", "BOOL", boolean(func(c *Config) *bool { return &c.RedisFailOpen })},
	{"smtp-url", "UMS_SMTP_URL", "", "SMTP server of the email channel: smtp://user:pass@host:port, smtps:// for implicit TLS (empty: email not configured)", "URL", str(func(c *Config) *string { return &c.SMTPURL })},
	{"smtp-tls", "UMS_SMTP_TLS", "starttls", "SMTP transport security: starttls, implicit or none", "MODE", str(func(c *Config) *string { return &c.SMTPTLS })},
	{"smtp-from", "UMS_SMTP_FROM", "", "From address of notification email", "ADDRESS", str(func(c *Config) *string { return &c.SMTPFrom })},
	{"webhook-secret", "UMS_WEBHOOK_SECRET", "", "secret signing webhook notifications (X-UMS-Signature; empty: webhook not configured)", "SECRET", str(func(c *Config) *string { return &c.WebhookSecret })},
	{"webhook-timeout", "UMS_WEBHOOK_TIMEOUT", "10s", "time a webhook endpoint has to answer", "DURATION", duration(func(c *Config) *time.Duration { return &c.WebhookTimeout })},
	{"webhook-allow-http", "UMS_WEBHOOK_ALLOW_HTTP", "false", "accept http:// webhook URLs", "BOOL", boolean(func(c *Config) *bool { return &c.WebhookAllowHTTP })},
	{"webhook-allow-private", "UMS_WEBHOOK_ALLOW_PRIVATE", "false", "accept webhook URLs on loopback and private networks", "BOOL", boolean(func(c *Config) *bool { return &c.WebhookAllowPrivate })},
	{"notify-max-attempts", "UMS_NOTIFY_MAX_ATTEMPTS", "5", "tries of a notification on one channel before the next channel or the dead-letter queue", "N", positive(func(c *Config) *int { return &c.NotifyMaxAttempts }, 1000)},
	{"notify-backoff-base", "UMS_NOTIFY_BACKOFF_BASE", "1s", "first retry delay (doubling, with full jitter)", "DURATION", duration(func(c *Config) *time.Duration { return &c.NotifyBackoffBase })},
	{"notify-backoff-max", "UMS_NOTIFY_BACKOFF_MAX", "5m", "longest retry delay", "DURATION", duration(func(c *Config) *time.Duration { return &c.NotifyBackoffMax })},
	{"notify-dedup-ttl", "UMS_NOTIFY_DEDUP_TTL", "24h", "how long an idempotency key is remembered", "DURATION", duration(func(c *Config) *time.Duration { return &c.NotifyDedupTTL })},
	{"notify-rate-limit", "UMS_NOTIFY_RATE_LIMIT", "", "rate limits per channel, e.g. email=100/s,webhook=500/s", "LIMITS", str(func(c *Config) *string { return &c.NotifyRateLimit })},
	{"notify-recipient-limit", "UMS_NOTIFY_RECIPIENT_LIMIT", "", "rate limits per recipient address, e.g. email=20/h,sms=5/h", "LIMITS", str(func(c *Config) *string { return &c.NotifyRecipientLimit })},
	{"notify-tenant-limit", "UMS_NOTIFY_TENANT_LIMIT", "", "rate limits per tenant and channel, e.g. email=1000/m", "LIMITS", str(func(c *Config) *string { return &c.NotifyTenantLimit })},
	{"notify-workers", "UMS_NOTIFY_WORKERS", "", "concurrent sends per channel, e.g. email=16,webhook=64 (default 8 each)", "COUNTS", str(func(c *Config) *string { return &c.NotifyWorkers })},
	{"notify-send-timeout", "UMS_NOTIFY_SEND_TIMEOUT", "30s", "longest time one send may take", "DURATION", duration(func(c *Config) *time.Duration { return &c.NotifySendTimeout })},
	{"public-url", "UMS_PUBLIC_URL", "", "URL at which providers reach this server's HTTP listener (Twilio status callbacks), e.g. https://ums.example.com", "URL", str(func(c *Config) *string { return &c.PublicURL })},
	{"twilio-account-sid", "UMS_TWILIO_ACCOUNT_SID", "", "Twilio account SID of the sms channel (empty: sms not configured)", "SID", str(func(c *Config) *string { return &c.TwilioAccountSID })},
	{"twilio-auth-token", "UMS_TWILIO_AUTH_TOKEN", "", "Twilio auth token (also verifies status callbacks)", "TOKEN", str(func(c *Config) *string { return &c.TwilioAuthToken })},
	{"twilio-from", "UMS_TWILIO_FROM", "", "sender number of SMS (E.164)", "NUMBER", str(func(c *Config) *string { return &c.TwilioFrom })},
	{"twilio-messaging-service-sid", "UMS_TWILIO_MESSAGING_SERVICE_SID", "", "Twilio messaging service sending SMS instead of --twilio-from", "SID", str(func(c *Config) *string { return &c.TwilioMessagingServiceSID })},
	{"twilio-base-url", "UMS_TWILIO_BASE_URL", "", "Twilio API base URL (empty: https://api.twilio.com)", "URL", str(func(c *Config) *string { return &c.TwilioBaseURL })},
	{"sms-max-segments", "UMS_SMS_MAX_SEGMENTS", "10", "longest SMS text accepted, in segments (GSM-7 153 characters, UCS-2 67 each)", "N", positive(func(c *Config) *int { return &c.SMSMaxSegments }, 1000)},
	{"fcm-credentials", "UMS_FCM_CREDENTIALS", "", "Firebase service-account JSON file of the push channel's FCM provider", "FILE", str(func(c *Config) *string { return &c.FCMCredentials })},
	{"fcm-project-id", "UMS_FCM_PROJECT_ID", "", "Firebase project id (empty: the service account's)", "ID", str(func(c *Config) *string { return &c.FCMProjectID })},
	{"fcm-endpoint", "UMS_FCM_ENDPOINT", "", "FCM API base URL (empty: Google's)", "URL", str(func(c *Config) *string { return &c.FCMEndpoint })},
	{"webpush-vapid-public-key", "UMS_WEBPUSH_VAPID_PUBLIC_KEY", "", "VAPID public key of Web Push (base64url)", "KEY", str(func(c *Config) *string { return &c.WebPushVAPIDPublicKey })},
	{"webpush-vapid-private-key", "UMS_WEBPUSH_VAPID_PRIVATE_KEY", "", "VAPID private key of Web Push (base64url)", "KEY", str(func(c *Config) *string { return &c.WebPushVAPIDPrivateKey })},
	{"webpush-subject", "UMS_WEBPUSH_SUBJECT", "", "VAPID subject: mailto: or https: contact", "URI", str(func(c *Config) *string { return &c.WebPushSubject })},
	{"apns-key-file", "UMS_APNS_KEY_FILE", "", "APNs token-authentication key (.p8)", "FILE", str(func(c *Config) *string { return &c.APNsKeyFile })},
	{"apns-key-id", "UMS_APNS_KEY_ID", "", "APNs key id", "ID", str(func(c *Config) *string { return &c.APNsKeyID })},
	{"apns-team-id", "UMS_APNS_TEAM_ID", "", "Apple developer team id", "ID", str(func(c *Config) *string { return &c.APNsTeamID })},
	{"apns-topic", "UMS_APNS_TOPIC", "", "APNs topic (the app's bundle id)", "TOPIC", str(func(c *Config) *string { return &c.APNsTopic })},
	{"apns-production", "UMS_APNS_PRODUCTION", "false", "use APNs production instead of development", "BOOL", boolean(func(c *Config) *bool { return &c.APNsProduction })},
	{"apns-endpoint", "UMS_APNS_ENDPOINT", "", "APNs host (empty: Apple's)", "URL", str(func(c *Config) *string { return &c.APNsEndpoint })},
	{"default-user-any-host", "UMS_DEFAULT_USER_ANY_HOST", "false", "let the default user connect from other hosts than loopback", "BOOL", boolean(func(c *Config) *bool { return &c.DefaultUserAnyHost })},
}

// flagValue is a setting on the command line; boolean settings may be
// given bare (--webhook-allow-http means true), as Go's bool flags.
type flagValue struct {
	p      *string
	isBool bool
}

func (f *flagValue) String() string {
	if f.p == nil {
		return ""
	}
	return *f.p
}
func (f *flagValue) Set(v string) error { *f.p = v; return nil }
func (f *flagValue) IsBoolFlag() bool   { return f.isBool }

// Default returns the built-in configuration.
func Default() *Config {
	c := &Config{}
	for _, s := range settings {
		if err := s.set(c, s.def); err != nil {
			panic(fmt.Sprintf("config: bad default for %s: %v", s.flag, err))
		}
	}
	return c
}

// ErrHelp is returned by Load when --help was asked for; the usage has been printed.
var ErrHelp = flag.ErrHelp

// Load builds the configuration from defaults, the file, the environment
// (getenv) and args (without the program name). Usage goes to out.
func Load(args []string, getenv func(string) string, out io.Writer) (*Config, error) {
	fs := flag.NewFlagSet("umsd", flag.ContinueOnError)
	fs.SetOutput(out)
	vals := make(map[string]*string, len(settings))
	for _, s := range settings {
		v := s.def
		vals[s.flag] = &v
		fs.Var(&flagValue{p: &v, isBool: s.meta == "BOOL"}, s.flag, s.help)
	}
	fs.Usage = func() { Usage(out) }
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })

	c := Default()
	path := getenv("UMS_CONFIG")
	if given["config"] {
		path = *vals["config"]
	}
	if path != "" {
		if err := c.loadFile(path); err != nil {
			return nil, err
		}
		c.ConfigFile = path
	}
	for _, s := range settings {
		if v := getenv(s.env); v != "" && s.flag != "config" {
			if err := s.set(c, v); err != nil {
				return nil, fmt.Errorf("%s: %v", s.env, err)
			}
		}
	}
	for _, s := range settings {
		if given[s.flag] && s.flag != "config" {
			if err := s.set(c, *vals[s.flag]); err != nil {
				return nil, fmt.Errorf("--%s: %v", s.flag, err)
			}
		}
	}
	return c, c.Validate()
}

// Usage prints every flag with its environment variable and default.
func Usage(out io.Writer) {
	fmt.Fprintf(out, "Usage: umsd [flags]\n\nEvery flag can also be set by its environment variable or, by the flag name, in the --config file.\nFlags beat environment beats file beats defaults.\n\n")
	for _, s := range settings {
		def := s.def
		if def == "" {
			def = "none"
		}
		fmt.Fprintf(out, "  --%s %s\n      %s\n      env %s, default %s\n", s.flag, s.meta, s.help, s.env, def)
	}
}

// commandLineOnly tells the settings a config file cannot hold: the file's
// own name and --check-config.
func commandLineOnly(flag string) bool { return flag == "config" || flag == "check-config" }

func (c *Config) loadFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: expected a mapping of settings", path, root.Line)
	}
	byFlag := make(map[string]setting, len(settings))
	for _, s := range settings {
		byFlag[s.flag] = s
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Value == "gateways" {
			if v.Kind != yaml.SequenceNode {
				return fmt.Errorf("%s:%d: gateways needs a list", path, v.Line)
			}
			if c.Gateways, err = yaml.Marshal(v); err != nil {
				return fmt.Errorf("%s:%d: gateways: %v", path, v.Line, err)
			}
			c.GatewaysAt = fmt.Sprintf("%s:%d", path, v.Line)
			continue
		}
		s, ok := byFlag[k.Value]
		if !ok || commandLineOnly(k.Value) {
			return fmt.Errorf("%s:%d: unknown setting %q", path, k.Line, k.Value)
		}
		if v.Kind != yaml.ScalarNode {
			return fmt.Errorf("%s:%d: setting %q needs a single value", path, v.Line, k.Value)
		}
		if err := s.set(c, v.Value); err != nil {
			return fmt.Errorf("%s:%d: %s: %v", path, v.Line, k.Value, err)
		}
	}
	return nil
}

// Validate checks the values.
func (c *Config) Validate() error {
	var errs []string
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "warning", "error":
	default:
		errs = append(errs, fmt.Sprintf("log-level: unknown level %q", c.LogLevel))
	}
	if c.AMQPFrameMax < 4096 {
		errs = append(errs, "amqp-frame-max: must be at least 4096")
	}
	if c.AMQPChannelMax < 1 || c.AMQPChannelMax > 65535 {
		errs = append(errs, "amqp-channel-max: must be between 1 and 65535")
	}
	if c.MaxMessageSize < 1 {
		errs = append(errs, "max-message-size: must be positive")
	}
	if c.LoginFailureDelay < 0 || c.LoginFailureDelay > 5*time.Second {
		errs = append(errs, "login-failure-delay: must be between 0 and 5s (within the handshake timeouts)")
	}
	if c.DataDir == "" {
		errs = append(errs, "data-dir: must not be empty")
	}
	if c.ConsoleRefresh < 100*time.Millisecond {
		errs = append(errs, "console-refresh: must be at least 100ms")
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, "tls-cert-file, tls-key-file: set both or neither")
	}
	if c.TLSVerifyPeer && c.TLSCAFile == "" {
		errs = append(errs, "tls-verify-peer: needs tls-ca-file")
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

package broker

import (
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/redis/go-redis/v9"
	"gopkg.in/yaml.v3"

	"github.com/unifiedms/ums/channels/email"
	"github.com/unifiedms/ums/channels/gateway"
	"github.com/unifiedms/ums/channels/push"
	"github.com/unifiedms/ums/channels/sms"
	"github.com/unifiedms/ums/channels/webhook"
	"github.com/unifiedms/ums/config"
	"github.com/unifiedms/ums/core/store"
	"github.com/unifiedms/ums/notify"
	"github.com/unifiedms/ums/notify/memstore"
	"github.com/unifiedms/ums/notify/pipeline"
	"github.com/unifiedms/ums/notify/redisstore"
)

// notifyParts are what notification delivery holds open.
type notifyParts struct {
	pipe  *pipeline.Pipeline
	meta  *store.Meta
	mem   *memstore.Store
	redis *redis.Client
	close []func() error
}

// buildNotify builds notification delivery from the configuration: the
// embedded guards (and Redis in front of them when --redis-url is set), the
// configured channels' senders, and the pipeline.
func (b *Broker) buildNotify(fsys store.FS) (*notifyParts, error) {
	cfg := b.cfg
	np := &notifyParts{}
	fail := func(err error) (*notifyParts, error) {
		np.shutdown()
		return nil, err
	}
	dir := filepath.Join(cfg.DataDir, "notify")
	var err error
	if np.meta, err = store.OpenMeta(fsys, filepath.Join(dir, "settings")); err != nil {
		return fail(fmt.Errorf("notification settings: %w", err))
	}
	np.close = append(np.close, np.meta.Close)
	if np.mem, err = memstore.Open(filepath.Join(dir, "guards"), memstore.Options{FS: fsys, Clock: b.Core.Clock(), Logger: b.log}); err != nil {
		return fail(fmt.Errorf("notification guards: %w", err))
	}
	np.close = append(np.close, np.mem.Close)
	var guards notify.Guards = np.mem
	var health func() (bool, string)
	if cfg.RedisURL != "" {
		if np.redis, err = redisstore.NewClient(cfg.RedisURL); err != nil {
			return fail(fmt.Errorf("--redis-url: %w", err))
		}
		np.close = append(np.close, np.redis.Close)
		f := notify.NewFailover(redisstore.New(np.redis, b.Core.Clock()), np.mem, notify.FailoverOptions{
			FailOpen: cfg.RedisFailOpen, Clock: b.Core.Clock(), Logger: b.log})
		guards, health = f, f.Healthy
	}
	o := pipeline.Options{
		Broker: b.Core, Users: b.Users, Meta: np.meta, Guards: guards, GuardHealth: health,
		HistoryDir: filepath.Join(dir, "history"), FS: fsys,
		Senders:      map[string]notify.Sender{},
		Address:      map[string]func(string) error{notify.ChannelSMS: notify.ValidatePhone},
		MQTTExchange: cfg.MQTTExchange,
		MaxAttempts:  cfg.NotifyMaxAttempts,
		Backoff:      notify.Backoff{Base: cfg.NotifyBackoffBase, Max: cfg.NotifyBackoffMax},
		DedupTTL:     cfg.NotifyDedupTTL,
		SendTimeout:  cfg.NotifySendTimeout,
		Logger:       b.log,
		OnEvent:      b.Metrics.NotificationEvent,
		OnSend:       b.Metrics.NotificationSend,
	}
	if err := channelSenders(cfg, b.Core.Clock().Now, &o, np); err != nil {
		return fail(err)
	}
	if np.pipe, err = pipeline.New(o); err != nil {
		return fail(err)
	}
	return np, nil
}

// channelSenders parses the notification limits and worker counts into o
// and adds the senders of the configured channels; what they hold open is
// added to np's closers. It opens no connection.
func channelSenders(cfg *config.Config, now func() time.Time, o *pipeline.Options, np *notifyParts) error {
	var err error
	for _, l := range []struct {
		flag, v string
		dst     *map[string]notify.Limit
	}{{"--notify-rate-limit", cfg.NotifyRateLimit, &o.RateLimits}, {"--notify-recipient-limit", cfg.NotifyRecipientLimit, &o.RecipientLimits},
		{"--notify-tenant-limit", cfg.NotifyTenantLimit, &o.TenantLimits}} {
		if *l.dst, err = notify.ParseLimits(l.v); err != nil {
			return fmt.Errorf("%s: %w", l.flag, err)
		}
	}
	if o.Workers, err = notify.ParseCounts(cfg.NotifyWorkers); err != nil {
		return fmt.Errorf("--notify-workers: %w", err)
	}
	if cfg.SMTPURL != "" {
		s, err := email.New(email.Config{URL: cfg.SMTPURL, TLS: cfg.SMTPTLS, From: cfg.SMTPFrom})
		if err != nil {
			return fmt.Errorf("email channel: %w", err)
		}
		o.Senders[notify.ChannelEmail] = s
		o.Address[notify.ChannelEmail] = email.ValidateAddress
	}
	if cfg.WebhookSecret != "" {
		s, err := webhook.New(webhook.Config{Secret: []byte(cfg.WebhookSecret), Timeout: cfg.WebhookTimeout,
			AllowHTTP: cfg.WebhookAllowHTTP, AllowPrivate: cfg.WebhookAllowPrivate, Now: now})
		if err != nil {
			return fmt.Errorf("webhook channel: %w", err)
		}
		np.close = append(np.close, s.Close)
		o.Senders[notify.ChannelWebhook] = s
		o.Address[notify.ChannelWebhook] = s.ValidateURL
	}
	return providerSenders(cfg, now, o, np)
}

// providerSenders adds the sms (Twilio), push and gateway channels that
// are configured.
func providerSenders(cfg *config.Config, now func() time.Time, o *pipeline.Options, np *notifyParts) error {
	if o.Check == nil {
		o.Check = map[string]func(*notify.Notification) error{}
	}
	if cfg.TwilioAccountSID != "" {
		sc := sms.Config{AccountSID: cfg.TwilioAccountSID, AuthToken: cfg.TwilioAuthToken, From: cfg.TwilioFrom,
			MessagingServiceSID: cfg.TwilioMessagingServiceSID, MaxSegments: cfg.SMSMaxSegments,
			BaseURL: cfg.TwilioBaseURL, Now: now}
		if cfg.PublicURL != "" {
			sc.StatusCallback = sms.CallbackURL(cfg.PublicURL)
		}
		s, err := sms.New(sc)
		if err != nil {
			return fmt.Errorf("sms channel: %w", err)
		}
		np.close = append(np.close, s.Close)
		o.Senders[notify.ChannelSMS] = s
		o.Address[notify.ChannelSMS] = sms.ValidateNumber
		maxSeg := cfg.SMSMaxSegments
		o.Check[notify.ChannelSMS] = func(n *notify.Notification) error {
			if n.Content == nil || len(n.Content.Media) > 0 {
				return nil // templates are checked when rendered; MMS has no segments
			}
			if err := sms.CheckSegments(n.Content.Text, maxSeg); err != nil {
				return &notify.InvalidError{Field: "content.text", Reason: err.Error()}
			}
			return nil
		}
	}
	var pc push.Config
	if cfg.FCMCredentials != "" {
		pc.FCM = &push.FCMConfig{CredentialsFile: cfg.FCMCredentials, ProjectID: cfg.FCMProjectID, BaseURL: cfg.FCMEndpoint}
	}
	if cfg.WebPushVAPIDPrivateKey != "" {
		pc.WebPush = &push.WebPushConfig{VAPIDPublicKey: cfg.WebPushVAPIDPublicKey, VAPIDPrivateKey: cfg.WebPushVAPIDPrivateKey,
			Subject: cfg.WebPushSubject}
	}
	if cfg.APNsKeyFile != "" {
		pc.APNs = &push.APNsConfig{KeyFile: cfg.APNsKeyFile, KeyID: cfg.APNsKeyID, TeamID: cfg.APNsTeamID, Topic: cfg.APNsTopic,
			Production: cfg.APNsProduction, Host: cfg.APNsEndpoint}
	}
	if pc.FCM != nil || pc.WebPush != nil || pc.APNs != nil {
		pc.Now = now
		s, err := push.New(pc)
		if err != nil {
			return fmt.Errorf("push channel: %w", err)
		}
		np.close = append(np.close, s.Close)
		o.Senders[notify.ChannelPush] = s
		o.Address[notify.ChannelPush] = func(a string) error { return s.ValidateTarget([]byte(a)) }
	}
	if len(cfg.Gateways) > 0 {
		var gws []gateway.Config
		if err := yaml.Unmarshal(cfg.Gateways, &gws); err != nil {
			return fmt.Errorf("%s: gateways: %w", cfg.GatewaysAt, err)
		}
		for i, gc := range gws {
			if _, dup := o.Senders[gc.Name]; dup {
				return fmt.Errorf("%s: gateways[%d]: channel %q is defined twice", cfg.GatewaysAt, i, gc.Name)
			}
			s, err := gateway.New(gc)
			if err != nil {
				return fmt.Errorf("%s: gateways[%d]: %w", cfg.GatewaysAt, i, err)
			}
			np.close = append(np.close, s.Close)
			o.Senders[gc.Name] = s
			o.Address[gc.Name] = notify.ValidatePhone
		}
	}
	return nil
}

// twilioCallback serves POST /api/v1/callbacks/twilio: Twilio's status
// callbacks, verified with the auth token (a forged one gets 403 and
// changes nothing), update the notification and publish its event.
func (b *Broker) twilioCallback(w http.ResponseWriter, r *http.Request) {
	cfg := b.cfg
	if cfg.TwilioAuthToken == "" || cfg.PublicURL == "" {
		http.Error(w, "sms status callbacks are not configured (--twilio-auth-token, --public-url)", http.StatusNotFound)
		return
	}
	cb, err := sms.ParseCallback(r, cfg.TwilioAuthToken, cfg.PublicURL)
	switch {
	case errors.Is(err, sms.ErrSignature):
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if cb.Final() {
		status, errText := notify.StatusDelivered, ""
		if cb.Failed() {
			status, errText = notify.StatusFailed, cb.MessageStatus
			if cb.ErrorCode != 0 {
				errText += fmt.Sprintf(" (Twilio error %d)", cb.ErrorCode)
			}
		}
		b.notify.pipe.ProviderReport(sms.Provider, cb.MessageSid, status, errText)
	}
	w.WriteHeader(http.StatusNoContent)
}

// shutdown stops the pipeline and closes the stores, newest first.
func (np *notifyParts) shutdown() error {
	if np == nil {
		return nil
	}
	if np.pipe != nil {
		np.pipe.Close()
	}
	var errs []error
	for i := len(np.close) - 1; i >= 0; i-- {
		errs = append(errs, np.close[i]())
	}
	np.close = nil
	return errors.Join(errs...)
}

package broker

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/redis/go-redis/v9"

	"github.com/unifiedms/ums/channels/email"
	"github.com/unifiedms/ums/channels/webhook"
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
		Senders:      map[string]notify.Sender{},
		Address:      map[string]func(string) error{notify.ChannelSMS: notify.ValidatePhone},
		MQTTExchange: cfg.MQTTExchange,
		MaxAttempts:  cfg.NotifyMaxAttempts,
		Backoff:      notify.Backoff{Base: cfg.NotifyBackoffBase, Max: cfg.NotifyBackoffMax},
		DedupTTL:     cfg.NotifyDedupTTL,
		SendTimeout:  cfg.NotifySendTimeout,
		Logger:       b.log,
	}
	for _, l := range []struct {
		flag, v string
		dst     *map[string]notify.Limit
	}{{"--notify-rate-limit", cfg.NotifyRateLimit, &o.RateLimits}, {"--notify-recipient-limit", cfg.NotifyRecipientLimit, &o.RecipientLimits},
		{"--notify-tenant-limit", cfg.NotifyTenantLimit, &o.TenantLimits}} {
		if *l.dst, err = notify.ParseLimits(l.v); err != nil {
			return fail(fmt.Errorf("%s: %w", l.flag, err))
		}
	}
	if o.Workers, err = notify.ParseCounts(cfg.NotifyWorkers); err != nil {
		return fail(fmt.Errorf("--notify-workers: %w", err))
	}
	if cfg.SMTPURL != "" {
		s, err := email.New(email.Config{URL: cfg.SMTPURL, TLS: cfg.SMTPTLS, From: cfg.SMTPFrom})
		if err != nil {
			return fail(fmt.Errorf("email channel: %w", err))
		}
		o.Senders[notify.ChannelEmail] = s
		o.Address[notify.ChannelEmail] = email.ValidateAddress
	}
	if cfg.WebhookSecret != "" {
		s, err := webhook.New(webhook.Config{Secret: []byte(cfg.WebhookSecret), Timeout: cfg.WebhookTimeout,
			AllowHTTP: cfg.WebhookAllowHTTP, AllowPrivate: cfg.WebhookAllowPrivate, Now: b.Core.Clock().Now})
		if err != nil {
			return fail(fmt.Errorf("webhook channel: %w", err))
		}
		np.close = append(np.close, s.Close)
		o.Senders[notify.ChannelWebhook] = s
		allowHTTP, allowPrivate := cfg.WebhookAllowHTTP, cfg.WebhookAllowPrivate
		o.Address[notify.ChannelWebhook] = func(u string) error { return webhook.ValidateURL(u, allowHTTP, allowPrivate) }
	}
	if np.pipe, err = pipeline.New(o); err != nil {
		return fail(err)
	}
	return np, nil
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

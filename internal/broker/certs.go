package broker

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"
)

// certPollInterval is how often the certificate files are checked for a
// change; SIGHUP reloads them at once.
const certPollInterval = 3 * time.Second

// certHolder holds the TLS listeners' certificate, key and CA pool, and
// swaps them when the files change. Handshakes read the current set with
// one atomic load (GetCertificate, GetConfigForClient), so a reload
// affects new connections only: open ones keep the session they made.
type certHolder struct {
	certFile, keyFile, caFile string
	verifyPeer                bool
	log                       *slog.Logger

	cur atomic.Pointer[certSet]
	// failed is the stamp of files that did not load, so a broken file is
	// reported once, not at every poll; watch's goroutine only.
	failed string
}

// certSet is one loaded generation of the files.
type certSet struct {
	cert  *tls.Certificate
	pool  *x509.CertPool // nil without a CA file
	stamp string         // sizes and modification times of the files
	conf  *tls.Config    // the per-handshake configuration built from them
}

func newCertHolder(certFile, keyFile, caFile string, verifyPeer bool, log *slog.Logger) (*certHolder, error) {
	h := &certHolder{certFile: certFile, keyFile: keyFile, caFile: caFile, verifyPeer: verifyPeer, log: log}
	if err := h.Reload(); err != nil {
		return nil, err
	}
	return h, nil
}

// stamp tells whether the files may have changed since the last load.
func (h *certHolder) stamp() string {
	var b bytes.Buffer
	for _, f := range []string{h.certFile, h.keyFile, h.caFile} {
		if f == "" {
			continue
		}
		if fi, err := os.Stat(f); err == nil {
			fmt.Fprintf(&b, "%s:%d:%d;", f, fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return b.String()
}

// Reload reads the files again. On an error the previous certificate
// stays in use.
func (h *certHolder) Reload() error {
	stamp := h.stamp()
	cert, err := tls.LoadX509KeyPair(h.certFile, h.keyFile)
	if err != nil {
		return fmt.Errorf("tls certificate: %w", err)
	}
	if cert.Leaf == nil && len(cert.Certificate) > 0 {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return fmt.Errorf("tls certificate: %w", err)
		}
	}
	s := &certSet{cert: &cert, stamp: stamp}
	if h.caFile != "" {
		pem, err := os.ReadFile(h.caFile)
		if err != nil {
			return fmt.Errorf("tls CA file: %w", err)
		}
		s.pool = x509.NewCertPool()
		if !s.pool.AppendCertsFromPEM(pem) {
			return errors.New("tls CA file: no PEM certificate in " + h.caFile)
		}
	}
	s.conf = h.configFor(s)
	h.cur.Store(s)
	return nil
}

// reloadIfChanged reloads when the files' sizes or times have changed.
func (h *certHolder) reloadIfChanged() {
	stamp := h.stamp()
	if s := h.cur.Load(); s != nil && stamp == s.stamp || stamp == h.failed {
		return
	}
	if err := h.Reload(); err != nil {
		h.failed = stamp
		h.log.Error("TLS certificate reload failed; keeping the previous one", "err", err)
		return
	}
	h.failed = ""
	h.log.Info("TLS certificate reloaded", "serial", h.cur.Load().cert.Leaf.SerialNumber.String())
}

// watch polls the files until stop is closed; a value on hup reloads at
// once.
func (h *certHolder) watch(stop <-chan struct{}, hup <-chan os.Signal) {
	t := time.NewTicker(certPollInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-hup:
			if err := h.Reload(); err != nil {
				h.log.Error("TLS certificate reload failed; keeping the previous one", "err", err)
				continue
			}
			h.log.Info("TLS certificate reloaded on SIGHUP", "serial", h.cur.Load().cert.Leaf.SerialNumber.String())
		case <-t.C:
			h.reloadIfChanged()
		}
	}
}

// configFor is the configuration handshakes use with set s: TLS 1.2 or
// later, and for 1.2 only AEAD suites with forward secrecy (TLS 1.3
// suites are not configurable and all modern).
func (h *certHolder) configFor(s *certSet) *tls.Config {
	c := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{*s.cert},
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
	}
	if s.pool != nil {
		c.ClientCAs = s.pool
		c.ClientAuth = tls.VerifyClientCertIfGiven
		if h.verifyPeer {
			c.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return c
}

// Config is the listener configuration: every handshake takes the
// current certificate and CA pool.
func (h *certHolder) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return h.cur.Load().conf, nil
		},
	}
}

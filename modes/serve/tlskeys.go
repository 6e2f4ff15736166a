package serve

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"qchat/protocol"
)

// The server's TLS key and certificate: its own (made in the data folder
// on first start, kept for good) or one an admin gives (--tls-cert,
// --tls-key), read again on SIGHUP.

// The server's own key and its self-signed certificate, in the data folder.
const (
	ownKeyFile  = "server.key"
	ownCertFile = "server.crt"
)

// keyring holds the certificate the server presents. reload swaps it
// atomically: handshakes in progress keep the one they started with.
type keyring struct {
	certPath, keyPath string
	own               bool   // the server's own key in the data folder (made when missing)
	name              string // for a certificate made here
	cur               atomic.Pointer[tls.Certificate]
}

// newKeyring loads the certificate --tls-cert/--tls-key name, or the
// server's own from the data folder, making it when it is missing.
func newKeyring(cfg Config) (*keyring, error) {
	k := &keyring{certPath: cfg.TLSCert, keyPath: cfg.TLSKey, name: cfg.Name}
	if (k.certPath == "") != (k.keyPath == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	if k.certPath == "" {
		k.own = true
		k.certPath, k.keyPath = filepath.Join(cfg.Data, ownCertFile), filepath.Join(cfg.Data, ownKeyFile)
	}
	if err := k.reload(); err != nil {
		return nil, err
	}
	return k, nil
}

// reload reads the certificate and key again. On failure the one in use
// stays and the error says why.
func (k *keyring) reload() error {
	if k.own {
		if err := ensureOwnKey(k.certPath, k.keyPath, k.name); err != nil {
			return err
		}
	}
	cert, err := tls.LoadX509KeyPair(k.certPath, k.keyPath)
	if err != nil {
		return fmt.Errorf("TLS certificate: %w", err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return fmt.Errorf("TLS certificate %s: %w", k.certPath, err)
		}
	}
	k.cur.Store(&cert)
	return nil
}

// fingerprint names the key in use (protocol.Fingerprint).
func (k *keyring) fingerprint() string {
	return protocol.Fingerprint(k.cur.Load().Leaf.RawSubjectPublicKeyInfo)
}

// source says where the certificate comes from, for the log.
func (k *keyring) source() string {
	if k.own {
		return "self-signed " + k.keyPath
	}
	return k.certPath
}

// config is the TLS configuration of the server port: TLS 1.3 only, the
// current certificate at each handshake, no session tickets (nothing to
// resume: a client makes one connection and keeps it).
func (k *keyring) config() *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		SessionTicketsDisabled: true,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return k.cur.Load(), nil
		},
	}
}

// ensureOwnKey makes the server's ECDSA P-256 key (PKCS#8 PEM, 0600) when
// it is missing, and its self-signed certificate when that is missing or
// no longer matches the key. The key is never replaced: it is linked into
// place, so that two processes making it at once keep one.
func ensureOwnKey(certPath, keyPath, name string) error {
	if err := os.MkdirAll(filepath.Dir(keyPath), 0o700); err != nil {
		return fmt.Errorf("TLS key: %w", err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		keyPEM, err = makeKey(keyPath)
	}
	if err != nil {
		return fmt.Errorf("TLS key: %w", err)
	}
	if _, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil {
		return nil
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil || block.Type != "PRIVATE KEY" {
		return fmt.Errorf("TLS key %s: not a PKCS#8 PEM private key", keyPath)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return fmt.Errorf("TLS key %s: %w", keyPath, err)
	}
	signer, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return fmt.Errorf("TLS key %s: not an ECDSA key", keyPath)
	}
	return makeCert(certPath, signer, name)
}

// makeKey writes a new key to path unless one appeared meanwhile, and
// returns the key that is there.
func makeKey(path string) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	tmp, err := os.CreateTemp(filepath.Dir(path), ".server.key-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	return os.ReadFile(path)
}

// makeCert writes a self-signed certificate for key. Nobody checks its
// names or dates: clients pin the key (its fingerprint), not a CA's word.
func makeCert(path string, key *ecdsa.PrivateKey, name string) error {
	host, _ := os.Hostname()
	now := time.Now()
	tpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "qchat server " + name},
		DNSNames:              []string{"localhost"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(20, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	if host != "" && host != "localhost" {
		tpl.DNSNames = append(tpl.DNSNames, host)
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("TLS certificate: %w", err)
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("TLS certificate: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("TLS certificate: %w", err)
	}
	return nil
}

// Fingerprint returns the fingerprint of the key the server would present
// with cfg (its own, made when missing, or --tls-cert's), for
// `qchat serve --fingerprint`.
func Fingerprint(cfg Config) (string, error) {
	k, err := newKeyring(cfg)
	if err != nil {
		return "", err
	}
	return k.fingerprint(), nil
}

// ReloadTLS reads the certificate and key again (SIGHUP). On failure the
// one in use stays.
func (srv *Server) ReloadTLS() error {
	if srv.keys == nil {
		return errors.New("TLS is off (--tls=off): no certificate to reload")
	}
	if err := srv.keys.reload(); err != nil {
		return fmt.Errorf("%w; still using %s", err, *srv.fp.Load())
	}
	fp := srv.keys.fingerprint()
	srv.fp.Store(&fp)
	return nil
}

// serveReloads reloads the certificate at each value of hup (SIGHUP)
// until ctx ends.
func (srv *Server) serveReloads(ctx context.Context, hup <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := srv.ReloadTLS(); err != nil {
				srv.log.Error("SIGHUP: TLS certificate not reloaded", "err", err)
				continue
			}
			srv.log.Info("SIGHUP: TLS certificate reloaded", "cert", srv.keys.source(), "fingerprint", *srv.fp.Load())
		}
	}
}

package main

import (
	"crypto/ecdsa"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/client-go/rest"
	certutil "k8s.io/client-go/util/cert"
)

// TestLoopbackClientTrustsItsCertificate: the loopback client that
// serverConfig sets up completes a TLS handshake with the server on the
// certificate added for its server name, and with nothing else.
func TestLoopbackClientTrustsItsCertificate(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	other := &genericapiserver.SecureServingInfo{Listener: ln}
	if _, err := loopbackClient(other, time.Now()); err != nil {
		t.Fatal(err)
	}
	serving := &genericapiserver.SecureServingInfo{Listener: ln, SNICerts: other.SNICerts}
	cfg, err := loopbackClient(serving, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(serving.SNICerts) != 2 || serving.SNICerts[0] == other.SNICerts[0] {
		t.Fatalf("SNI certificates %v: want the new one first, then the one before", serving.SNICerts)
	}
	if cfg.ServerName != genericapiserver.LoopbackClientServerNameOverride || cfg.BearerToken == "" || !strings.HasPrefix(cfg.Host, "https://127.0.0.1:") {
		t.Fatalf("loopback client: server name %q, token set %v, host %q", cfg.ServerName, cfg.BearerToken != "", cfg.Host)
	}

	handshake := func(i int) error {
		certPEM, keyPEM := serving.SNICerts[i].CurrentCertKeyContent()
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		clientTLS, err := rest.TLSConfigFor(cfg)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			s, err := ln.Accept()
			if err != nil {
				done <- err
				return
			}
			defer s.Close()
			done <- tls.Server(s, &tls.Config{Certificates: []tls.Certificate{cert}}).Handshake()
		}()
		c, err := net.Dial("tcp", strings.TrimPrefix(cfg.Host, "https://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		client := tls.Client(c, clientTLS)
		err = client.Handshake()
		if err == nil {
			if _, ok := client.ConnectionState().PeerCertificates[0].PublicKey.(*ecdsa.PublicKey); !ok {
				t.Errorf("loopback certificate key %T, want ECDSA", client.ConnectionState().PeerCertificates[0].PublicKey)
			}
		}
		c.Close()
		if serverErr := <-done; err == nil && serverErr != nil {
			t.Errorf("server side of the handshake: %v", serverErr)
		}
		return err
	}
	if err := handshake(0); err != nil {
		t.Errorf("handshake on the loopback certificate: %v", err)
	}
	if err := handshake(1); err == nil {
		t.Error("handshake on another loopback certificate succeeded, want the client to trust only its own")
	}
}

// BenchmarkLoopbackCertificate: the loopback client's certificate as the
// adapter makes it, and as k8s.io/apiserver does (an RSA-2048 CA and key).
func BenchmarkLoopbackCertificate(b *testing.B) {
	b.Run("ecdsa-p256", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := loopbackCert(time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("k8s.io-apiserver-rsa-2048", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := certutil.GenerateSelfSignedCertKeyWithOptions(certutil.SelfSignedCertKeyOptions{
				Host: genericapiserver.LoopbackClientServerNameOverride, MaxAge: loopbackMaxAge,
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

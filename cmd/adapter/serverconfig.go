package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"

	"github.com/google/uuid"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	openapicommon "k8s.io/kube-openapi/pkg/common"
	"sigs.k8s.io/custom-metrics-apiserver/pkg/apiserver"
	basecmd "sigs.k8s.io/custom-metrics-apiserver/pkg/cmd"
	cmoptions "sigs.k8s.io/custom-metrics-apiserver/pkg/cmd/options"
	generatedcore "sigs.k8s.io/custom-metrics-apiserver/pkg/generated/openapi/core"
	generatedcustommetrics "sigs.k8s.io/custom-metrics-apiserver/pkg/generated/openapi/custommetrics"
	generatedexternalmetrics "sigs.k8s.io/custom-metrics-apiserver/pkg/generated/openapi/externalmetrics"
)

// loopbackMaxAge is how long the loopback client's certificate is valid,
// as k8s.io/apiserver makes it.
const loopbackMaxAge = (3*365 + 1) * 24 * time.Hour

// serverConfig builds the API server's configuration from b's flags as
// basecmd.AdapterBase.Config does, serving both metrics APIs, with one
// difference: the certificate the server presents to its own loopback
// client. k8s.io/apiserver's SecureServingOptionsWithLoopback generates it
// at every start with two RSA-2048 keys (a CA's and the certificate's),
// 10 to 150 ms each on 2 vCPUs: the largest and most variable part of the
// start after package init. This one is self-signed with one ECDSA P-256
// key, generated in well under a millisecond.
func serverConfig(b *basecmd.AdapterBase) (*apiserver.Config, error) {
	if b.OpenAPIConfig == nil {
		b.OpenAPIConfig = genericapiserver.DefaultOpenAPIConfig(openAPIDefinitions, openapinamer.NewDefinitionNamer(apiserver.Scheme))
		b.OpenAPIConfig.Info.Title, b.OpenAPIConfig.Info.Version = b.Name, "1.0.0"
	}
	if b.OpenAPIV3Config == nil {
		b.OpenAPIV3Config = genericapiserver.DefaultOpenAPIV3Config(openAPIDefinitions, openapinamer.NewDefinitionNamer(apiserver.Scheme))
		b.OpenAPIV3Config.Info.Title, b.OpenAPIV3Config.Info.Version = b.Name, "1.0.0"
	}
	b.CustomMetricsAdapterServerOptions.OpenAPIConfig = b.OpenAPIConfig
	b.CustomMetricsAdapterServerOptions.OpenAPIV3Config = b.OpenAPIV3Config
	if errs := b.Validate(); len(errs) > 0 {
		return nil, utilerrors.NewAggregate(errs)
	}
	informers, err := b.Informers()
	if err != nil {
		return nil, err
	}
	clientConfig, err := b.ClientConfig()
	if err != nil {
		return nil, err
	}
	c := genericapiserver.NewRecommendedConfig(apiserver.Codecs)
	c.ClientConfig = clientConfig
	c.SharedInformerFactory = informers
	if err := applyOptions(b.CustomMetricsAdapterServerOptions, c); err != nil {
		return nil, err
	}
	return &apiserver.Config{GenericConfig: &c.Config}, nil
}

// openAPIDefinitions are the OpenAPI definitions of the core types and of
// both metrics APIs.
func openAPIDefinitions(ref openapicommon.ReferenceCallback) map[string]openapicommon.OpenAPIDefinition {
	defs := generatedcore.GetOpenAPIDefinitions(ref)
	for _, more := range []openapicommon.GetOpenAPIDefinitions{generatedcustommetrics.GetOpenAPIDefinitions, generatedexternalmetrics.GetOpenAPIDefinitions} {
		for k, v := range more(ref) {
			defs[k] = v
		}
	}
	return defs
}

// applyOptions is options.CustomMetricsAdapterServerOptions.ApplyTo with
// the loopback certificate of serverConfig.
func applyOptions(o *cmoptions.CustomMetricsAdapterServerOptions, c *genericapiserver.RecommendedConfig) error {
	if err := o.SecureServing.MaybeDefaultWithSelfSignedCerts("localhost", nil, []net.IP{net.ParseIP("127.0.0.1")}); err != nil {
		return fmt.Errorf("error creating self-signed certificates: %w", err)
	}
	if err := o.SecureServing.SecureServingOptions.ApplyTo(&c.SecureServing); err != nil {
		return err
	}
	if c.SecureServing != nil {
		loopback, err := loopbackClient(c.SecureServing, time.Now())
		if err != nil {
			return err
		}
		c.LoopbackClientConfig = loopback
	}
	if err := o.Authentication.ApplyTo(&c.Authentication, c.SecureServing, nil); err != nil {
		return err
	}
	if err := o.Authorization.ApplyTo(&c.Authorization); err != nil {
		return err
	}
	if err := o.Audit.ApplyTo(&c.Config); err != nil {
		return err
	}
	clientset, err := kubernetes.NewForConfig(c.ClientConfig)
	if err != nil {
		return err
	}
	if err := o.Features.ApplyTo(&c.Config, clientset, c.SharedInformerFactory); err != nil {
		return err
	}
	c.OpenAPIConfig = o.OpenAPIConfig
	c.OpenAPIV3Config = o.OpenAPIV3Config
	c.EnableMetrics = o.EnableMetrics
	return nil
}

// loopbackClient adds a self-signed certificate for the loopback client's
// server name to serving's SNI certificates, ahead of any other for that
// name, and returns a client configuration that trusts it, as
// k8s.io/apiserver's SecureServingOptionsWithLoopback does.
func loopbackClient(serving *genericapiserver.SecureServingInfo, now time.Time) (*rest.Config, error) {
	certPEM, keyPEM, err := loopbackCert(now)
	if err != nil {
		return nil, fmt.Errorf("generate the loopback client's certificate: %w", err)
	}
	cert, err := dynamiccertificates.NewStaticSNICertKeyContent("self-signed loopback", certPEM, keyPEM, genericapiserver.LoopbackClientServerNameOverride)
	if err != nil {
		return nil, fmt.Errorf("load the loopback client's certificate: %w", err)
	}
	serving.SNICerts = append([]dynamiccertificates.SNICertKeyContentProvider{cert}, serving.SNICerts...)
	return serving.NewLoopbackClientConfig(uuid.New().String(), certPEM)
}

// loopbackCert returns a self-signed ECDSA P-256 certificate and key, in
// PEM, for the loopback client's server name, valid from an hour before
// now for loopbackMaxAge.
func loopbackCert(now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	name := genericapiserver.LoopbackClientServerNameOverride
	template := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: fmt.Sprintf("%s@%d", name, now.Unix())},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(loopbackMaxAge),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{name},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

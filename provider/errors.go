package provider

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hpa-signals/hpa-signals/config"
	"github.com/hpa-signals/hpa-signals/sources/kafka"
	"github.com/hpa-signals/hpa-signals/sources/prometheus"
)

// IsNoData reports whether a source error is an answer, "the source has no
// data for this", rather than a failure: the API answers it with 404 and
// the cache keeps it in place of the last value.
func IsNoData(err error) bool {
	return errors.Is(err, prometheus.ErrNoData) || errors.Is(err, kafka.ErrNoData) ||
		errors.Is(err, kafka.ErrUnknownGroup) || errors.Is(err, kafka.ErrUnknownTopic)
}

// apiError turns a source, cache or selector error into the API status the
// caller should see: no data is 404, a bad selector 400, a limit 429, and
// anything else a 503 that names the source and cause, so an HPA holds its
// replica count. Messages never carry a network address from the error
// chain (see safeMessage).
func apiError(source config.Source, what string, err error) error {
	var status apierrors.APIStatus
	var limit *LimitError
	switch {
	case errors.As(err, &status):
		return err
	case errors.As(err, &limit):
		// No Retry-After: client-go would retry a 429 that has one, up to
		// ten times, holding the HPA controller's worker meanwhile.
		return apierrors.NewTooManyRequests(fmt.Sprintf("%s: %v", what, limit), 0)
	case IsNoData(err):
		return notFound(fmt.Sprintf("%s: %s", what, safeMessage(err)))
	case errors.Is(err, prometheus.ErrInvalidSelector), errors.Is(err, kafka.ErrInvalidSelector):
		return apierrors.NewBadRequest(fmt.Sprintf("%s: %s", what, safeMessage(err)))
	case errors.Is(err, context.Canceled):
		return apierrors.NewTimeoutError(fmt.Sprintf("%s: request canceled", what), 0)
	default:
		return &sourceError{what: what, source: source, cause: err}
	}
}

func notFound(msg string) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status:  metav1.StatusFailure,
		Code:    http.StatusNotFound,
		Reason:  metav1.StatusReasonNotFound,
		Message: msg,
	}}
}

// sourceError is a failed source fetch as the API answers it: 503 with a
// message that names the source and the failure, without the network
// addresses of the error chain. Unwrap returns the full cause for the log.
type sourceError struct {
	what   string
	source config.Source
	cause  error
}

func (e *sourceError) Error() string { return e.Status().Message }

func (e *sourceError) Unwrap() error { return e.cause }

// Status implements apierrors.APIStatus.
func (e *sourceError) Status() metav1.Status {
	return apierrors.NewServiceUnavailable(fmt.Sprintf("%s: %s source failed: %s", e.what, e.source, safeMessage(e.cause))).ErrStatus
}

// detail is the full error for the log.
func (e *sourceError) detail() error {
	return fmt.Errorf("%s: %s source failed: %w", e.what, e.source, e.cause)
}

// detail returns err with everything the log should keep.
func detail(err error) error {
	var se *sourceError
	if errors.As(err, &se) {
		return se.detail()
	}
	return err
}

// safeMessage returns err's message with the parts of its chain that name
// network addresses replaced by text without them: a URL error keeps its
// method, a network error its operation and cause, a DNS error its cause.
func safeMessage(err error) string {
	msg := err.Error()
	walkChain(err, func(e error) {
		var safe string
		switch x := e.(type) { //nolint:errorlint // walkChain visits every error of the chain; this looks at one
		case *url.Error:
			safe = x.Op + " " + redactedText + ": " + safeMessageOf(x.Err)
		case *net.OpError:
			safe = strings.TrimSpace(x.Op + " " + x.Net)
			if x.Err != nil {
				safe += ": " + safeMessageOf(x.Err)
			}
		case *net.DNSError:
			safe = "DNS lookup failed: " + x.Err
		case *net.AddrError:
			safe = "bad address: " + x.Err
		case x509.HostnameError:
			safe = "x509: the server's certificate is not valid for the name the adapter dialed"
		default:
			return
		}
		msg = strings.ReplaceAll(msg, e.Error(), safe)
	})
	return msg
}

func safeMessageOf(err error) string {
	if err == nil {
		return ""
	}
	return safeMessage(err)
}

// walkChain calls f on err and everything it wraps, outermost first.
func walkChain(err error, f func(error)) {
	if err == nil {
		return
	}
	f(err)
	switch x := err.(type) { //nolint:errorlint // unwraps one level: this is the chain walk errors.As would do
	case interface{ Unwrap() error }:
		walkChain(x.Unwrap(), f)
	case interface{ Unwrap() []error }:
		for _, e := range x.Unwrap() {
			walkChain(e, f)
		}
	}
}

// redactedText replaces an address in an API error message.
const redactedText = "[redacted]"

// ipAddress matches IPv4 and bracketed IPv6 addresses, with or without a
// port: what a source error may carry outside its error chain.
var ipAddress = regexp.MustCompile(`\b\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?\b|\[[0-9A-Fa-f:.%]+\](?::\d{1,5})?`)

// AddressesOf returns the forms in which an error message may quote the
// address of a URL: the URL as given, without a trailing slash, redacted
// (user info hidden), and its host[:port]. For Options.Redact.
func AddressesOf(rawURL string) []string {
	if rawURL == "" {
		return nil
	}
	out := []string{rawURL, strings.TrimSuffix(rawURL, "/")}
	if u, err := url.Parse(rawURL); err == nil {
		out = append(out, u.Redacted(), strings.TrimSuffix(u.Redacted(), "/"), u.Host)
	}
	return out
}

// redact removes the known internal addresses (Options.Redact and the
// catalog's Kafka brokers) and any IP address from an API error message.
// A known address that is a single word (a host name without dots or
// port, such as "prometheus") is left alone, or ordinary words would go
// too; the error-chain pass of safeMessage covers those.
func (p *Provider) redact(msg string) string {
	addrs := slices.Clone(p.Redact)
	if p.Catalog != nil {
		for _, c := range p.Catalog().Kafka.Clusters {
			addrs = append(addrs, c.Brokers...)
		}
	}
	slices.SortFunc(addrs, func(a, b string) int { return cmp.Compare(len(b), len(a)) }) // a URL before its host
	for _, a := range addrs {
		if strings.ContainsAny(a, ".:/") {
			msg = strings.ReplaceAll(msg, a, redactedText)
		}
	}
	return ipAddress.ReplaceAllString(msg, redactedText)
}

// redacted returns the error the caller sees for err: an API status whose
// message and causes carry no internal address.
func (p *Provider) redacted(err error) error {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return apierrors.NewInternalError(errors.New(p.redact(safeMessage(err))))
	}
	st := status.Status()
	msg := p.redact(st.Message)
	changed := msg != st.Message
	st.Message = msg
	if st.Details != nil && len(st.Details.Causes) > 0 {
		d := *st.Details
		d.Causes = slices.Clone(d.Causes)
		for i := range d.Causes {
			m := p.redact(d.Causes[i].Message)
			changed = changed || m != d.Causes[i].Message
			d.Causes[i].Message = m
		}
		st.Details = &d
	}
	if _, direct := err.(apierrors.APIStatus); direct && !changed {
		return err
	}
	return &apierrors.StatusError{ErrStatus: st}
}

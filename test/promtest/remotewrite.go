package promtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"time"

	"github.com/klauspost/compress/snappy"
	"google.golang.org/protobuf/encoding/protowire"
)

// Series is one series to write into Prometheus with RemoteWrite: its
// labels (including __name__) and its samples in time order.
type Series struct {
	Labels  map[string]string
	Samples []Sample
}

// Sample is one value of a series at a time.
type Sample struct {
	T time.Time
	V float64
}

// Linear returns samples of a series that grows by rate per second from
// value 0 at from, one every step until to: a counter whose rate() is
// exactly rate at any time between from+window and to.
func Linear(from, to time.Time, step time.Duration, rate float64) []Sample {
	var out []Sample
	for t := from; !t.After(to); t = t.Add(step) {
		out = append(out, Sample{T: t, V: rate * t.Sub(from).Seconds()})
	}
	return out
}

// Constant returns samples of a gauge that is v from from to to, one every
// step (v may be NaN).
func Constant(from, to time.Time, step time.Duration, v float64) []Sample {
	var out []Sample
	for t := from; !t.After(to); t = t.Add(step) {
		out = append(out, Sample{T: t, V: v})
	}
	return out
}

// maxWriteBytes bounds one remote-write request, well below Prometheus'
// limits, so many series go in several requests.
const maxWriteBytes = 4 << 20

// RemoteWrite writes series into the Prometheus at base (its URL; it must
// run with the remote-write receiver, promserver.Options.RemoteWrite)
// through the remote-write protocol: a snappy-compressed protobuf
// WriteRequest per batch. Samples in the future are stored too, so a test
// can write data that stays the same for its whole run.
func RemoteWrite(ctx context.Context, base string, series []Series) error {
	var batch []byte
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := post(ctx, base+"/api/v1/write", snappy.Encode(nil, batch))
		batch = batch[:0]
		return err
	}
	for _, s := range series {
		ts := timeSeries(s)
		if len(batch)+len(ts) > maxWriteBytes {
			if err := flush(); err != nil {
				return err
			}
		}
		batch = protowire.AppendTag(batch, 1, protowire.BytesType) // WriteRequest.timeseries
		batch = protowire.AppendBytes(batch, ts)
	}
	return flush()
}

// timeSeries encodes a prometheus.TimeSeries message: labels (field 1,
// sorted by name) and samples (field 2).
func timeSeries(s Series) []byte {
	var b []byte
	names := make([]string, 0, len(s.Labels))
	for n := range s.Labels {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		var l []byte
		l = protowire.AppendTag(l, 1, protowire.BytesType)
		l = protowire.AppendString(l, n)
		l = protowire.AppendTag(l, 2, protowire.BytesType)
		l = protowire.AppendString(l, s.Labels[n])
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, l)
	}
	for _, smp := range s.Samples {
		var m []byte
		m = protowire.AppendTag(m, 1, protowire.Fixed64Type)
		m = protowire.AppendFixed64(m, math.Float64bits(smp.V))
		m = protowire.AppendTag(m, 2, protowire.VarintType)
		m = protowire.AppendVarint(m, uint64(smp.T.UnixMilli()))
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendBytes(b, m)
	}
	return b
}

func post(ctx context.Context, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("remote write: %w", err)
	}
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("remote write: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("remote write: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

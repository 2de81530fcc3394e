package pipeline

import (
	"bytes"
	"encoding/json"
	"sync"

	"github.com/unifiedms/ums/internal/jsonenc"
	"github.com/unifiedms/ums/notify"
)

// Hand-written encoders of the documents written once per notification
// step: each appends exactly what json.Marshal writes.

// scratchBufs hold documents while they are encoded; what is kept is
// copied out at its size, so that no document pays for a buffer grown by
// doubling.
var scratchBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// maxScratch is the largest scratch buffer put back in the pool.
const maxScratch = 64 << 10

// appendJSON appends j as json.Marshal encodes it.
func (j *job) appendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"id":`...)
	b = jsonenc.String(b, j.ID)
	b = append(b, `,"notification":`...)
	b, err := appendNotification(b, j.N)
	if err != nil {
		return b, err
	}
	b = append(b, `,"channels":`...)
	b = jsonenc.Strings(b, j.Channels)
	b = append(b, `,"channel_index":`...)
	b = jsonenc.Int(b, j.CI)
	b = append(b, `,"attempt":`...)
	b = jsonenc.Int(b, j.Attempt)
	b = append(b, `,"accepted_at":`...)
	b, ok := jsonenc.Time(b, j.Accepted)
	if !ok {
		return b, errTime
	}
	if j.Hops != 0 {
		b = append(b, `,"hops":`...)
		b = jsonenc.Int(b, j.Hops)
	}
	if !j.ExpiresAt.IsZero() {
		b = append(b, `,"expires_at":`...)
		if b, ok = jsonenc.Time(b, j.ExpiresAt); !ok {
			return b, errTime
		}
	}
	if j.LastError != "" {
		b = append(b, `,"last_error":`...)
		b = jsonenc.String(b, j.LastError)
	}
	b = append(b, `,"step":`...)
	b = jsonenc.Int(b, j.Step)
	return append(b, '}'), nil
}

// errTime stands for json.Marshal's error on a time it cannot encode.
var errTime = &json.UnsupportedValueError{Str: "time outside what JSON holds"}

// appendJSON appends w as json.Marshal encodes it.
func (w webhookBody) appendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"id":`...)
	b = jsonenc.String(b, w.ID)
	b = append(b, `,"attempt":`...)
	b = jsonenc.Int(b, w.Attempt)
	b = append(b, `,"content":`...)
	b = w.Content.AppendJSON(b)
	b = append(b, `,"notification":`...)
	b, err := appendNotification(b, w.Notification)
	if err != nil {
		return b, err
	}
	return append(b, '}'), nil
}

// appendNotification appends n, or null, as json.Marshal encodes it.
func appendNotification(b []byte, n *notify.Notification) ([]byte, error) {
	if n == nil {
		return append(b, "null"...), nil
	}
	return n.AppendJSON(b)
}

// encodeSized encodes with appendTo into a scratch buffer and returns a
// copy of the document's own size, for a message to keep.
func encodeSized(appendTo func([]byte) ([]byte, error)) ([]byte, error) {
	sp := scratchBufs.Get().(*[]byte)
	b, err := appendTo((*sp)[:0])
	out := bytes.Clone(b)
	putScratch(sp, b)
	return out, err
}

// putScratch gives the scratch buffer sp back, as grown to b, unless it
// grew large.
func putScratch(sp *[]byte, b []byte) {
	if cap(b) > maxScratch {
		return
	}
	*sp = b[:0]
	scratchBufs.Put(sp)
}

// jobDecoder decodes the jobs one worker takes, one after the other. A
// body in the plain form the pipeline writes is parsed by parseJob
// (jobparse.go); any other goes through one json.Decoder fed each body in
// turn: json.Unmarshal made a
// new decoder state and scanner stack for every job. A body is taken from
// the stream only when it decoded without error and nothing followed the
// value; anything else (an error, white space or data after the value, a
// body too large to keep a buffer for) is decoded again by json.Unmarshal,
// whose answer stands, and the stream starts afresh.
type jobDecoder struct {
	r   bytes.Reader
	dec *json.Decoder
	fed int64 // bytes given to dec
}

// maxStreamedJob is the largest body decoded through the kept decoder
// (whose buffer grows to the largest body it read).
const maxStreamedJob = 16 << 10

// decode decodes body into j, which is the zero job.
func (d *jobDecoder) decode(body []byte, j *job) error {
	if parseJob(body, j) {
		return nil
	}
	*j = job{}
	if len(body) <= maxStreamedJob {
		if d.dec == nil {
			d.dec, d.fed = json.NewDecoder(&d.r), 0
		}
		d.r.Reset(body)
		d.fed += int64(len(body))
		if d.dec.Decode(j) == nil {
			d.dec.More() // reads on to the next non-space byte, if any
			if d.dec.InputOffset() == d.fed {
				return nil
			}
		}
		d.dec = nil
		*j = job{}
	}
	return json.Unmarshal(body, j)
}

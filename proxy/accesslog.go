package proxy

import (
	"io"
	"math"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// accessLine is what one access-log line says. Its fields are the ones
// ServeHTTP gives zap when Options.AccessLogWriter is not set.
type accessLine struct {
	method, path, originalPath, route string
	status                            int
	reason                            string
	duration                          time.Duration
	userID, requestID, traceID        string
}

// accessTimeLayout is zapcore.ISO8601TimeEncoder's layout.
const accessTimeLayout = "2006-01-02T15:04:05.000Z0700"

// appendAccessLine appends l as one JSON line, byte for byte what zap's
// JSON encoder writes for the same entry under sessiongate's encoder
// configuration (zap.NewProductionEncoderConfig with TimeKey "ts" and
// ISO 8601 times): level, ts, logger (when name is not empty), msg, then
// the fields in ServeHTTP's order, trace_id only when set. The test
// TestAccessLineMatchesZap holds the two together, hostile strings
// included.
func appendAccessLine(b []byte, now time.Time, name string, l *accessLine) []byte {
	b = append(b, `{"level":"info","ts":"`...)
	b = now.AppendFormat(b, accessTimeLayout)
	b = append(b, '"')
	if name != "" {
		b = append(b, `,"logger":`...)
		b = appendJSONString(b, name)
	}
	b = append(b, `,"msg":"request","method":`...)
	b = appendJSONString(b, l.method)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, l.path)
	b = append(b, `,"original_path":`...)
	b = appendJSONString(b, l.originalPath)
	b = append(b, `,"route":`...)
	b = appendJSONString(b, l.route)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(l.status), 10)
	b = append(b, `,"reason":`...)
	b = appendJSONString(b, l.reason)
	b = append(b, `,"duration":`...)
	b = appendJSONFloat(b, float64(l.duration)/float64(time.Second))
	b = append(b, `,"user_id":`...)
	b = appendJSONString(b, l.userID)
	b = append(b, `,"request_id":`...)
	b = appendJSONString(b, l.requestID)
	if l.traceID != "" {
		b = append(b, `,"trace_id":`...)
		b = appendJSONString(b, l.traceID)
	}
	return append(b, "}\n"...)
}

// appendJSONFloat is zap's JSON float: NaN and infinities as strings.
func appendJSONFloat(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"+Inf"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Inf"`...)
	}
	return strconv.AppendFloat(b, f, 'f', -1, 64)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string the way zap escapes it: '"'
// and '\\' escaped, \n \r \t by name, every other byte below 0x20 as
// \u00XX, invalid UTF-8 as \ufffd, everything else as it is. A client's
// path can therefore neither end the string nor start a new line.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	last := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
			b = append(b, s[last:i]...)
			b = append(b, `\ufffd`...)
			i++
			last = i
			continue
		}
		if c >= 0x20 && c != '\\' && c != '"' {
			i++
			continue
		}
		b = append(b, s[last:i]...)
		switch c {
		case '\\', '"':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		last = i
	}
	b = append(b, s[last:]...)
	return append(b, '"')
}

// accessWriter writes access-log lines to Options.AccessLogWriter.
type accessWriter struct {
	w    io.Writer
	name string // the "logger" value: Options.Logger's name
	bufs sync.Pool
}

func newAccessWriter(w io.Writer, name string) *accessWriter {
	a := &accessWriter{w: w, name: name}
	a.bufs.New = func() any { b := make([]byte, 0, 512); return &b }
	return a
}

// write encodes l and writes it with one Write call. A write error is
// dropped (zap would report it to its ErrorOutput): an access line is not
// worth failing or slowing a request for, and the binary's writer is
// stderr, where there is nowhere else to report it.
func (a *accessWriter) write(l *accessLine) {
	bp := a.bufs.Get().(*[]byte)
	b := appendAccessLine((*bp)[:0], time.Now(), a.name, l)
	_, _ = a.w.Write(b)
	if cap(b) <= 4<<10 { // a huge line (a long path) is not kept
		*bp = b
		a.bufs.Put(bp)
	}
}

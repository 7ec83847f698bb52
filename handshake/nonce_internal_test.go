package handshake

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// The per-client buckets are bounded: a flood of distinct keys keeps at
// most nonceClientCacheSize of them, each key at most maxClientKeyLen
// bytes. A key that was dropped comes back with a full budget, which is as
// generous as the limiter ever is to a new client.
func TestNonceClientBucketsBounded(t *testing.T) {
	t.Parallel()
	l := newLimiter(5, 20, 0.1, 3)
	now := time.Unix(1_760_000_000, 0)
	for i := range 3 * nonceClientCacheSize {
		l.take(fmt.Sprintf("198.51.%d.%d", i/256, i%256)+strings.Repeat("x", 1000), now)
		now = now.Add(time.Millisecond)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.clients.Len(); n != nonceClientCacheSize {
		t.Errorf("%d client buckets, want %d", n, nonceClientCacheSize)
	}
	for _, k := range l.clients.Keys() {
		if len(k) > maxClientKeyLen {
			t.Fatalf("a key of %d bytes is kept", len(k))
		}
	}
}

package proxy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/proxy"
)

// eventLog is an Observer that keeps the events.
type eventLog struct {
	mu  sync.Mutex
	evs []proxy.Event
}

func (o *eventLog) Observe(ev proxy.Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.evs = append(o.evs, ev)
}

func (o *eventLog) statuses() []int {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []int
	for _, ev := range o.evs {
		out = append(out, ev.Status)
	}
	return out
}

// TestInformationalRepliesAreNotTheStatus: the status in the metrics, the
// access line and the span is the final answer the client got. An upstream's
// 100 Continue (which a client asks for with Expect: 100-continue, as curl
// does for large uploads) or 103 Early Hints precedes it and must not stand
// for it: recording the first code turned an upstream's 500 into a logged
// 100, out of every error-rate alert.
func TestInformationalRepliesAreNotTheStatus(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/hints" {
			w.Header().Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusTeapot)
			_, _ = w.Write([]byte("short and stout"))
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(up.Close)
	upURL, _ := url.Parse(up.URL)
	obs := &eventLog{}
	f := newFixture(t, func(*url.URL) []proxy.Route {
		return []proxy.Route{{Name: "app", Path: "/", Upstream: upURL, Auth: proxy.Public}}
	}, func(o *proxy.Options) {
		o.Observer = obs
		o.Transport = proxy.NewTransport(proxy.TransportOptions{})
	})
	srv := httptest.NewServer(f.proxy)
	t.Cleanup(srv.Close)
	client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: 5 * time.Second}, Timeout: 10 * time.Second}

	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/upload", strings.NewReader(strings.Repeat("x", 4096)))
	req.Header.Set("Expect", "100-continue")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("client saw %d, want the upstream's 500", resp.StatusCode)
	}
	resp, err = client.Get(srv.URL + "/hints")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot {
		t.Fatalf("client saw %d, want the upstream's 418", resp.StatusCode)
	}
	got := obs.statuses()
	if len(got) != 2 || got[0] != http.StatusInternalServerError || got[1] != http.StatusTeapot {
		t.Fatalf("observed statuses %v, want [500 418]", got)
	}
}

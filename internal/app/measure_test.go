package app_test

import (
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/config"
)

// TestMeasureCachedModeBackendCalls measures (it does not assert a figure)
// how many Backend API calls session_check: cached makes in 10 s at 1,000
// req/s spread over 100 sessions with the default session_ttl (10 s). It
// sends real HTTP requests through the proxy on loopback and counts the
// calls at the fake Clerk instance. Run it with
//
//	SESSIONGATE_MEASURE=1 go test -run TestMeasureCachedModeBackendCalls -v ./internal/app/
func TestMeasureCachedModeBackendCalls(t *testing.T) {
	if os.Getenv("SESSIONGATE_MEASURE") == "" {
		t.Skip("a 10 s measurement: set SESSIONGATE_MEASURE=1 to run it")
	}
	h := start(t, func(c *config.Config, _ *clerktest.Instance) {
		c.Routes = []config.Route{{Path: "/", SessionCheck: config.SessionCheckCached}}
		c.Cache.SessionTTL = config.Defaults().Cache.SessionTTL
		c.Log.Access = new(bool)
	}, func(w http.ResponseWriter, r *http.Request) {})
	h.waitReady(t, 200)
	tokens, sids := make([]string, 100), make([]string, 100)
	for i := range tokens {
		sids[i] = h.inst.CreateSession(fmt.Sprintf("user_m%d", i))
		tokens[i] = h.inst.MustMint(t, clerktest.WithSession(sids[i]))
	}
	h.inst.ResetCounters()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
	const perTick, tickEvery, duration = 10, 10 * time.Millisecond, 10 * time.Second // 1,000 req/s
	var sent, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	tick := time.NewTicker(tickEvery)
	defer tick.Stop()
	for i := 0; time.Since(start) < duration; {
		<-tick.C
		for j := 0; j < perTick; j, i = j+1, i+1 {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				req, _ := http.NewRequest("GET", h.proxyURL+"/x", nil)
				req.Header.Set("Authorization", "Bearer "+tokens[i%len(tokens)])
				resp, err := client.Do(req)
				sent.Add(1)
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
				}
				if resp != nil {
					resp.Body.Close()
				}
			}(i)
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	atFake := 0
	for i := range tokens {
		atFake += h.inst.Requests("/v1/sessions/" + sids[i])
	}
	t.Logf("sent %d requests in %v (%.0f req/s) over %d sessions, %d failed; Backend API calls: %d (counted at the fake Clerk)",
		sent.Load(), elapsed.Round(time.Millisecond), float64(sent.Load())/elapsed.Seconds(), len(tokens), failed.Load(), atFake)
}

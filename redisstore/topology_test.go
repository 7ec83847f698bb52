package redisstore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/internal/redistest"
	"github.com/sessiongate/sessiongate/internal/testwait"
)

// Revocations through Sentinel: a master, one sentinel watching it, and two
// replicas that know only the sentinel's address.
func TestSentinelTopology(t *testing.T) {
	t.Parallel()
	master := redistest.Start(t)
	conf := filepath.Join(t.TempDir(), "sentinel.conf")
	body := fmt.Sprintf("sentinel monitor mymaster 127.0.0.1 %d 1\nsentinel down-after-milliseconds mymaster 5000\n", master.Port())
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	sentinel := redistest.StartWith(t, conf, []string{"--sentinel"})
	url := fmt.Sprintf("redis+sentinel://%s/0?master_name=mymaster", sentinel.Addr())
	a := newReplica(t, url, nil)
	b := newReplica(t, url, nil)
	a.waitSynced(t)
	b.waitSynced(t)
	a.deny.Deny("sess_viasentinel")
	testwait.Eventually(t, "B to apply through Sentinel", func() bool { return b.deny.Denied("sess_viasentinel") })
	if rawClient(t, master).Exists(context.Background(), "sessiongate:deny:sess_viasentinel").Val() != 1 {
		t.Fatal("not written to the master Sentinel names")
	}
}

// Revocations and the shared set on a Redis Cluster (one node holding every
// slot: the cluster client, its routing and the per-master SCAN are what is
// exercised).
func TestClusterTopology(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	node := redistest.StartWith(t, "", []string{"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf")})
	raw := rawClient(t, node)
	ctx := context.Background()
	if err := raw.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", "0", "16383").Err(); err != nil {
		t.Fatal(err)
	}
	took := testwait.Until(t, 10*time.Second, "the cluster to be ok", func() bool {
		info, _ := raw.ClusterInfo(ctx).Result()
		return strings.Contains(info, "cluster_state:ok")
	})
	t.Logf("cluster ok after %v", took)
	url := "redis+cluster://" + node.Addr()
	a := newReplica(t, url, nil)
	a.waitSynced(t)
	for i := range 50 { // keys in many slots
		a.deny.Deny(fmt.Sprintf("sess_cluster%d", i))
	}
	testwait.Eventually(t, "A to write", func() bool { return a.store.Stats().Published == 50 })
	b := newReplica(t, url, nil)
	b.waitSynced(t)
	for i := range 50 {
		if !b.deny.Denied(fmt.Sprintf("sess_cluster%d", i)) {
			t.Fatalf("sess_cluster%d not loaded from the cluster", i)
		}
	}
	b.deny.Deny("sess_fromB")
	testwait.Eventually(t, "A to apply through the cluster", func() bool { return a.deny.Denied("sess_fromB") })
}

// The ACL docs/scaling.md gives is enough: a user limited to it shares
// revocations, the status cache and webhook ids.
func TestDocumentedACL(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	raw := rawClient(t, srv)
	acl := strings.Fields("on >gatepw ~sessiongate:* &sessiongate:* +get +set +eval +del +exists +scan +publish +subscribe +ping +hello +client|setname")
	args := []any{"ACL", "SETUSER", "gate"}
	for _, a := range acl {
		args = append(args, a)
	}
	if err := raw.Do(context.Background(), args...).Err(); err != nil {
		t.Fatal(err)
	}
	url := "redis://gate:gatepw@" + srv.Addr()
	a := newReplica(t, url, nil)
	b := newReplica(t, url, nil)
	a.waitSynced(t)
	b.waitSynced(t)
	a.deny.Deny("sess_acl")
	testwait.Eventually(t, "B to apply under the ACL", func() bool { return b.deny.Denied("sess_acl") })
	clerk := &countingLookup{status: "active"}
	for _, r := range []*replica{a, b} {
		if st, err := r.store.StatusLookup(clerk, time.Minute).SessionStatus(context.Background(), "sess_acl2"); err != nil || st != "active" {
			t.Fatalf("%q %v", st, err)
		}
	}
	if !a.store.Seen(nil).Claim("msg_acl", time.Minute) || b.store.Seen(nil).Claim("msg_acl", time.Minute) {
		t.Fatal("webhook ids not shared under the ACL")
	}
	if clerk.calls.Load() != 1 {
		t.Fatalf("%d lookups, want 1", clerk.calls.Load())
	}
	for _, r := range []*replica{a, b} {
		if st := r.store.Stats(); st.CacheFallbacks != 0 || st.PublishErrors != 0 || st.WebhookFallbacks != 0 || st.ResyncErrors != 0 {
			t.Fatalf("something was refused: %+v", st)
		}
	}
}

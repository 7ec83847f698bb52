package config

import (
	"testing"
	"time"
)

func TestConnectionsDefaults(t *testing.T) {
	t.Parallel()
	c := Defaults()
	if c.Connections.RecheckInterval != Duration(5*time.Second) || c.Connections.MaxLifetime != 0 {
		t.Fatalf("connections defaults %+v, want recheck_interval 5s, max_lifetime 0", c.Connections)
	}
}

func TestConnectionsFromFile(t *testing.T) {
	t.Parallel()
	p := writeFile(t, `
upstream: http://127.0.0.1:3000
clerk: {issuer: https://clerk.example.com}
connections:
  recheck_interval: 250ms
  max_lifetime: 12h
`)
	c, err := Load(Sources{File: p, Env: envMap()})
	if err != nil {
		t.Fatal(err)
	}
	if c.Connections.RecheckInterval != Duration(250*time.Millisecond) || c.Connections.MaxLifetime != Duration(12*time.Hour) {
		t.Fatalf("connections %+v", c.Connections)
	}
	p = writeFile(t, "upstream: http://127.0.0.1:3000\nclerk: {issuer: https://clerk.example.com}\nconnections: {recheck_intervall: 1s}\n")
	if _, err := Load(Sources{File: p, Env: envMap()}); err == nil {
		t.Fatal("a misspelt connections key was accepted")
	}
}

func TestConnectionsValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		c     Connections
		key   string
		valid bool
	}{
		{"defaults", DefaultConnections(), "", true},
		{"shortest interval", Connections{RecheckInterval: Duration(MinRecheckInterval)}, "", true},
		{"longest interval and a lifetime", Connections{RecheckInterval: Duration(MaxRecheckInterval), MaxLifetime: Duration(time.Hour)}, "", true},
		{"zero interval", Connections{}, "connections.recheck_interval", false},
		{"negative interval", Connections{RecheckInterval: Duration(-time.Second)}, "connections.recheck_interval", false},
		{"interval too short", Connections{RecheckInterval: Duration(time.Millisecond)}, "connections.recheck_interval", false},
		{"interval too long", Connections{RecheckInterval: Duration(time.Hour)}, "connections.recheck_interval", false},
		{"negative max_lifetime", Connections{RecheckInterval: Duration(time.Second), MaxLifetime: Duration(-time.Second)}, "connections.max_lifetime", false},
	} {
		c := validConfig()
		c.Connections = tc.c
		err := c.Validate()
		if tc.valid {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		if keys := problemKeys(t, err); !hasKey(keys, tc.key) {
			t.Errorf("%s: problems %v, want %s", tc.name, keys, tc.key)
		}
	}
}

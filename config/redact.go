package config

import "gopkg.in/yaml.v3"

// Redacted returns the effective configuration as YAML, as "sessiongate
// config check" prints it: every Secret reads "REDACTED", and each route's
// forward_token and handshake, and clerk.cross_origin_sync, show their
// effective values.
func (c *Config) Redacted() ([]byte, error) {
	cp := *c
	cos := c.Clerk.CrossOriginSyncEnabled()
	cp.Clerk.CrossOriginSync = &cos
	cp.Routes = make([]Route, len(c.Routes))
	for i, r := range c.Routes {
		fwd, hs := r.ForwardsToken(), r.HandshakeEnabled(c)
		r.ForwardToken, r.Handshake = &fwd, &hs
		cp.Routes[i] = r
	}
	return yaml.Marshal(&cp)
}

package app

import (
	"fmt"

	"github.com/sessiongate/sessiongate/clerkapi"
	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/machine"
	"github.com/sessiongate/sessiongate/middleware"
)

// setupMachines builds the verifier of opaque machine credentials when a
// secret key is configured (without one, M2M and OAuth JWTs still verify
// networklessly; opaque credentials get 503).
func (a *App) setupMachines(cfg *config.Config, opts Options) error {
	sk := cfg.Clerk.SecretKey.Reveal()
	if sk == "" {
		return nil
	}
	newClient := func(key string) (*clerkapi.Client, error) {
		return clerkapi.New(clerkapi.Config{
			SecretKey:  key,
			APIURL:     cfg.Clerk.APIURL,
			HTTPClient: opts.HTTPClient,
			// A verification is on a request's path: no retry; the
			// caller gets 503 with Retry-After and may retry itself.
			MaxRetries:     -1,
			Logger:         a.log.Named("clerkapi"),
			TracerProvider: a.tracerProvider(),
			OnResponse:     a.metrics.BackendCounter(),
		})
	}
	api, err := newClient(sk)
	if err != nil {
		return fmt.Errorf("clerk.secret_key: %w", err)
	}
	mcfg := machine.Config{
		API:         api,
		TTL:         cfg.Cache.MachineTTL.D(),
		NegativeTTL: cfg.Cache.MachineNegativeTTL.D(),
		Concurrency: cfg.Machine.VerifyConcurrency,
		MissRate:    cfg.Machine.MissRate,
		MissBurst:   cfg.Machine.MissBurst,
		Now:         opts.Now,
	}
	if mk := cfg.Clerk.MachineSecretKey.Reveal(); mk != "" {
		if mcfg.M2MAPI, err = newClient(mk); err != nil {
			return fmt.Errorf("clerk.machine_secret_key: %w", err)
		}
	}
	v, err := machine.New(mcfg)
	if err != nil {
		return fmt.Errorf("machine: %w", err)
	}
	a.machines = v
	a.metrics.RegisterMachines(v)
	return nil
}

var _ middleware.MachineVerifier = (*machine.Verifier)(nil)

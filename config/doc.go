// Package config is the sessiongate binary's configuration: defaults, a
// YAML file, the environment and flags, loaded and validated once by Load
// (docs/configuration.md lists every key). A Go app that embeds the
// packages directly needs little of it: ParsePublishableKey reads the
// Frontend API, the cookie suffix and the instance kind from a Clerk
// publishable key, as package handshake needs them.
//
// Experimental: may change.
package config

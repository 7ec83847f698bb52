// Package config is the sessiongate binary's configuration: defaults, a
// YAML file, the environment and flags, loaded and validated once by Load
// (docs/configuration.md lists every key). A Go app that embeds the
// packages directly needs little of it: ParsePublishableKey reads the
// Frontend API, the cookie suffix and the instance kind from a Clerk
// publishable key, as package handshake needs them.
//
// Stability: this package's API follows the semantic versioning of the
// module github.com/sessiongate/sessiongate: from v1.0.0 on, an incompatible
// change to it comes only with a new major version. Minor releases may add
// identifiers, methods and struct fields.
package config

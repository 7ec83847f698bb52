//go:build !race

package middleware_test

// raceEnabled: see race_test.go.
const raceEnabled = false

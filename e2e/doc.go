// Package e2e holds moat's end-to-end tests: the moat binary, started as
// a process of its own, is driven over real sockets by real clients
// (oras, crane, regctl, skopeo, docker, podman) and by the OCI
// distribution-spec conformance suite.
//
// A test whose client is not installed is skipped with the command that
// installs it, unless MOAT_E2E_REQUIRE=1 (CI sets it), which turns a
// missing client into a failure. `make tools` installs the Go clients at
// pinned versions into ./bin, where the tests look before $PATH.
//
// The package has no code outside its tests.
package e2e

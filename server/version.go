package server

import "runtime/debug"

// Version is set at build time with
// -ldflags "-X github.com/moat-registry/moat/server.Version=v1.2.3".
var Version string

// VersionString is Version, else the module version, else "dev".
func VersionString() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

package e2e

import (
	"fmt"
	"path/filepath"
	"testing"
)

// podmanClient is podman with private storage (vfs under the client's
// home) and its own containers.conf, storage.conf and registries.conf,
// so the host's configuration and images play no part. The cgroupfs
// manager and the file events backend let it run as root without systemd.
func podmanClient(t testing.TB) *client {
	t.Helper()
	c := newClient(t, "podman")
	storageConf := filepath.Join(c.home, "storage.conf")
	writeFile(t, storageConf, fmt.Appendf(nil, "[storage]\ndriver = \"vfs\"\ngraphroot = %q\nrunroot = %q\n",
		filepath.Join(c.home, "storage"), filepath.Join(c.home, "run", "storage")))
	containersConf := filepath.Join(c.home, "containers.conf")
	writeFile(t, containersConf, fmt.Appendf(nil, "[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\ntmp_dir = %q\n",
		filepath.Join(c.home, "run", "libpod")))
	registriesConf := filepath.Join(c.home, "registries.conf")
	writeFile(t, registriesConf, []byte("unqualified-search-registries = []\n"))
	c.env = append(c.env,
		"CONTAINERS_STORAGE_CONF="+storageConf,
		"CONTAINERS_CONF="+containersConf,
		"CONTAINERS_REGISTRIES_CONF="+registriesConf,
	)
	return c
}

// TestPodman imports a root filesystem into podman, pushes it to moat,
// removes it locally, pulls it back and checks that podman's repo digest
// is the digest moat serves.
func TestPodman(t *testing.T) {
	podman := podmanClient(t)
	podman.logVersion(t)
	m := startMoat(t, moatOptions{})
	engineRoundTrip(t, m, imageEngine{
		cli:          podman,
		registryArgs: []string{"--tls-verify=false"},
		digestFile:   true,
	}, "podman/app", "1")
}

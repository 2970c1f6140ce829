package oci

import (
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types of manifests moat stores.
const (
	MediaTypeImageManifest  = ocispec.MediaTypeImageManifest
	MediaTypeImageIndex     = ocispec.MediaTypeImageIndex
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"

	// Docker schema 1, refused.
	MediaTypeDockerSchema1       = "application/vnd.docker.distribution.manifest.v1+json"
	MediaTypeDockerSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws"

	mediaTypeDockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
)

// IsIndex reports whether mt is a manifest of manifests.
func IsIndex(mt string) bool { return mt == MediaTypeImageIndex || mt == MediaTypeDockerList }

// IsImageManifest reports whether mt is a manifest with config and layers.
func IsImageManifest(mt string) bool {
	return mt == MediaTypeImageManifest || mt == MediaTypeDockerManifest
}

// IsNonDistributable reports whether a layer of media type mt is one that
// registries do not hold (OCI's deprecated non-distributable layers and
// Docker's foreign layers).
func IsNonDistributable(mt string) bool {
	return strings.Contains(mt, ".nondistributable.") || mt == mediaTypeDockerForeignLayer
}

package oci_test

import (
	"testing"

	"github.com/moat-registry/moat/oci"
)

func TestMediaTypeKinds(t *testing.T) {
	tests := []struct {
		name                     string
		mt                       string
		index, image, nondistrib bool
	}{
		{"OCI image manifest", oci.MediaTypeImageManifest, false, true, false},
		{"OCI index", oci.MediaTypeImageIndex, true, false, false},
		{"Docker manifest", oci.MediaTypeDockerManifest, false, true, false},
		{"Docker manifest list", oci.MediaTypeDockerList, true, false, false},
		{"Docker schema 1", oci.MediaTypeDockerSchema1, false, false, false},
		{"OCI layer", "application/vnd.oci.image.layer.v1.tar+gzip", false, false, false},
		{"OCI non-distributable layer", "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", false, false, true},
		{"Docker foreign layer", "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", false, false, true},
		{"empty", "", false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := oci.IsIndex(tt.mt); got != tt.index {
				t.Errorf("IsIndex = %v, want %v", got, tt.index)
			}
			if got := oci.IsImageManifest(tt.mt); got != tt.image {
				t.Errorf("IsImageManifest = %v, want %v", got, tt.image)
			}
			if got := oci.IsNonDistributable(tt.mt); got != tt.nondistrib {
				t.Errorf("IsNonDistributable = %v, want %v", got, tt.nondistrib)
			}
		})
	}
}

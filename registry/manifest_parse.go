package registry

import (
	"encoding/json"
	"mime"
	"strconv"

	"github.com/moat-registry/moat/errcode"
	"github.com/moat-registry/moat/oci"
	"github.com/moat-registry/moat/storage"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// manifestDoc holds the fields of every manifest kind moat accepts (OCI
// image manifest and index, Docker schema 2 manifest and manifest list).
// Unknown fields are kept in the stored bytes, never dropped.
type manifestDoc struct {
	SchemaVersion *int                 `json:"schemaVersion"`
	MediaType     string               `json:"mediaType"`
	ArtifactType  string               `json:"artifactType"`
	Config        *ocispec.Descriptor  `json:"config"`
	Layers        []ocispec.Descriptor `json:"layers"`
	Manifests     []ocispec.Descriptor `json:"manifests"`
	Subject       *ocispec.Descriptor  `json:"subject"`
	Annotations   map[string]string    `json:"annotations"`
	// Docker schema 1 fields, only to recognise it.
	FSLayers json.RawMessage `json:"fsLayers"`
}

func invalidManifest(reason string) *errcode.Error {
	return errcode.ManifestInvalid.WithDetail(map[string]string{"reason": reason})
}

// parseManifest validates a manifest body sent with Content-Type ct and
// returns what the store keeps about it. Digest, Created and Raw are the
// caller's to fill.
func parseManifest(ct string, body []byte) (*storage.Manifest, error) {
	var doc manifestDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, invalidManifest("not valid JSON: " + err.Error())
	}
	if doc.SchemaVersion == nil {
		return nil, invalidManifest("schemaVersion is missing")
	}
	if *doc.SchemaVersion == 1 || doc.FSLayers != nil {
		return nil, invalidManifest("Docker schema 1 manifests are not supported")
	}
	if *doc.SchemaVersion != 2 {
		return nil, invalidManifest("schemaVersion must be 2")
	}
	mt := ""
	if ct != "" {
		parsed, _, err := mime.ParseMediaType(ct)
		if err != nil {
			return nil, invalidManifest("malformed Content-Type")
		}
		mt = parsed
	}
	switch {
	case mt == "" || mt == "application/json" || mt == "application/octet-stream":
		mt = doc.MediaType
		if mt == "" {
			// An OCI manifest may omit mediaType; tell it by its fields.
			if doc.Manifests != nil {
				mt = oci.MediaTypeImageIndex
			} else {
				mt = oci.MediaTypeImageManifest
			}
		}
	case doc.MediaType != "" && doc.MediaType != mt:
		return nil, invalidManifest("mediaType " + strconv.Quote(doc.MediaType) + " does not match Content-Type " + strconv.Quote(mt))
	}
	if mt == oci.MediaTypeDockerSchema1 || mt == oci.MediaTypeDockerSchema1Signed {
		return nil, invalidManifest("Docker schema 1 manifests are not supported")
	}
	m := &storage.Manifest{MediaType: mt, ArtifactType: doc.ArtifactType, Annotations: doc.Annotations}
	switch {
	case oci.IsImageManifest(mt):
		if doc.Manifests != nil {
			return nil, invalidManifest("an image manifest has no manifests field")
		}
		if doc.Config == nil {
			return nil, invalidManifest("config is missing")
		}
		if err := checkDescriptor("config", doc.Config); err != nil {
			return nil, err
		}
		m.Blobs = append(m.Blobs, doc.Config.Digest)
		for i := range doc.Layers {
			l := &doc.Layers[i]
			if err := checkDescriptor("layers["+strconv.Itoa(i)+"]", l); err != nil {
				return nil, err
			}
			if oci.IsNonDistributable(l.MediaType) || len(l.URLs) > 0 {
				continue // never uploaded to a registry
			}
			m.Blobs = append(m.Blobs, l.Digest)
		}
		if m.ArtifactType == "" && mt == oci.MediaTypeImageManifest {
			m.ArtifactType = doc.Config.MediaType
		}
	case oci.IsIndex(mt):
		if doc.Config != nil || doc.Layers != nil {
			return nil, invalidManifest("an index has no config or layers")
		}
		for i := range doc.Manifests {
			c := &doc.Manifests[i]
			if err := checkDescriptor("manifests["+strconv.Itoa(i)+"]", c); err != nil {
				return nil, err
			}
			m.Manifests = append(m.Manifests, c.Digest)
		}
	default:
		return nil, invalidManifest("unsupported manifest media type " + strconv.Quote(mt))
	}
	if doc.Subject != nil {
		if err := checkDescriptor("subject", doc.Subject); err != nil {
			return nil, err
		}
		m.Subject = doc.Subject.Digest
	}
	return m, nil
}

// checkDescriptor validates a descriptor's digest, size and media type, and
// an embedded data field against both.
func checkDescriptor(field string, d *ocispec.Descriptor) error {
	if err := d.Digest.Validate(); err != nil {
		return invalidManifest(field + ": invalid digest")
	}
	if d.Size < 0 {
		return invalidManifest(field + ": negative size")
	}
	if d.MediaType == "" {
		return invalidManifest(field + ": mediaType is missing")
	}
	if d.Data != nil {
		if int64(len(d.Data)) != d.Size || d.Digest.Algorithm().FromBytes(d.Data) != d.Digest {
			return invalidManifest(field + ": data does not match digest and size")
		}
	}
	return nil
}

// manifestDigest is the digest a pushed manifest is stored under: the
// reference's algorithm when pushed by digest, sha256 otherwise.
func manifestDigest(ref digest.Digest, body []byte) digest.Digest {
	if ref != "" {
		return ref.Algorithm().FromBytes(body)
	}
	return digest.SHA256.FromBytes(body)
}

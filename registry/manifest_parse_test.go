package registry

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"mime"
	"reflect"
	"strings"
	"testing"

	"github.com/moat-registry/moat/errcode"
	"github.com/moat-registry/moat/oci"
	"github.com/opencontainers/go-digest"
)

var (
	cfgDigest   = digest.FromString("config")
	layerDigest = digest.FromString("layer")
	childDigest = digest.FromString("child")
)

// desc renders a descriptor; extra is spliced in as more fields.
func desc(mt string, d digest.Digest, size int, extra string) string {
	s := `{"mediaType":"` + mt + `","digest":"` + d.String() + `","size":` + itoa(size)
	if extra != "" {
		s += "," + extra
	}
	return s + "}"
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func imageManifest(mt, extra string, layers ...string) string {
	s := `{"schemaVersion":2`
	if mt != "" {
		s += `,"mediaType":"` + mt + `"`
	}
	s += `,"config":` + desc("application/vnd.oci.image.config.v1+json", cfgDigest, 6, "")
	s += `,"layers":[` + strings.Join(layers, ",") + `]`
	if extra != "" {
		s += "," + extra
	}
	return s + "}"
}

func indexManifest(mt, extra string, children ...string) string {
	s := `{"schemaVersion":2`
	if mt != "" {
		s += `,"mediaType":"` + mt + `"`
	}
	s += `,"manifests":[` + strings.Join(children, ",") + `]`
	if extra != "" {
		s += "," + extra
	}
	return s + "}"
}

const (
	mtLayer = "application/vnd.oci.image.layer.v1.tar+gzip"
	mtCfg   = "application/vnd.oci.image.config.v1+json"
)

func TestParseManifest(t *testing.T) {
	layer := desc(mtLayer, layerDigest, 5, "")
	child := desc(oci.MediaTypeImageManifest, childDigest, 5, "")
	data := base64.StdEncoding.EncodeToString([]byte("config"))
	tests := []struct {
		name       string
		ct         string
		body       string
		wantMT     string
		wantBlobs  []digest.Digest
		wantKids   []digest.Digest
		wantAT     string
		wantReason string // a substring of the MANIFEST_INVALID reason; empty: accepted
	}{
		{name: "OCI image", ct: oci.MediaTypeImageManifest, body: imageManifest(oci.MediaTypeImageManifest, "", layer),
			wantMT: oci.MediaTypeImageManifest, wantBlobs: []digest.Digest{cfgDigest, layerDigest}, wantAT: mtCfg},
		{name: "OCI image without mediaType field", ct: oci.MediaTypeImageManifest, body: imageManifest("", "", layer),
			wantMT: oci.MediaTypeImageManifest, wantBlobs: []digest.Digest{cfgDigest, layerDigest}, wantAT: mtCfg},
		{name: "OCI image, Content-Type with parameters", ct: oci.MediaTypeImageManifest + "; charset=utf-8", body: imageManifest("", "", layer),
			wantMT: oci.MediaTypeImageManifest, wantBlobs: []digest.Digest{cfgDigest, layerDigest}, wantAT: mtCfg},
		{name: "no Content-Type, no mediaType: image", body: imageManifest("", ""),
			wantMT: oci.MediaTypeImageManifest, wantBlobs: []digest.Digest{cfgDigest}, wantAT: mtCfg},
		{name: "no Content-Type, no mediaType: index", body: indexManifest("", "", child),
			wantMT: oci.MediaTypeImageIndex, wantKids: []digest.Digest{childDigest}},
		{name: "generic Content-Type takes mediaType", ct: "application/json", body: imageManifest(oci.MediaTypeDockerManifest, ""),
			wantMT: oci.MediaTypeDockerManifest, wantBlobs: []digest.Digest{cfgDigest}},
		{name: "octet-stream takes mediaType", ct: "application/octet-stream", body: indexManifest(oci.MediaTypeDockerList, "", child),
			wantMT: oci.MediaTypeDockerList, wantKids: []digest.Digest{childDigest}},
		{name: "explicit artifactType", ct: oci.MediaTypeImageManifest, body: imageManifest("", `"artifactType":"application/vnd.example.sig"`),
			wantMT: oci.MediaTypeImageManifest, wantBlobs: []digest.Digest{cfgDigest}, wantAT: "application/vnd.example.sig"},
		{name: "OCI index", ct: oci.MediaTypeImageIndex, body: indexManifest(oci.MediaTypeImageIndex, "", child, desc(oci.MediaTypeImageManifest, layerDigest, 1, `"platform":{"os":"linux","architecture":"arm64"}`)),
			wantMT: oci.MediaTypeImageIndex, wantKids: []digest.Digest{childDigest, layerDigest}},
		{name: "empty OCI index", ct: oci.MediaTypeImageIndex, body: indexManifest("", ""), wantMT: oci.MediaTypeImageIndex},
		{name: "Docker schema 2", ct: oci.MediaTypeDockerManifest, body: imageManifest(oci.MediaTypeDockerManifest, "", desc("application/vnd.docker.image.rootfs.diff.tar.gzip", layerDigest, 5, "")),
			wantMT: oci.MediaTypeDockerManifest, wantBlobs: []digest.Digest{cfgDigest, layerDigest}},
		{name: "Docker manifest list", ct: oci.MediaTypeDockerList, body: indexManifest(oci.MediaTypeDockerList, "", child),
			wantMT: oci.MediaTypeDockerList, wantKids: []digest.Digest{childDigest}},
		{name: "non-distributable layer not required", ct: oci.MediaTypeImageManifest,
			body:   imageManifest("", "", layer, desc("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", digest.FromString("nd"), 2, "")),
			wantMT: oci.MediaTypeImageManifest, wantBlobs: []digest.Digest{cfgDigest, layerDigest}, wantAT: mtCfg},
		{name: "foreign layer not required", ct: oci.MediaTypeDockerManifest,
			body:   imageManifest(oci.MediaTypeDockerManifest, "", desc("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", digest.FromString("win"), 2, `"urls":["https://example.com/l"]`)),
			wantMT: oci.MediaTypeDockerManifest, wantBlobs: []digest.Digest{cfgDigest}},
		{name: "layer with urls not required", ct: oci.MediaTypeImageManifest,
			body:   imageManifest("", "", desc(mtLayer, digest.FromString("remote"), 2, `"urls":["https://example.com/l"]`)),
			wantMT: oci.MediaTypeImageManifest, wantBlobs: []digest.Digest{cfgDigest}, wantAT: mtCfg},
		{name: "matching data field", ct: oci.MediaTypeImageManifest,
			body:   `{"schemaVersion":2,"config":` + desc(mtCfg, cfgDigest, 6, `"data":"`+data+`"`) + `,"layers":[]}`,
			wantMT: oci.MediaTypeImageManifest, wantBlobs: []digest.Digest{cfgDigest}, wantAT: mtCfg},
		{name: "subject", ct: oci.MediaTypeImageManifest, body: imageManifest("", `"subject":`+child),
			wantMT: oci.MediaTypeImageManifest, wantBlobs: []digest.Digest{cfgDigest}, wantAT: mtCfg},

		{name: "schema 1", ct: oci.MediaTypeDockerSchema1Signed, body: `{"schemaVersion":1,"name":"a","tag":"b","fsLayers":[]}`, wantReason: "schema 1"},
		{name: "schema 1 without Content-Type", body: `{"schemaVersion":1,"fsLayers":[]}`, wantReason: "schema 1"},
		{name: "schema 1 fields with version 2", body: `{"schemaVersion":2,"fsLayers":[]}`, wantReason: "schema 1"},
		{name: "schema 1 Content-Type", ct: oci.MediaTypeDockerSchema1, body: imageManifest("", ""), wantReason: "schema 1"},
		{name: "schema 1 mediaType", ct: "application/json", body: imageManifest(oci.MediaTypeDockerSchema1, ""), wantReason: "schema 1"},
		{name: "mediaType does not match Content-Type", ct: oci.MediaTypeImageManifest, body: imageManifest(oci.MediaTypeDockerManifest, ""), wantReason: "does not match Content-Type"},
		{name: "index mediaType as image Content-Type", ct: oci.MediaTypeImageManifest, body: indexManifest(oci.MediaTypeImageIndex, ""), wantReason: "does not match Content-Type"},
		{name: "unknown Content-Type", ct: "text/plain", body: imageManifest("", ""), wantReason: "unsupported manifest media type"},
		{name: "unknown mediaType", body: imageManifest("application/vnd.example+json", ""), wantReason: "unsupported manifest media type"},
		{name: "malformed Content-Type", ct: "a/b; =", body: imageManifest("", ""), wantReason: "malformed Content-Type"},
		{name: "not JSON", ct: oci.MediaTypeImageManifest, body: "not json", wantReason: "not valid JSON"},
		{name: "JSON array", body: "[]", wantReason: "not valid JSON"},
		{name: "JSON null", body: "null", wantReason: "schemaVersion is missing"},
		{name: "schemaVersion missing", body: `{"config":{}}`, wantReason: "schemaVersion is missing"},
		{name: "schemaVersion 3", body: `{"schemaVersion":3}`, wantReason: "schemaVersion must be 2"},
		{name: "schemaVersion as string", body: `{"schemaVersion":"2"}`, wantReason: "not valid JSON"},
		{name: "image with manifests", ct: oci.MediaTypeImageManifest, body: imageManifest("", `"manifests":[]`), wantReason: "no manifests field"},
		{name: "image without config", ct: oci.MediaTypeImageManifest, body: `{"schemaVersion":2,"layers":[]}`, wantReason: "config is missing"},
		{name: "index with config", ct: oci.MediaTypeImageIndex, body: indexManifest("", `"config":`+desc(mtCfg, cfgDigest, 6, "")), wantReason: "no config or layers"},
		{name: "index with layers", ct: oci.MediaTypeImageIndex, body: indexManifest("", `"layers":[]`), wantReason: "no config or layers"},
		{name: "config bad digest", ct: oci.MediaTypeImageManifest, body: `{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"sha256:123","size":1}}`, wantReason: "config: invalid digest"},
		{name: "config unsupported algorithm", ct: oci.MediaTypeImageManifest, body: `{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"md5:5d41402abc4b2a76b9719d911017c592","size":1}}`, wantReason: "config: invalid digest"},
		{name: "layer negative size", ct: oci.MediaTypeImageManifest, body: imageManifest("", "", layer, desc(mtLayer, layerDigest, -1, "")), wantReason: "layers[1]: negative size"},
		{name: "layer without mediaType", ct: oci.MediaTypeImageManifest, body: imageManifest("", "", desc("", layerDigest, 1, "")), wantReason: "layers[0]: mediaType is missing"},
		{name: "child bad digest", ct: oci.MediaTypeImageIndex, body: indexManifest("", "", `{"mediaType":"a/b","digest":"sha256:zz","size":1}`), wantReason: "manifests[0]: invalid digest"},
		{name: "subject bad digest", ct: oci.MediaTypeImageManifest, body: imageManifest("", `"subject":{"mediaType":"a/b","digest":"x","size":1}`), wantReason: "subject: invalid digest"},
		{name: "data does not match digest", ct: oci.MediaTypeImageManifest,
			body: `{"schemaVersion":2,"config":` + desc(mtCfg, cfgDigest, 6, `"data":"`+base64.StdEncoding.EncodeToString([]byte("CONFIG"))+`"`) + `}`, wantReason: "config: data does not match"},
		{name: "data does not match size", ct: oci.MediaTypeImageManifest,
			body: `{"schemaVersion":2,"config":` + desc(mtCfg, cfgDigest, 7, `"data":"`+data+`"`) + `}`, wantReason: "config: data does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parseManifest(tt.ct, []byte(tt.body))
			if tt.wantReason != "" {
				var e *errcode.Error
				if !errors.As(err, &e) || e.Code != errcode.ManifestInvalid {
					t.Fatalf("parseManifest() = %+v, %v; want MANIFEST_INVALID", m, err)
				}
				if reason := e.Detail.(map[string]string)["reason"]; !strings.Contains(reason, tt.wantReason) {
					t.Errorf("reason %q does not say %q", reason, tt.wantReason)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseManifest() = %v", err)
			}
			if m.MediaType != tt.wantMT || m.ArtifactType != tt.wantAT {
				t.Errorf("media type %q, artifact type %q; want %q, %q", m.MediaType, m.ArtifactType, tt.wantMT, tt.wantAT)
			}
			if !reflect.DeepEqual(m.Blobs, tt.wantBlobs) || !reflect.DeepEqual(m.Manifests, tt.wantKids) {
				t.Errorf("blobs %v, manifests %v; want %v, %v", m.Blobs, m.Manifests, tt.wantBlobs, tt.wantKids)
			}
			if strings.Contains(tt.body, `"subject"`) != (m.Subject != "") {
				t.Errorf("subject %q", m.Subject)
			}
		})
	}
}

func FuzzParseManifest(f *testing.F) {
	layer := desc(mtLayer, layerDigest, 5, "")
	child := desc(oci.MediaTypeImageManifest, childDigest, 5, "")
	for _, s := range []struct{ ct, body string }{
		{oci.MediaTypeImageManifest, imageManifest(oci.MediaTypeImageManifest, "", layer)},
		{"", imageManifest("", `"subject":`+child)},
		{oci.MediaTypeImageIndex, indexManifest("", "", child)},
		{oci.MediaTypeDockerList, indexManifest(oci.MediaTypeDockerList, "", child)},
		{"application/json", imageManifest(oci.MediaTypeDockerManifest, "")},
		{oci.MediaTypeDockerSchema1Signed, `{"schemaVersion":1,"fsLayers":[]}`},
		{oci.MediaTypeImageManifest, `{"schemaVersion":2,"config":` + desc(mtCfg, cfgDigest, 6, `"data":"Y29uZmln"`) + `}`},
		{"text/plain", "null"},
	} {
		f.Add(s.ct, []byte(s.body))
	}
	known := map[string]bool{
		oci.MediaTypeImageManifest: true, oci.MediaTypeImageIndex: true,
		oci.MediaTypeDockerManifest: true, oci.MediaTypeDockerList: true,
	}
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		m, err := parseManifest(ct, body)
		if err != nil {
			var e *errcode.Error
			if !errors.As(err, &e) || e.Code != errcode.ManifestInvalid {
				t.Fatalf("error %v is not MANIFEST_INVALID", err)
			}
			return
		}
		if !known[m.MediaType] {
			t.Fatalf("accepted media type %q", m.MediaType)
		}
		if parsed, _, err := mime.ParseMediaType(ct); err == nil && known[parsed] && parsed != m.MediaType {
			t.Fatalf("Content-Type %q stored as %q", ct, m.MediaType)
		}
		var doc struct {
			SchemaVersion int    `json:"schemaVersion"`
			MediaType     string `json:"mediaType"`
		}
		if err := json.Unmarshal(body, &doc); err != nil || doc.SchemaVersion != 2 {
			t.Fatalf("accepted a manifest with schemaVersion %d (%v)", doc.SchemaVersion, err)
		}
		if doc.MediaType != "" && doc.MediaType != m.MediaType {
			t.Fatalf("mediaType %q stored as %q", doc.MediaType, m.MediaType)
		}
		if oci.IsIndex(m.MediaType) && len(m.Blobs) > 0 || oci.IsImageManifest(m.MediaType) && (len(m.Manifests) > 0 || len(m.Blobs) == 0) {
			t.Fatalf("%s with blobs %v and manifests %v", m.MediaType, m.Blobs, m.Manifests)
		}
		for _, d := range append(append([]digest.Digest{m.Subject}, m.Blobs...), m.Manifests...) {
			if d != "" && d.Validate() != nil {
				t.Fatalf("accepted digest %q", d)
			}
		}
	})
}

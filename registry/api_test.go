package registry_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/moat-registry/moat/oci"
	"github.com/moat-registry/moat/registry"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Contents of the blobs the scenarios push.
const (
	configJSON = `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`
	layerA     = "0123456789abcdefghij" // 20 bytes, for ranges
	layerB     = "chunk-one|chunk-two|chunk-three"
	layerC     = "docker streams a layer without Content-Range"
	layerD     = "posted, then put"
	emptyJSON  = "{}"

	mtOCIConfig    = "application/vnd.oci.image.config.v1+json"
	mtOCILayer     = "application/vnd.oci.image.layer.v1.tar+gzip"
	mtDockerConfig = "application/vnd.docker.container.image.v1+json"
	mtDockerLayer  = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	mtEmpty        = "application/vnd.oci.empty.v1+json"
)

var (
	dCfg = digest.FromString(configJSON)
	dA   = digest.FromString(layerA)
	dB   = digest.FromString(layerB)
	dC   = digest.FromString(layerC)
	dD   = digest.FromString(layerD)

	ociImage = mustJSON(imageManifest(oci.MediaTypeImageManifest,
		descriptor(mtOCIConfig, configJSON), descriptor(mtOCILayer, layerA)))
	dImage   = digest.FromString(ociImage)
	ociIndex = mustJSON(index(oci.MediaTypeImageIndex, ocispec.Descriptor{
		MediaType: oci.MediaTypeImageManifest, Digest: dImage, Size: int64(len(ociImage)),
		Platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"},
	}))
	dockerImage = mustJSON(imageManifest(oci.MediaTypeDockerManifest,
		descriptor(mtDockerConfig, configJSON), descriptor(mtDockerLayer, layerA)))
	dockerList = mustJSON(index(oci.MediaTypeDockerList, ocispec.Descriptor{
		MediaType: oci.MediaTypeDockerManifest, Digest: digest.FromString(dockerImage), Size: int64(len(dockerImage)),
	}))
	schema1 = `{"schemaVersion":1,"name":"img","tag":"old","architecture":"amd64","fsLayers":[{"blobSum":"` + dA.String() + `"}],"history":[]}`

	missingBlob = mustJSON(imageManifest(oci.MediaTypeImageManifest,
		descriptor(mtOCIConfig, configJSON), descriptor(mtOCILayer, "never pushed")))
	missingChild = mustJSON(index(oci.MediaTypeImageIndex, descriptor(oci.MediaTypeImageManifest, "never pushed")))
)

// referrer is an artifact manifest about subject.
func referrer(artifactType, configType string, subject digest.Digest, size int, annotations map[string]string) string {
	m := imageManifest(oci.MediaTypeImageManifest, descriptor(configType, emptyJSON), descriptor("text/plain", layerA))
	m.ArtifactType = artifactType
	m.Subject = &ocispec.Descriptor{MediaType: oci.MediaTypeImageManifest, Digest: subject, Size: int64(size)}
	m.Annotations = annotations
	return mustJSON(m)
}

func TestRegistryAPI(t *testing.T) {
	ts := newTestServer(t)

	sig := referrer("application/vnd.example.sig", mtEmpty, dImage, len(ociImage), map[string]string{"org.example.signer": "ci"})
	sbom := referrer("", "application/spdx+json", dImage, len(ociImage), nil)
	dSig, dSbom := digest.FromString(sig), digest.FromString(sbom)
	big := imageManifest(oci.MediaTypeImageManifest, descriptor(mtOCIConfig, configJSON))
	big.Annotations = map[string]string{"padding": strings.Repeat("x", 4<<20)}
	bigManifest := mustJSON(big)
	ociCT := map[string]string{"Content-Type": oci.MediaTypeImageManifest}
	zeros := strings.Repeat("0", 32)

	steps := []step{
		// Base.
		{name: "base", method: http.MethodGet, path: "/v2/", status: 200, wantBody: ptr("{}")},
		{name: "base without slash", method: http.MethodHead, path: "/v2", status: 200},

		// Monolithic upload with POST.
		{name: "POST with digest", method: http.MethodPost, path: "/v2/mono/blobs/uploads/?digest=" + dA.String(), body: layerA,
			status: 201, headers: map[string]string{"Location": "/v2/mono/blobs/" + dA.String(), "Docker-Content-Digest": dA.String(), "Content-Length": "0"}},
		{name: "POST with a digest of other content", method: http.MethodPost, path: "/v2/mono/blobs/uploads/?digest=" + dB.String(), body: layerA,
			status: 400, code: "DIGEST_INVALID"},
		{name: "POST with a malformed digest", method: http.MethodPost, path: "/v2/mono/blobs/uploads/?digest=sha256:abc", body: layerA,
			status: 400, code: "DIGEST_INVALID"},
		{name: "POST with an unsupported digest", method: http.MethodPost, path: "/v2/mono/blobs/uploads/?digest=md5:5d41402abc4b2a76b9719d911017c592", body: layerA,
			status: 400, code: "DIGEST_INVALID"},
		{name: "refused POST stored nothing", method: http.MethodHead, path: "/v2/mono/blobs/" + dB.String(), status: 404},

		// POST then PUT.
		{name: "POST starts a session", method: http.MethodPost, path: "/v2/mono/blobs/uploads/", status: 202,
			headers: map[string]string{"Location": "*", "Range": "0-0", "Docker-Upload-UUID": "*", "Content-Length": "0"},
			check: func(t *testing.T, resp *http.Response, _ []byte) {
				loc := resp.Header.Get("Location")
				if !strings.HasPrefix(loc, "/v2/mono/blobs/uploads/") || !strings.HasSuffix(loc, resp.Header.Get("Docker-Upload-UUID")) {
					t.Errorf("Location %q is not the path of the session", loc)
				}
			},
			save: map[string]string{"post": "Location"}},
		{name: "PUT without digest", method: http.MethodPut, path: "{post}", body: layerD, status: 400, code: "DIGEST_INVALID"},
		{name: "PUT the whole blob", method: http.MethodPut, path: "{post}?digest=" + dD.String(), body: layerD,
			status: 201, headers: map[string]string{"Location": "/v2/mono/blobs/" + dD.String(), "Docker-Content-Digest": dD.String()}},
		{name: "GET the put blob", method: http.MethodGet, path: "/v2/mono/blobs/" + dD.String(), status: 200, wantBody: ptr(layerD)},

		// Chunked upload with Content-Range.
		{name: "chunked: start", method: http.MethodPost, path: "/v2/chunked/blobs/uploads/", status: 202,
			save: map[string]string{"chunked": "Location", "chunkedID": "Docker-Upload-UUID"}},
		{name: "chunked: first chunk", method: http.MethodPatch, path: "{chunked}", header: map[string]string{"Content-Range": "0-9"}, body: layerB[:10],
			status: 202, headers: map[string]string{"Location": "{chunked}", "Range": "0-9", "Docker-Upload-UUID": "{chunkedID}"}},
		{name: "chunked: chunk past the end", method: http.MethodPatch, path: "{chunked}", header: map[string]string{"Content-Range": "20-29"}, body: layerB[20:30],
			status: 416, code: "BLOB_UPLOAD_INVALID", headers: map[string]string{"Location": "{chunked}", "Range": "0-9"}},
		{name: "chunked: chunk repeated", method: http.MethodPatch, path: "{chunked}", header: map[string]string{"Content-Range": "0-9"}, body: layerB[:10],
			status: 416, code: "BLOB_UPLOAD_INVALID", headers: map[string]string{"Location": "{chunked}", "Range": "0-9"}},
		{name: "chunked: Content-Range longer than the body", method: http.MethodPatch, path: "{chunked}", header: map[string]string{"Content-Range": "10-24"}, body: layerB[10:20],
			status: 400, code: "SIZE_INVALID"},
		{name: "chunked: malformed Content-Range", method: http.MethodPatch, path: "{chunked}", header: map[string]string{"Content-Range": "ten-twenty"}, body: layerB[10:20],
			status: 400, code: "BLOB_UPLOAD_INVALID"},
		{name: "chunked: status", method: http.MethodGet, path: "{chunked}", status: 204,
			headers: map[string]string{"Location": "{chunked}", "Range": "0-9", "Docker-Upload-UUID": "{chunkedID}"}},
		{name: "chunked: second chunk", method: http.MethodPatch, path: "{chunked}", header: map[string]string{"Content-Range": "10-19"}, body: layerB[10:20],
			status: 202, headers: map[string]string{"Range": "0-19"}},
		{name: "chunked: PUT with the last chunk", method: http.MethodPut, path: "{chunked}?digest=" + dB.String(),
			header: map[string]string{"Content-Range": "20-30"}, body: layerB[20:],
			status: 201, headers: map[string]string{"Location": "/v2/chunked/blobs/" + dB.String(), "Docker-Content-Digest": dB.String()}},
		{name: "chunked: the blob", method: http.MethodGet, path: "/v2/chunked/blobs/" + dB.String(), status: 200, wantBody: ptr(layerB)},
		{name: "chunked: the session is over", method: http.MethodGet, path: "{chunked}", status: 404, code: "BLOB_UPLOAD_UNKNOWN"},

		// Docker streams chunks without Content-Range.
		{name: "docker: start", method: http.MethodPost, path: "/v2/docker/blobs/uploads/", status: 202, save: map[string]string{"docker": "Location"}},
		{name: "docker: stream a chunk", method: http.MethodPatch, path: "{docker}", body: layerC[:10], chunked: true,
			status: 202, headers: map[string]string{"Range": "0-9", "Location": "{docker}"}},
		{name: "docker: stream the rest", method: http.MethodPatch, path: "{docker}", body: layerC[10:], chunked: true,
			status: 202, headers: map[string]string{"Range": "0-43"}},
		{name: "docker: PUT with a wrong digest", method: http.MethodPut, path: "{docker}?digest=" + dA.String(), status: 400, code: "DIGEST_INVALID"},
		{name: "docker: PUT after the mismatch", method: http.MethodPut, path: "{docker}?digest=" + dC.String(), status: 201,
			headers: map[string]string{"Docker-Content-Digest": dC.String()}},
		{name: "docker: the blob", method: http.MethodGet, path: "/v2/docker/blobs/" + dC.String(), status: 200, wantBody: ptr(layerC)},

		// Cancelled and unknown sessions.
		{name: "cancel: start", method: http.MethodPost, path: "/v2/cancel/blobs/uploads/", status: 202,
			save: map[string]string{"cancel": "Location", "cancelID": "Docker-Upload-UUID"}},
		{name: "cancel: session of another repository", method: http.MethodGet, path: "/v2/mono/blobs/uploads/{cancelID}", status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
		{name: "cancel: DELETE", method: http.MethodDelete, path: "{cancel}", status: 204},
		{name: "cancel: status after DELETE", method: http.MethodGet, path: "{cancel}", status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
		{name: "cancel: DELETE again", method: http.MethodDelete, path: "{cancel}", status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
		{name: "unknown upload: PATCH", method: http.MethodPatch, path: "/v2/cancel/blobs/uploads/" + zeros, body: "x", status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
		{name: "unknown upload: PUT", method: http.MethodPut, path: "/v2/cancel/blobs/uploads/" + zeros + "?digest=" + dA.String(), status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
		{name: "unknown upload: malformed id", method: http.MethodGet, path: "/v2/cancel/blobs/uploads/not-an-id", status: 404, code: "BLOB_UPLOAD_UNKNOWN"},

		// Cross-repository mounts.
		{name: "mount from another repository", method: http.MethodPost, path: "/v2/mount/blobs/uploads/?mount=" + dA.String() + "&from=mono",
			status: 201, headers: map[string]string{"Location": "/v2/mount/blobs/" + dA.String(), "Docker-Content-Digest": dA.String()}},
		{name: "mounted blob", method: http.MethodHead, path: "/v2/mount/blobs/" + dA.String(), status: 200, headers: map[string]string{"Content-Length": "20"}},
		{name: "mount of an unknown blob falls back", method: http.MethodPost, path: "/v2/mount2/blobs/uploads/?mount=" + digest.FromString("nope").String() + "&from=mono",
			status: 202, headers: map[string]string{"Location": "*", "Range": "0-0", "Docker-Upload-UUID": "*"}},
		{name: "mount of a blob the source lacks falls back", method: http.MethodPost, path: "/v2/mount2/blobs/uploads/?mount=" + dC.String() + "&from=mono",
			status: 202, headers: map[string]string{"Docker-Upload-UUID": "*"}},
		{name: "mount without from", method: http.MethodPost, path: "/v2/mount3/blobs/uploads/?mount=" + dB.String(),
			status: 201, headers: map[string]string{"Location": "/v2/mount3/blobs/" + dB.String()}},
		{name: "mount from a bad name", method: http.MethodPost, path: "/v2/mount/blobs/uploads/?mount=" + dA.String() + "&from=Bad", status: 400, code: "NAME_INVALID"},
		{name: "mount of a malformed digest", method: http.MethodPost, path: "/v2/mount/blobs/uploads/?mount=sha256:1&from=mono", status: 400, code: "DIGEST_INVALID"},

		// Blob reads.
		{name: "blob GET", method: http.MethodGet, path: "/v2/mono/blobs/" + dA.String(), status: 200, wantBody: ptr(layerA),
			headers: map[string]string{"Content-Length": "20", "Docker-Content-Digest": dA.String(), "Accept-Ranges": "bytes", "ETag": `"` + dA.String() + `"`,
				"Cache-Control": "max-age=31536000"}},
		{name: "blob GET with Range", method: http.MethodGet, path: "/v2/mono/blobs/" + dA.String(), header: map[string]string{"Range": "bytes=5-9"},
			status: 206, wantBody: ptr("56789"), headers: map[string]string{"Content-Range": "bytes 5-9/20", "Content-Length": "5"}},
		{name: "blob GET with suffix Range", method: http.MethodGet, path: "/v2/mono/blobs/" + dA.String(), header: map[string]string{"Range": "bytes=-3"},
			status: 206, wantBody: ptr("hij"), headers: map[string]string{"Content-Range": "bytes 17-19/20"}},
		{name: "blob GET with open Range", method: http.MethodGet, path: "/v2/mono/blobs/" + dA.String(), header: map[string]string{"Range": "bytes=15-"},
			status: 206, wantBody: ptr("fghij")},
		{name: "blob GET with unsatisfiable Range", method: http.MethodGet, path: "/v2/mono/blobs/" + dA.String(), header: map[string]string{"Range": "bytes=100-200"},
			status: 416, code: "BLOB_UPLOAD_INVALID", headers: map[string]string{"Content-Range": "bytes */20", "Cache-Control": "-", "ETag": "-", "Docker-Content-Digest": "-"}},
		{name: "blob GET with a Range of another unit", method: http.MethodGet, path: "/v2/mono/blobs/" + dA.String(), header: map[string]string{"Range": "items=0-4"},
			status: 200, wantBody: ptr(layerA), headers: map[string]string{"Content-Range": "-", "Cache-Control": "max-age=31536000"}},
		{name: "blob GET with empty Range elements", method: http.MethodGet, path: "/v2/mono/blobs/" + dA.String(), header: map[string]string{"Range": "bytes=,5-9,,"},
			status: 206, wantBody: ptr("56789"), headers: map[string]string{"Content-Range": "bytes 5-9/20"}},
		{name: "blob GET with If-Range of the blob", method: http.MethodGet, path: "/v2/mono/blobs/" + dA.String(),
			header: map[string]string{"Range": "bytes=5-9", "If-Range": `"` + dA.String() + `"`}, status: 206, wantBody: ptr("56789")},
		{name: "blob GET with If-Range of another ETag", method: http.MethodGet, path: "/v2/mono/blobs/" + dA.String(),
			header: map[string]string{"Range": "bytes=5-9", "If-Range": `"` + dB.String() + `"`}, status: 200, wantBody: ptr(layerA)},
		{name: "blob GET with If-Range of another ETag and an unsatisfiable Range", method: http.MethodGet, path: "/v2/mono/blobs/" + dA.String(),
			header: map[string]string{"Range": "bytes=100-200", "If-Range": `"` + dB.String() + `"`}, status: 200, wantBody: ptr(layerA)},
		{name: "blob GET with a weak If-Range", method: http.MethodGet, path: "/v2/mono/blobs/" + dA.String(),
			header: map[string]string{"Range": "bytes=5-9", "If-Range": `W/"` + dA.String() + `"`}, status: 200, wantBody: ptr(layerA)},
		{name: "blob GET with If-Range of a date", method: http.MethodGet, path: "/v2/mono/blobs/" + dA.String(),
			header: map[string]string{"Range": "bytes=5-9", "If-Range": "Mon, 02 Jan 2006 15:04:05 GMT"}, status: 200, wantBody: ptr(layerA)},
		{name: "blob GET with malformed Range", method: http.MethodGet, path: "/v2/mono/blobs/" + dA.String(), header: map[string]string{"Range": "bytes=five-"},
			status: 416, code: "BLOB_UPLOAD_INVALID", headers: map[string]string{"Content-Range": "bytes */20"}},
		{name: "blob HEAD", method: http.MethodHead, path: "/v2/mono/blobs/" + dA.String(), status: 200,
			headers: map[string]string{"Content-Length": "20", "Docker-Content-Digest": dA.String()}},
		{name: "blob HEAD unknown", method: http.MethodHead, path: "/v2/mono/blobs/" + dB.String(), status: 404},
		{name: "blob GET unknown", method: http.MethodGet, path: "/v2/mono/blobs/" + dB.String(), status: 404, code: "BLOB_UNKNOWN"},
		{name: "blob GET of another repository's blob", method: http.MethodGet, path: "/v2/docker/blobs/" + dA.String(), status: 404, code: "BLOB_UNKNOWN"},
		{name: "blob GET malformed digest", method: http.MethodGet, path: "/v2/mono/blobs/sha256:nothex", status: 400, code: "DIGEST_INVALID"},
		{name: "blob DELETE", method: http.MethodDelete, path: "/v2/mount/blobs/" + dA.String(), status: 202,
			headers: map[string]string{"Docker-Content-Digest": dA.String()}},
		{name: "blob GET after DELETE", method: http.MethodGet, path: "/v2/mount/blobs/" + dA.String(), status: 404, code: "BLOB_UNKNOWN"},
		{name: "blob DELETE again", method: http.MethodDelete, path: "/v2/mount/blobs/" + dA.String(), status: 404, code: "BLOB_UNKNOWN"},
		{name: "blob of the mount source survives", method: http.MethodHead, path: "/v2/mono/blobs/" + dA.String(), status: 200},

		// Manifests.
		pushBlob("img", configJSON),
		pushBlob("img", layerA),
		pushBlob("img", emptyJSON),
		pushManifest("img", "v1", oci.MediaTypeImageManifest, ociImage),
		pushManifest("img", dImage.String(), oci.MediaTypeImageManifest, ociImage),
		pushManifest("img", "index", oci.MediaTypeImageIndex, ociIndex),
		pushManifest("img", "docker", oci.MediaTypeDockerManifest, dockerImage),
		pushManifest("img", "list", oci.MediaTypeDockerList, dockerList),
		{name: "manifest PUT by digest that does not match", method: http.MethodPut, path: "/v2/img/manifests/" + dA.String(), header: ociCT, body: ociImage,
			status: 400, code: "DIGEST_INVALID"},
		{name: "manifest PUT schema 1", method: http.MethodPut, path: "/v2/img/manifests/old",
			header: map[string]string{"Content-Type": oci.MediaTypeDockerSchema1Signed}, body: schema1, status: 400, code: "MANIFEST_INVALID"},
		{name: "manifest PUT with a missing blob", method: http.MethodPut, path: "/v2/img/manifests/missing", header: ociCT, body: missingBlob,
			status: 400, code: "MANIFEST_BLOB_UNKNOWN"},
		{name: "index PUT with a missing child", method: http.MethodPut, path: "/v2/img/manifests/missing",
			header: map[string]string{"Content-Type": oci.MediaTypeImageIndex}, body: missingChild, status: 400, code: "MANIFEST_BLOB_UNKNOWN"},
		{name: "manifest PUT over 4 MiB", method: http.MethodPut, path: "/v2/img/manifests/big",
			header: map[string]string{"Content-Type": oci.MediaTypeImageManifest, "Expect": "100-continue"}, body: bigManifest,
			status: 413, code: "SIZE_INVALID"},
		{name: "manifest PUT over 4 MiB without length", method: http.MethodPut, path: "/v2/img/manifests/big", header: ociCT, body: bigManifest, chunked: true,
			status: 413, code: "SIZE_INVALID"},
		{name: "manifest PUT with mediaType unlike Content-Type", method: http.MethodPut, path: "/v2/img/manifests/mismatch",
			header: map[string]string{"Content-Type": oci.MediaTypeDockerManifest}, body: ociImage, status: 400, code: "MANIFEST_INVALID"},
		{name: "manifest PUT with a bad tag", method: http.MethodPut, path: "/v2/img/manifests/-bad", header: ociCT, body: ociImage,
			status: 400, code: "MANIFEST_INVALID"},
		{name: "manifest PUT not JSON", method: http.MethodPut, path: "/v2/img/manifests/junk", header: ociCT, body: "junk",
			status: 400, code: "MANIFEST_INVALID"},
		{name: "refused manifests left no tag", method: http.MethodGet, path: "/v2/img/tags/list", status: 200,
			wantJSON: `{"name":"img","tags":["docker","index","list","v1"]}`},
		{name: "manifest GET ignores Accept", method: http.MethodGet, path: "/v2/img/manifests/v1",
			header: map[string]string{"Accept": oci.MediaTypeDockerManifest}, status: 200, wantBody: ptr(ociImage),
			headers: map[string]string{"Content-Type": oci.MediaTypeImageManifest, "Docker-Content-Digest": dImage.String(), "ETag": `"` + dImage.String() + `"`}},
		{name: "manifest GET by digest", method: http.MethodGet, path: "/v2/img/manifests/" + dImage.String(),
			header: map[string]string{"Accept": "*/*"}, status: 200, wantBody: ptr(ociImage)},
		{name: "manifest list GET with OCI Accept", method: http.MethodGet, path: "/v2/img/manifests/list",
			header: map[string]string{"Accept": oci.MediaTypeImageIndex}, status: 200, wantBody: ptr(dockerList),
			headers: map[string]string{"Content-Type": oci.MediaTypeDockerList}},
		{name: "docker manifest GET", method: http.MethodGet, path: "/v2/img/manifests/docker", status: 200, wantBody: ptr(dockerImage),
			headers: map[string]string{"Content-Type": oci.MediaTypeDockerManifest}},
		{name: "index GET", method: http.MethodGet, path: "/v2/img/manifests/index", status: 200, wantBody: ptr(ociIndex),
			headers: map[string]string{"Content-Type": oci.MediaTypeImageIndex}},
		{name: "manifest HEAD", method: http.MethodHead, path: "/v2/img/manifests/v1", status: 200,
			headers: map[string]string{"Content-Type": oci.MediaTypeImageManifest, "Content-Length": itoa(len(ociImage)), "Docker-Content-Digest": dImage.String()}},
		{name: "manifest GET If-None-Match", method: http.MethodGet, path: "/v2/img/manifests/v1",
			header: map[string]string{"If-None-Match": `"` + dImage.String() + `"`}, status: 304, wantBody: ptr("")},
		{name: "manifest GET If-None-Match other", method: http.MethodGet, path: "/v2/img/manifests/v1",
			header: map[string]string{"If-None-Match": `"` + dA.String() + `"`}, status: 200, wantBody: ptr(ociImage)},
		{name: "manifest GET If-None-Match list", method: http.MethodGet, path: "/v2/img/manifests/v1",
			header: map[string]string{"If-None-Match": `"` + dA.String() + `", W/"` + dImage.String() + `"`}, status: 304, wantBody: ptr("")},
		{name: "manifest GET If-None-Match *", method: http.MethodGet, path: "/v2/img/manifests/v1",
			header: map[string]string{"If-None-Match": "*"}, status: 304, wantBody: ptr("")},
		{name: "manifest GET If-None-Match longer tag", method: http.MethodGet, path: "/v2/img/manifests/v1",
			header: map[string]string{"If-None-Match": `"` + dImage.String() + `0"`}, status: 200, wantBody: ptr(ociImage)},
		{name: "manifest GET If-None-Match unquoted", method: http.MethodGet, path: "/v2/img/manifests/v1",
			header: map[string]string{"If-None-Match": dImage.String()}, status: 200, wantBody: ptr(ociImage)},
		{name: "manifest GET If-None-Match * of an unknown tag", method: http.MethodGet, path: "/v2/img/manifests/v9",
			header: map[string]string{"If-None-Match": "*"}, status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "manifest GET unknown tag", method: http.MethodGet, path: "/v2/img/manifests/v9", status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "manifest GET unknown digest", method: http.MethodGet, path: "/v2/img/manifests/" + dA.String(), status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "manifest GET unknown repository", method: http.MethodGet, path: "/v2/nowhere/manifests/v1", status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "manifest HEAD unknown", method: http.MethodHead, path: "/v2/img/manifests/v9", status: 404},
		{name: "manifest read as a blob", method: http.MethodGet, path: "/v2/img/blobs/" + dImage.String(), status: 200, wantBody: ptr(ociImage),
			headers: map[string]string{"Docker-Content-Digest": dImage.String()}},

		// Referrers.
		{name: "push a signature", method: http.MethodPut, path: "/v2/img/manifests/" + dSig.String(), header: ociCT, body: sig,
			status: 201, headers: map[string]string{"OCI-Subject": dImage.String(), "Docker-Content-Digest": dSig.String()}},
		{name: "push an SBOM", method: http.MethodPut, path: "/v2/img/manifests/sbom", header: ociCT, body: sbom,
			status: 201, headers: map[string]string{"OCI-Subject": dImage.String()}},
		{name: "a manifest without subject has no OCI-Subject", method: http.MethodPut, path: "/v2/img/manifests/v1", header: ociCT, body: ociImage,
			status: 201, headers: map[string]string{"OCI-Subject": "-"}},
		{name: "referrers", method: http.MethodGet, path: "/v2/img/referrers/" + dImage.String(), status: 200,
			headers: map[string]string{"Content-Type": oci.MediaTypeImageIndex, "OCI-Filters-Applied": "-"},
			check: referrersAre(
				ocispec.Descriptor{MediaType: oci.MediaTypeImageManifest, Digest: dSig, Size: int64(len(sig)), ArtifactType: "application/vnd.example.sig", Annotations: map[string]string{"org.example.signer": "ci"}},
				ocispec.Descriptor{MediaType: oci.MediaTypeImageManifest, Digest: dSbom, Size: int64(len(sbom)), ArtifactType: "application/spdx+json"},
			)},
		{name: "referrers filtered by artifactType", method: http.MethodGet, path: "/v2/img/referrers/" + dImage.String() + "?artifactType=application/spdx%2Bjson",
			status: 200, headers: map[string]string{"OCI-Filters-Applied": "artifactType"},
			check: referrersAre(ocispec.Descriptor{MediaType: oci.MediaTypeImageManifest, Digest: dSbom, Size: int64(len(sbom)), ArtifactType: "application/spdx+json"})},
		{name: "referrers of a manifest without any", method: http.MethodGet, path: "/v2/img/referrers/" + dSig.String(), status: 200, check: referrersAre()},
		{name: "referrers in an unknown repository", method: http.MethodGet, path: "/v2/nowhere/referrers/" + dImage.String(), status: 200, check: referrersAre()},
		{name: "referrers of a malformed digest", method: http.MethodGet, path: "/v2/img/referrers/latest", status: 400, code: "DIGEST_INVALID"},
		{name: "delete the signature", method: http.MethodDelete, path: "/v2/img/manifests/" + dSig.String(), status: 202},
		{name: "referrers after delete", method: http.MethodGet, path: "/v2/img/referrers/" + dImage.String() + "?artifactType=application/vnd.example.sig",
			status: 200, headers: map[string]string{"OCI-Filters-Applied": "artifactType"}, check: referrersAre()},

		// Tag lists.
		{name: "mount blobs for tags", method: http.MethodPost, path: "/v2/tags/blobs/uploads/?mount=" + dCfg.String() + "&from=img", status: 201},
		{name: "mount layer for tags", method: http.MethodPost, path: "/v2/tags/blobs/uploads/?mount=" + dA.String() + "&from=img", status: 201},
		{name: "push with several tags", method: http.MethodPut, path: "/v2/tags/manifests/" + dImage.String() + "?tag=v2&tag=v10&tag=a&tag=B&tag=latest",
			header: ociCT, body: ociImage, status: 201, headers: map[string]string{"OCI-Tag": "v2, v10, a, B, latest"}},
		{name: "push with a bad extra tag", method: http.MethodPut, path: "/v2/tags/manifests/" + dImage.String() + "?tag=ok&tag=no:pe",
			header: ociCT, body: ociImage, status: 400, code: "MANIFEST_INVALID"},
		{name: "tags in lexical order", method: http.MethodGet, path: "/v2/tags/tags/list", status: 200, headers: map[string]string{"Link": "-"},
			wantJSON: `{"name":"tags","tags":["B","a","latest","v10","v2"]}`},
		{name: "tags first page", method: http.MethodGet, path: "/v2/tags/tags/list?n=2", status: 200,
			headers:  map[string]string{"Link": `</v2/tags/tags/list?n=2&last=a>; rel="next"`},
			wantJSON: `{"name":"tags","tags":["B","a"]}`},
		{name: "tags second page", method: http.MethodGet, path: "/v2/tags/tags/list?n=2&last=a", status: 200,
			headers:  map[string]string{"Link": `</v2/tags/tags/list?n=2&last=v10>; rel="next"`},
			wantJSON: `{"name":"tags","tags":["latest","v10"]}`},
		{name: "tags last page", method: http.MethodGet, path: "/v2/tags/tags/list?n=2&last=v10", status: 200, headers: map[string]string{"Link": "-"},
			wantJSON: `{"name":"tags","tags":["v2"]}`},
		{name: "tags page that fits exactly", method: http.MethodGet, path: "/v2/tags/tags/list?n=5", status: 200, headers: map[string]string{"Link": "-"},
			wantJSON: `{"name":"tags","tags":["B","a","latest","v10","v2"]}`},
		{name: "tags n=0", method: http.MethodGet, path: "/v2/tags/tags/list?n=0", status: 200, headers: map[string]string{"Link": "-"},
			wantJSON: `{"name":"tags","tags":[]}`},
		{name: "tags past the end", method: http.MethodGet, path: "/v2/tags/tags/list?last=v2", status: 200,
			wantJSON: `{"name":"tags","tags":[]}`},
		{name: "tags negative n", method: http.MethodGet, path: "/v2/tags/tags/list?n=-1", status: 400},
		{name: "tags after a last that is not a tag", method: http.MethodGet, path: "/v2/tags/tags/list?last=a/b", status: 200,
			wantJSON: `{"name":"tags","tags":["latest","v10","v2"]}`},
		{name: "tags of an unknown repository", method: http.MethodGet, path: "/v2/nowhere/tags/list", status: 404, code: "NAME_UNKNOWN"},

		// Deletes.
		pushBlob("del", configJSON),
		pushBlob("del", layerA),
		pushBlob("del", layerB),
		pushManifest("del", "t1", oci.MediaTypeImageManifest, ociImage),
		pushManifest("del", "t2", oci.MediaTypeImageManifest, ociImage),
		pushManifest("del", "keep", oci.MediaTypeImageManifest, mustJSON(imageManifest(oci.MediaTypeImageManifest,
			descriptor(mtOCIConfig, configJSON), descriptor(mtOCILayer, layerB)))),
		{name: "DELETE by tag", method: http.MethodDelete, path: "/v2/del/manifests/t1", status: 202},
		{name: "deleted tag is gone", method: http.MethodGet, path: "/v2/del/manifests/t1", status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "the manifest stays", method: http.MethodHead, path: "/v2/del/manifests/" + dImage.String(), status: 200},
		{name: "its other tag stays", method: http.MethodHead, path: "/v2/del/manifests/t2", status: 200},
		{name: "DELETE by digest", method: http.MethodDelete, path: "/v2/del/manifests/" + dImage.String(), status: 202},
		{name: "manifest gone", method: http.MethodGet, path: "/v2/del/manifests/" + dImage.String(), status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "its tags gone", method: http.MethodGet, path: "/v2/del/manifests/t2", status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "other tags stay", method: http.MethodGet, path: "/v2/del/tags/list", status: 200, wantJSON: `{"name":"del","tags":["keep"]}`},
		{name: "DELETE by digest again", method: http.MethodDelete, path: "/v2/del/manifests/" + dImage.String(), status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "DELETE unknown tag", method: http.MethodDelete, path: "/v2/del/manifests/t1", status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "DELETE in an unknown repository", method: http.MethodDelete, path: "/v2/nowhere/manifests/t1", status: 404, code: "MANIFEST_UNKNOWN"},

		// Methods and names.
		{name: "POST to a manifest", method: http.MethodPost, path: "/v2/img/manifests/v1", status: 405, code: "UNSUPPORTED",
			headers: map[string]string{"Allow": "GET, HEAD, PUT, DELETE"}},
		{name: "PUT to the catalog", method: http.MethodPut, path: "/v2/_catalog", status: 405, code: "UNSUPPORTED", headers: map[string]string{"Allow": "GET"}},
		{name: "DELETE the base", method: http.MethodDelete, path: "/v2/", status: 405, code: "UNSUPPORTED"},
		{name: "PATCH a blob", method: http.MethodPatch, path: "/v2/img/blobs/" + dA.String(), status: 405, code: "UNSUPPORTED"},
		{name: "GET the upload start", method: http.MethodGet, path: "/v2/img/blobs/uploads/", status: 405, code: "UNSUPPORTED", headers: map[string]string{"Allow": "POST"}},
		{name: "method that is part of DELETE", method: "ELETE", path: "/v2/img/manifests/v1", status: 405, code: "UNSUPPORTED"},
		{name: "method that is part of GET", method: "GE", path: "/v2/img/manifests/v1", status: 405, code: "UNSUPPORTED"},
		{name: "method that is part of PATCH", method: "ATCH", path: "/v2/img/blobs/uploads/" + zeros, status: 405, code: "UNSUPPORTED"},
		{name: "the tag survived odd methods", method: http.MethodHead, path: "/v2/img/manifests/v1", status: 200},
		{name: "escaped slash in the name", method: http.MethodGet, path: "/v2/img%2Fx/manifests/v1", status: 400, code: "NAME_INVALID"},
		{name: "escaped slash, lower case", method: http.MethodGet, path: "/v2/a%2fb/tags/list", status: 400, code: "NAME_INVALID"},
		{name: "upper-case name", method: http.MethodGet, path: "/v2/Img/tags/list", status: 400, code: "NAME_INVALID"},
		{name: "unknown endpoint", method: http.MethodGet, path: "/v2/img/nothing/here", status: 404, code: "NOT_FOUND"},
		{name: "outside /v2", method: http.MethodGet, path: "/v1/img/tags/list", status: 404, code: "NOT_FOUND"},
	}
	ts.run(t, steps)
}

func TestCatalog(t *testing.T) {
	ts := newTestServer(t)
	steps := []step{
		{name: "empty", method: http.MethodGet, path: "/v2/_catalog", status: 200, wantJSON: `{"repositories":[]}`},
		pushBlob("c", layerA),
		pushBlob("a/b", layerA),
		pushBlob("a", layerA),
		pushBlob("b", layerA),
		{name: "all", method: http.MethodGet, path: "/v2/_catalog", status: 200, headers: map[string]string{"Link": "-"},
			wantJSON: `{"repositories":["a","a/b","b","c"]}`},
		{name: "first page", method: http.MethodGet, path: "/v2/_catalog?n=2", status: 200,
			headers:  map[string]string{"Link": `</v2/_catalog?n=2&last=a%2Fb>; rel="next"`},
			wantJSON: `{"repositories":["a","a/b"]}`},
		{name: "next page", method: http.MethodGet, path: "/v2/_catalog?n=2&last=a/b", status: 200, headers: map[string]string{"Link": "-"},
			wantJSON: `{"repositories":["b","c"]}`},
		{name: "page size 1", method: http.MethodGet, path: "/v2/_catalog?n=1&last=b", status: 200, headers: map[string]string{"Link": "-"},
			wantJSON: `{"repositories":["c"]}`},
		{name: "n=0", method: http.MethodGet, path: "/v2/_catalog?n=0", status: 200, headers: map[string]string{"Link": "-"},
			wantJSON: `{"repositories":[]}`},
		{name: "bad n", method: http.MethodGet, path: "/v2/_catalog?n=x", status: 400},
	}
	ts.run(t, steps)
}

func TestEvents(t *testing.T) {
	ts := newTestServer(t)
	ts.run(t, []step{
		pushBlob("ev", configJSON),
		pushBlob("ev", layerA),
		pushManifest("ev", "v1", oci.MediaTypeImageManifest, ociImage),
		{name: "delete tag", method: http.MethodDelete, path: "/v2/ev/manifests/v1", status: 202},
		{name: "delete manifest", method: http.MethodDelete, path: "/v2/ev/manifests/" + dImage.String(), status: 202},
		{name: "refused push", method: http.MethodPut, path: "/v2/ev/manifests/v2", body: "junk", status: 400},
	})
	type ev struct {
		action string
		kind   registry.Kind
		digest digest.Digest
		tag    string
	}
	var got []ev
	for _, e := range ts.takeEvents() {
		got = append(got, ev{e.Action, e.Kind, digest.Digest(e.Digest), e.Tag})
	}
	want := []ev{
		{"push", registry.KindBlob, dCfg, ""},
		{"push", registry.KindBlob, dA, ""},
		{"push", registry.KindManifest, dImage, "v1"},
		{"delete", registry.KindTags, "", "v1"},
		{"delete", registry.KindManifest, dImage, ""},
	}
	if !slices.Equal(got, want) {
		t.Errorf("events %+v, want %+v", got, want)
	}
}

// referrersAre checks a referrers answer: an OCI index of exactly want, in
// any order.
func referrersAre(want ...ocispec.Descriptor) func(t *testing.T, resp *http.Response, body []byte) {
	return func(t *testing.T, resp *http.Response, body []byte) {
		t.Helper()
		if ct := resp.Header.Get("Content-Type"); ct != oci.MediaTypeImageIndex {
			t.Errorf("Content-Type %q", ct)
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(body, &raw); err != nil {
			t.Fatal(err)
		}
		if string(raw["manifests"]) == "null" || raw["manifests"] == nil {
			t.Errorf("manifests is %s, want a list", raw["manifests"])
		}
		var idx ocispec.Index
		if err := json.Unmarshal(body, &idx); err != nil {
			t.Fatal(err)
		}
		if idx.SchemaVersion != 2 || idx.MediaType != oci.MediaTypeImageIndex {
			t.Errorf("index header %d %q", idx.SchemaVersion, idx.MediaType)
		}
		if len(idx.Manifests) != len(want) {
			t.Fatalf("%d referrers, want %d: %s", len(idx.Manifests), len(want), body)
		}
		for _, w := range want {
			found := false
			for _, g := range idx.Manifests {
				if g.Digest == w.Digest {
					found = true
					if mustJSON(g) != mustJSON(w) {
						t.Errorf("referrer %s, want %s", mustJSON(g), mustJSON(w))
					}
				}
			}
			if !found {
				t.Errorf("referrer %s missing from %s", w.Digest, body)
			}
		}
	}
}

func itoa(n int) string { return mustJSON(n) }

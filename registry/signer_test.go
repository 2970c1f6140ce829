package registry_test

import (
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/moat-registry/moat/auth"
	"github.com/moat-registry/moat/oci"
	"github.com/moat-registry/moat/registry"
)

// signerOnly is what the ImageSigner role holds: pull, list and sign, not
// push (Sign stands in for Push when the request's scopes are checked).
type signerOnly struct{}

func (signerOnly) Allows(_ string, a auth.Action) bool {
	return (auth.Pull | auth.List | auth.Sign).Has(a)
}

func (signerOnly) Lists(string) bool { return true }

func (signerOnly) Actor() string { return "signer" }

func (signerOnly) Redirectable() bool { return false }

// A signer pushes referrers by digest only: a tag, in the reference or in
// ?tag=, would let it repoint what others pull.
func TestSignerPushesReferrersByDigestOnly(t *testing.T) {
	var signer atomic.Bool
	ts := newTestServerWith(t, func(ts *testServer) {
		ts.authz = registry.AuthorizerFunc(func(*http.Request, []auth.Scope) (auth.Grant, error) {
			if signer.Load() {
				return signerOnly{}, nil
			}
			return auth.AllowAll{}, nil
		})
	})
	ts.run(t, []step{
		pushBlob("img", configJSON),
		pushBlob("img", layerA),
		pushBlob("img", emptyJSON),
		pushManifest("img", "latest", oci.MediaTypeImageManifest, ociImage),
	})
	signer.Store(true)

	sig := referrer("application/vnd.example.sig", mtEmpty, dImage, len(ociImage), nil)
	dSig := digestOf(sig)
	ct := map[string]string{"Content-Type": oci.MediaTypeImageManifest}
	ts.run(t, []step{
		{name: "referrer under a tag", method: http.MethodPut, path: "/v2/img/manifests/latest", header: ct, body: sig,
			status: 403, code: "DENIED"},
		{name: "referrer by digest with ?tag=", method: http.MethodPut, path: "/v2/img/manifests/" + dSig + "?tag=latest", header: ct, body: sig,
			status: 403, code: "DENIED"},
		{name: "manifest without subject by digest", method: http.MethodPut, path: "/v2/img/manifests/" + dImage.String(), header: ct, body: ociImage,
			status: 403, code: "DENIED"},
		{name: "referrer by digest", method: http.MethodPut, path: "/v2/img/manifests/" + dSig, header: ct, body: sig,
			status: 201, headers: map[string]string{"OCI-Subject": dImage.String(), "OCI-Tag": "-"}},
		{name: "latest still names the image", method: http.MethodHead, path: "/v2/img/manifests/latest", status: 200,
			headers: map[string]string{"Docker-Content-Digest": dImage.String()}},
		{name: "no tag was added", method: http.MethodGet, path: "/v2/img/tags/list", status: 200,
			wantJSON: `{"name":"img","tags":["latest"]}`},
	})
}

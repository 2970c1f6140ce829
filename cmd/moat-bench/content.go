package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
)

// OCI media types of the images the bench pushes.
const (
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar"
)

// smallLayerSize is the size of a small image's one layer.
const smallLayerSize = 4 << 10

type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

type manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        descriptor   `json:"config"`
	Layers        []descriptor `json:"layers"`
}

// smallImage is one image of push-small: a random layer, a config naming
// it and an OCI manifest, pushed under Tag.
type smallImage struct {
	Tag                    string
	Layer, Config          []byte
	LayerDigest, CfgDigest string
	Manifest               []byte
	Digest                 string // the manifest's
}

// newSmallImages builds n distinct images from seed, before any clock
// starts.
func newSmallImages(n int, seed uint64) []smallImage {
	rng := newRand(seed)
	out := make([]smallImage, n)
	for i := range out {
		layer := make([]byte, smallLayerSize)
		fillRandom(rng, layer)
		out[i] = buildImage(fmt.Sprintf("img-%06d", i), layer, i)
	}
	return out
}

func buildImage(tag string, layer []byte, index int) smallImage {
	img := smallImage{Tag: tag, Layer: layer, LayerDigest: sha256Digest(layer)}
	img.Config = fmt.Appendf(nil, `{"architecture":"amd64","os":"linux","config":{"Labels":{"moat-bench.index":"%d"}},"rootfs":{"type":"layers","diff_ids":[%q]}}`,
		index, img.LayerDigest)
	img.CfgDigest = sha256Digest(img.Config)
	m, err := json.Marshal(manifest{
		SchemaVersion: 2,
		MediaType:     mediaManifest,
		Config:        descriptor{MediaType: mediaConfig, Digest: img.CfgDigest, Size: int64(len(img.Config))},
		Layers:        []descriptor{{MediaType: mediaLayer, Digest: img.LayerDigest, Size: int64(len(layer))}},
	})
	if err != nil {
		panic(err) // a fixed struct always marshals
	}
	img.Manifest = m
	img.Digest = sha256Digest(m)
	return img
}

// newRand is a deterministic generator of content.
func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewChaCha8(seedBytes(seed))) }

func seedBytes(seed uint64) [32]byte {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	copy(s[8:], "moat-bench content seed")
	return s
}

func fillRandom(rng *rand.Rand, b []byte) {
	for i := 0; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
	}
	for i := len(b) &^ 7; i < len(b); i++ {
		b[i] = byte(rng.Uint64())
	}
}

// largeBlob is a blob of push-large and pull-large backed by a file. A
// variant replaces the first 8 bytes with its number, so the monolithic
// and the chunked push upload distinct blobs from one file.
type largeBlob struct {
	f       *os.File
	size    int64
	variant uint64
	header  [8]byte
	Digest  string
}

// writeLargeFile writes size random bytes to path.
func writeLargeFile(path string, size int64, seed uint64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	rng := newRand(seed)
	buf := make([]byte, 4<<20)
	for left := size; left > 0; {
		n := min(int64(len(buf)), left)
		fillRandom(rng, buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return err
		}
		left -= n
	}
	return f.Close()
}

// openLargeBlob opens variant v of the file and hashes it. Variant 0 is
// the file as it is.
func openLargeBlob(path string, v uint64) (*largeBlob, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	b := &largeBlob{f: f, size: st.Size(), variant: v}
	if _, err := f.ReadAt(b.header[:min(8, b.size)], 0); err != nil && err != io.EOF {
		f.Close()
		return nil, err
	}
	if v != 0 {
		binary.LittleEndian.PutUint64(b.header[:], v)
	}
	h := sha256.New()
	buf := make([]byte, 1<<20)
	if _, err := io.CopyBuffer(h, b.Part(0, b.size), buf); err != nil {
		f.Close()
		return nil, err
	}
	b.Digest = hexDigest(h)
	return b, nil
}

// Part reads bytes [off, off+n) of the variant.
func (b *largeBlob) Part(off, n int64) io.Reader {
	const hdr = int64(len(b.header))
	if off >= hdr || b.variant == 0 {
		return io.NewSectionReader(b.f, off, n)
	}
	head := min(hdr, off+n, b.size)
	rest := off + n - head
	return io.MultiReader(bytes.NewReader(b.header[off:head]), io.NewSectionReader(b.f, head, rest))
}

// Size is the blob's size in bytes.
func (b *largeBlob) Size() int64 { return b.size }

// Close closes the file.
func (b *largeBlob) Close() error { return b.f.Close() }

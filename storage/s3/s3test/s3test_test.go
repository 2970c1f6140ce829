package s3test_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/moat-registry/moat/storage/s3/s3test"
)

// TestNew starts a gateway of the test's own and uses a bucket of it.
func TestNew(t *testing.T) {
	srv := s3test.New(t)
	opts := srv.NewBucket(t)
	if opts.Endpoint != srv.Endpoint || opts.Bucket == "" || !opts.UsePathStyle {
		t.Fatalf("Options = %+v", opts)
	}
	ctx := context.Background()
	c := srv.Client()
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: &opts.Bucket, Key: aws.String("a/b"), Body: strings.NewReader("hello")}); err != nil {
		t.Fatal(err)
	}
	out, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: &opts.Bucket, Key: aws.String("a/b")})
	if err != nil || aws.ToInt64(out.ContentLength) != 5 {
		t.Fatalf("HeadObject() = %v", err)
	}
	// Buckets are new and empty each time.
	if other := srv.NewBucket(t); other.Bucket == opts.Bucket {
		t.Fatalf("NewBucket() gave %s twice", other.Bucket)
	}
}

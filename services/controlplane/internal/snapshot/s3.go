package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Config names an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, R2 ...).
type S3Config struct {
	// Endpoint is host[:port], without scheme (e.g. "s3.amazonaws.com").
	Endpoint string `env:"SNAPSHOT_S3_ENDPOINT"`
	Bucket   string `env:"SNAPSHOT_S3_BUCKET"`
	// Prefix is prepended to object names (e.g. "flagforge/manifests/").
	Prefix    string `env:"SNAPSHOT_S3_PREFIX"`
	Region    string `env:"SNAPSHOT_S3_REGION"`
	AccessKey string `env:"SNAPSHOT_S3_ACCESS_KEY"`
	SecretKey string `env:"SNAPSHOT_S3_SECRET_KEY"`
	// Insecure uses plain HTTP (a local MinIO).
	Insecure bool `env:"SNAPSHOT_S3_INSECURE"`
}

// Enabled reports whether an S3 bucket is configured (else snapshots go to a
// directory).
func (c S3Config) Enabled() bool { return c.Endpoint != "" || c.Bucket != "" }

// Validate checks the required fields.
func (c S3Config) Validate() error {
	var missing []string
	if c.Endpoint == "" {
		missing = append(missing, "endpoint")
	}
	if c.Bucket == "" {
		missing = append(missing, "bucket")
	}
	if strings.Contains(c.Endpoint, "://") {
		return fmt.Errorf("snapshot: S3 endpoint %q must be host[:port], without scheme", c.Endpoint)
	}
	if len(missing) > 0 {
		return fmt.Errorf("snapshot: S3 %s required", strings.Join(missing, " and "))
	}
	return nil
}

// S3 stores snapshots as objects of a bucket. A single PUT is atomic on S3, so a
// reader never sees a partial snapshot.
type S3 struct {
	c      *minio.Client
	bucket string
	prefix string
}

// NewS3 returns an S3 store. It does not contact the server (the first Put does);
// static credentials when AccessKey is set, else the environment's (AWS_* variables,
// instance role).
func NewS3(c S3Config) (*S3, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	creds := credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{}, &credentials.EnvMinio{}, &credentials.IAM{},
	})
	if c.AccessKey != "" {
		creds = credentials.NewStaticV4(c.AccessKey, c.SecretKey, "")
	}
	cl, err := minio.New(c.Endpoint, &minio.Options{Creds: creds, Secure: !c.Insecure, Region: c.Region})
	if err != nil {
		return nil, fmt.Errorf("snapshot: S3 client: %w", err)
	}
	return &S3{c: cl, bucket: c.Bucket, prefix: c.Prefix}, nil
}

// ObjectName is the object key of a version of target.
func (s *S3) ObjectName(target string, version uint64) (string, error) {
	name, err := Name(target, version)
	if err != nil {
		return "", err
	}
	return s.prefix + name, nil
}

// Put uploads the snapshot.
func (s *S3) Put(ctx context.Context, target string, version uint64, data []byte) error {
	name, err := s.ObjectName(target, version)
	if err != nil {
		return err
	}
	_, err = s.c.PutObject(ctx, s.bucket, name, bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{ContentType: "application/x-protobuf"})
	if err != nil {
		return fmt.Errorf("snapshot: S3 put %s: %w", name, err)
	}
	return nil
}

// Get downloads a snapshot.
func (s *S3) Get(ctx context.Context, target string, version uint64) ([]byte, error) {
	name, err := s.ObjectName(target, version)
	if err != nil {
		return nil, err
	}
	obj, err := s.c.GetObject(ctx, s.bucket, name, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("snapshot: S3 get %s: %w", name, err)
	}
	defer func() { _ = obj.Close() }()
	b, err := io.ReadAll(obj)
	if err != nil {
		var er minio.ErrorResponse
		if errors.As(err, &er) && er.Code == "NoSuchKey" {
			return nil, fmt.Errorf("snapshot: %s: %w", name, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("snapshot: S3 get %s: %w", name, err)
	}
	return b, nil
}

// PutCheckpoint uploads an audit checkpoint beside the manifest snapshots.
func (s *S3) PutCheckpoint(ctx context.Context, org string, seq int64, data []byte) error {
	name, err := CheckpointName(org, seq)
	if err != nil {
		return err
	}
	_, err = s.c.PutObject(ctx, s.bucket, s.prefix+name, bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{ContentType: "application/json"})
	if err != nil {
		return fmt.Errorf("snapshot: S3 put %s: %w", name, err)
	}
	return nil
}

// Checkpoints lists the sequences of an organization's checkpoints, ascending.
func (s *S3) Checkpoints(ctx context.Context, org string) ([]int64, error) {
	name, err := CheckpointName(org, 0)
	if err != nil {
		return nil, err
	}
	prefix := s.prefix + name[:strings.LastIndex(name, "/")+1]
	var out []int64
	for obj := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("snapshot: S3 list %s: %w", prefix, obj.Err)
		}
		if seq, ok := checkpointSeq(strings.TrimPrefix(obj.Key, prefix)); ok {
			out = append(out, seq)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// GetCheckpoint downloads a checkpoint; a missing one wraps fs.ErrNotExist.
func (s *S3) GetCheckpoint(ctx context.Context, org string, seq int64) ([]byte, error) {
	name, err := CheckpointName(org, seq)
	if err != nil {
		return nil, err
	}
	obj, err := s.c.GetObject(ctx, s.bucket, s.prefix+name, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("snapshot: S3 get %s: %w", name, err)
	}
	defer func() { _ = obj.Close() }()
	b, err := io.ReadAll(obj)
	if err != nil {
		var er minio.ErrorResponse
		if errors.As(err, &er) && er.Code == "NoSuchKey" {
			return nil, fmt.Errorf("snapshot: %s: %w", name, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("snapshot: S3 get %s: %w", name, err)
	}
	return b, nil
}

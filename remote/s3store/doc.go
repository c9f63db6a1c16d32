// Package s3store is a remote.Store over an S3-compatible bucket (minio-go
// v7, SigV4): one bucket and key prefix per "node", so several nodes may
// share a bucket.
//
// Put verifies the object's shard format client-side before one PUT of
// known size (with Content-MD5); Get is one ranged GET; List pages with
// StartAfter in key order; Delete is idempotent. Info reports Capacity and
// Free as -1 (S3 does not tell) and the objects under the prefix, up to
// Options.CountLimit: Info itself lists one key (health checks run every
// few seconds with a 3 s limit), and the count, a listing of the whole
// prefix, runs in the background, one at a time; Info waits a second for
// it, then reports the last count (-1 before the first). New creates the
// bucket when it is missing; BucketExists asks without making it, and
// RemoveBucket deletes a bucket with all it holds, for a caller that made
// it and gave up (a failed init).
//
// Errors map S3 codes to the remote sentinels (NoSuchKey -> ErrNotFound,
// InvalidRange -> ErrRange, AccessDenied and signature errors ->
// ErrUnauthorized, quota/storage-full -> ErrFull, 5xx and network failures
// -> ErrUnavailable) and name the endpoint, bucket, prefix and object.
//
// Unlike dirstore and the node server, Get does not verify shard checksums:
// S3 does not know the format. Callers (the grid) verify AEAD tags and
// reconstruct from other shards on mismatch.
//
// The tests run the remotetest suite against a real versitygw gateway
// started by the test (see s3store_test.go).
package s3store

// This file owns the S3 backend (AWS S3 and S3-compatible stores such as
// MinIO or versitygw) on aws-sdk-go-v2: client setup, retries, multipart
// upload and the mapping of S3 errors onto the Bucket contract. The
// back-pressure limiter lives in s3limit.go.

package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"golang.org/x/sync/errgroup"
)

// S3 limits and defaults.
const (
	MinPartSize    = 5 << 20 // S3's minimum for every part but the last
	maxParts       = 10000   // S3's maximum number of parts per upload
	defaultRegion  = "us-east-1"
	defaultRetries = 3
	defaultPart    = 8 << 20
	defaultThresh  = 8 << 20
	defaultUploads = 4
	defaultBackoff = 100 * time.Millisecond
	defaultMaxWait = 5 * time.Second
)

// S3Config configures NewS3. Zero numeric fields take the defaults noted;
// the environment variable each one mirrors is in parentheses.
type S3Config struct {
	Bucket string // (STREAMHOUSE_BUCKET) required
	Region string // (AWS_REGION) default us-east-1
	// Endpoint (S3_ENDPOINT) selects an S3-compatible store; it implies
	// path-style addressing and checksums only where the API requires them
	// (see NewS3). Empty means AWS.
	Endpoint string
	// AccessKey and SecretKey (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY);
	// empty means the default AWS credential chain.
	AccessKey, SecretKey string
	// UploadRetries (S3_UPLOAD_RETRIES) is how many times a failed request
	// is retried after the first attempt: 0 means the default 3, a negative
	// value means no retries. It applies to every request, not only uploads.
	UploadRetries int
	// MultipartThreshold (MULTIPART_THRESHOLD): objects of at least this
	// many bytes use multipart upload. Default 8 MiB.
	MultipartThreshold int64
	// MultipartPartSize (MULTIPART_PART_SIZE): default 8 MiB, at least
	// MinPartSize. Raised automatically if an object would need more than
	// 10,000 parts.
	MultipartPartSize int64
	// ParallelUploadParts (PARALLEL_UPLOAD_PARTS): parts of one upload in
	// flight at once. Default 4.
	ParallelUploadParts int
	// Throttle (THROTTLE_ENABLED) turns on the back-pressure limiter of
	// s3limit.go. The server's configuration defaults it to true; the zero
	// S3Config has it off.
	Throttle bool
	// MaxConcurrency is the limiter's ceiling on requests in flight.
	// Default DefaultS3MaxConcurrency.
	MaxConcurrency int
	// RetryBaseDelay and RetryMaxDelay shape the exponential backoff
	// between attempts: attempt n waits between d/2 and d, where
	// d = min(RetryMaxDelay, RetryBaseDelay * 2^(n-1)). Defaults 100 ms, 5 s.
	RetryBaseDelay, RetryMaxDelay time.Duration
	// CreateBucket creates the bucket if it does not exist (tests, first
	// start against a fresh MinIO).
	CreateBucket bool
	Logger       *slog.Logger // nil discards
}

func (c S3Config) withDefaults() (S3Config, error) {
	if c.Bucket == "" {
		return c, errors.New("s3: bucket name is required")
	}
	if c.Region == "" {
		c.Region = defaultRegion
	}
	if c.UploadRetries == 0 {
		c.UploadRetries = defaultRetries
	} else if c.UploadRetries < 0 {
		c.UploadRetries = 0
	}
	if c.MultipartThreshold <= 0 {
		c.MultipartThreshold = defaultThresh
	}
	if c.MultipartPartSize == 0 {
		c.MultipartPartSize = defaultPart
	}
	if c.MultipartPartSize < MinPartSize {
		return c, fmt.Errorf("s3: multipart part size %d is below S3's minimum %d", c.MultipartPartSize, MinPartSize)
	}
	if c.ParallelUploadParts <= 0 {
		c.ParallelUploadParts = defaultUploads
	}
	if c.MaxConcurrency <= 0 {
		c.MaxConcurrency = DefaultS3MaxConcurrency
	}
	if c.RetryBaseDelay <= 0 {
		c.RetryBaseDelay = defaultBackoff
	}
	if c.RetryMaxDelay <= 0 {
		c.RetryMaxDelay = defaultMaxWait
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// S3 is a Bucket in an S3 bucket. Create it with NewS3.
type S3 struct {
	cfg     S3Config
	client  *s3.Client
	http    *http.Client
	limiter *aimdLimiter // nil when Throttle is off

	putObjects, multipartUploads, parts atomic.Int64

	// unconditional is set once the store has answered a create-only
	// write (If-None-Match: *) with 501 Not Implemented: from then on
	// writes check for the key with a HEAD and then PUT plainly.
	unconditional atomic.Bool
}

var _ Bucket = (*S3)(nil)

// NewS3 connects to the bucket, creating it if cfg.CreateBucket is set, and
// checks that it is reachable.
//
// With a custom Endpoint the SDK computes and validates checksums only
// where the S3 API requires them. Its default since 2025 (CRC32 trailers on
// every upload, in aws-chunked encoding) is rejected by many S3-compatible
// stores; integrity is still covered by the SigV4 payload hash over plain
// HTTP and by TLS over HTTPS. Against AWS the defaults stay on.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &S3{cfg: cfg}
	if cfg.Throttle {
		s.limiter = newAIMDLimiter(cfg.MaxConcurrency, cfg.Logger)
	}

	opts := []func(*config.LoadOptions) error{
		config.WithRegion(cfg.Region),
		// A BuildableClient lets LoadDefaultConfig install AWS_CA_BUNDLE;
		// its transport is then taken over by newS3HTTPClient.
		config.WithHTTPClient(awshttp.NewBuildableClient()),
		config.WithRetryer(func() aws.Retryer { return s.newRetryer() }),
	}
	if cfg.AccessKey != "" || cfg.SecretKey != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, "")))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3: load aws config: %w", err)
	}
	s.http = newS3HTTPClient(awsCfg.HTTPClient)
	awsCfg.HTTPClient = s.http
	s.client = s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
			o.UsePathStyle = true
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		}
		// Ranged reads never carry a whole-object checksum; the SDK would
		// log a warning for each one.
		o.DisableLogOutputChecksumValidationSkipped = true
		if s.limiter != nil {
			o.APIOptions = append(o.APIOptions, s.limiter.addToStack)
		}
	})
	if err := s.checkBucket(ctx); err != nil {
		s.http.CloseIdleConnections()
		return nil, err
	}
	cfg.Logger.Info("s3 object store ready", "bucket", cfg.Bucket, "region", cfg.Region,
		"endpoint", cfg.Endpoint, "retries", cfg.UploadRetries, "multipart_threshold", cfg.MultipartThreshold,
		"part_size", cfg.MultipartPartSize, "parallel_parts", cfg.ParallelUploadParts, "throttle", cfg.Throttle)
	return s, nil
}

// newS3HTTPClient returns a client of our own (so Close can drop its idle
// connections) on the transport the SDK configured, tuned to keep
// connections alive and pooled: with up to MaxConcurrency requests in
// flight, Go's default of 2 idle connections per host would make most
// requests pay a new TCP (and TLS) handshake.
func newS3HTTPClient(sdkClient aws.HTTPClient) *http.Client {
	var t *http.Transport
	if bc, ok := sdkClient.(*awshttp.BuildableClient); ok {
		t = bc.GetTransport() // a copy, with any custom CA bundle
	} else {
		t = http.DefaultTransport.(*http.Transport).Clone()
	}
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = DefaultS3MaxConcurrency
	t.IdleConnTimeout = 90 * time.Second
	// A request whose response never starts (a black-holed connection)
	// fails and is retried instead of hanging until the caller's ctx ends,
	// if it ever does.
	t.ResponseHeaderTimeout = 60 * time.Second
	return &http.Client{
		Transport: t,
		// The SDK handles S3's 3xx answers (wrong region) itself.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// newRetryer is the SDK's standard retryer with our attempt count and
// backoff. It also retries 429 and TooManyRequests, which some S3-compatible
// stores send instead of SlowDown. With the limiter on, the SDK's retry
// quota (a client-side circuit breaker that fails requests once too many
// retries happened) is off: the limiter already reduces the load, and
// failing uploads outright under pressure would only move the retry loop
// up into the caller.
func (s *S3) newRetryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = s.cfg.UploadRetries + 1
		o.MaxBackoff = s.cfg.RetryMaxDelay
		o.Backoff = jitterBackoff{base: s.cfg.RetryBaseDelay, max: s.cfg.RetryMaxDelay}
		o.Retryables = append(o.Retryables,
			retry.RetryableHTTPStatusCode{Codes: map[int]struct{}{http.StatusTooManyRequests: {}}},
			retry.RetryableErrorCode{Codes: map[string]struct{}{"TooManyRequests": {}}},
		)
		if s.cfg.Throttle {
			o.RateLimiter = ratelimit.None
		}
	})
}

// jitterBackoff is exponential backoff with "equal jitter": half the delay
// is fixed so retries never bunch up at zero, half is random so clients
// that failed together do not retry together.
type jitterBackoff struct{ base, max time.Duration }

func (b jitterBackoff) BackoffDelay(attempt int, _ error) (time.Duration, error) {
	d := b.base // doubled per attempt; a loop cannot overflow like a shift
	for i := 1; i < attempt && d < b.max; i++ {
		d *= 2
	}
	d = min(d, b.max)
	half := d / 2
	return half + rand.N(half+1), nil
}

func (s *S3) checkBucket(ctx context.Context) error {
	if s.cfg.CreateBucket {
		in := &s3.CreateBucketInput{Bucket: aws.String(s.cfg.Bucket)}
		if s.cfg.Region != defaultRegion {
			in.CreateBucketConfiguration = &types.CreateBucketConfiguration{
				LocationConstraint: types.BucketLocationConstraint(s.cfg.Region),
			}
		}
		_, err := s.client.CreateBucket(ctx, in)
		var owned *types.BucketAlreadyOwnedByYou
		if err != nil && !errors.As(err, &owned) {
			return fmt.Errorf("s3: create bucket %s: %w", s.cfg.Bucket, err)
		}
		return nil
	}
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.cfg.Bucket)})
	switch statusCode(err) {
	case 0:
		if err != nil {
			return fmt.Errorf("s3: bucket %s unreachable: %w", s.cfg.Bucket, err)
		}
		return nil
	case http.StatusForbidden:
		// A policy may grant object access without s3:ListBucket, which
		// HeadBucket needs; the first real request will tell.
		s.cfg.Logger.Warn("s3: cannot check bucket (403), continuing", "bucket", s.cfg.Bucket)
		return nil
	case http.StatusNotFound:
		return fmt.Errorf("s3: bucket %s does not exist: %w", s.cfg.Bucket, err)
	default:
		return fmt.Errorf("s3: bucket %s unreachable: %w", s.cfg.Bucket, err)
	}
}

// S3Stats are counters for tests and diagnostics.
type S3Stats struct {
	PutObjects       int64 // single-request uploads completed
	MultipartUploads int64 // multipart uploads completed
	Parts            int64 // parts uploaded (in completed or failed uploads)
	Throttled        int64 // back-pressure responses seen by the limiter
	ConcurrencyLimit int   // the limiter's current limit; 0 when Throttle is off
	InFlight         int   // requests holding a limiter slot now
}

// Stats returns a snapshot of the counters.
func (s *S3) Stats() S3Stats {
	st := S3Stats{
		PutObjects:       s.putObjects.Load(),
		MultipartUploads: s.multipartUploads.Load(),
		Parts:            s.parts.Load(),
	}
	if s.limiter != nil {
		st.ConcurrencyLimit, st.InFlight, st.Throttled = s.limiter.state()
	}
	return st
}

// Bucket returns the bucket's name.
func (s *S3) Bucket() string { return s.cfg.Bucket }

// Client returns the underlying SDK client, for tests and tools that need
// S3 features outside the Bucket contract.
func (s *S3) Client() *s3.Client { return s.client }

// Put implements Bucket: one PutObject below the multipart threshold, a
// multipart upload at or above it.
func (s *S3) Put(ctx context.Context, key string, data []byte) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("s3 put: %w", err)
	}
	if s.unconditional.Load() {
		if err := s.checkAbsent(ctx, key); err != nil {
			return err
		}
	}
	err := s.put(ctx, key, data)
	if err != nil && !s.unconditional.Load() && notImplemented(err) {
		// Stores without conditional writes (older MinIO, some S3
		// work-alikes) answer 501. Retrying would fail forever, so fall
		// back: keys carry a per-boot random part, and the HEAD keeps the
		// remaining check (against our own earlier attempt).
		s.unconditional.Store(true)
		s.cfg.Logger.Warn("s3: the store does not support create-only writes (If-None-Match: *); checking for the key before each write instead", "bucket", s.cfg.Bucket, "err", err)
		if err := s.checkAbsent(ctx, key); err != nil {
			return err
		}
		err = s.put(ctx, key, data)
	}
	return err
}

// put writes one object, create-only unless the store lacks it.
func (s *S3) put(ctx context.Context, key string, data []byte) error {
	if int64(len(data)) >= s.cfg.MultipartThreshold {
		return s.putMultipart(ctx, key, data)
	}
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(s.cfg.Bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		IfNoneMatch:   s.ifNoneMatch(), // create only: never replace an object
	})
	if err != nil {
		return s.mapErr("put", key, err)
	}
	s.putObjects.Add(1)
	return nil
}

// ifNoneMatch is the create-only precondition, or nil on a store that
// does not implement it.
func (s *S3) ifNoneMatch() *string {
	if s.unconditional.Load() {
		return nil
	}
	return aws.String("*")
}

// checkAbsent returns ErrExists when key is already in the bucket.
func (s *S3) checkAbsent(ctx context.Context, key string) error {
	_, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key)})
	if err == nil {
		return fmt.Errorf("s3 put %s: %w", key, ErrExists)
	}
	if err := s.mapErr("head", key, err); !errors.Is(err, ErrNotFound) {
		return err
	}
	return nil
}

// notImplemented reports a 501 answer: the store lacks the feature asked for.
func notImplemented(err error) bool {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() == "NotImplemented" {
		return true
	}
	return statusCode(err) == http.StatusNotImplemented
}

// partSize returns the part size for an object of n bytes.
func (s *S3) partSize(n int64) int64 {
	size := s.cfg.MultipartPartSize
	if need := (n + maxParts - 1) / maxParts; need > size {
		size = need
	}
	return size
}

// putMultipart uploads data in parts, ParallelUploadParts at a time. Any
// failure aborts the upload so S3 does not keep (and bill) orphaned parts.
func (s *S3) putMultipart(ctx context.Context, key string, data []byte) error {
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: aws.String(s.cfg.Bucket),
		Key:    aws.String(key),
	})
	if err != nil {
		return s.mapErr("put (create multipart)", key, err)
	}
	uploadID := created.UploadId

	size := s.partSize(int64(len(data)))
	n := (int64(len(data)) + size - 1) / size
	parts := make([]types.CompletedPart, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.cfg.ParallelUploadParts)
	for i := range n {
		if gctx.Err() != nil {
			break // a part failed; do not start more
		}
		body := data[i*size : min((i+1)*size, int64(len(data)))]
		num := aws.Int32(int32(i + 1))
		g.Go(func() error {
			out, err := s.client.UploadPart(gctx, &s3.UploadPartInput{
				Bucket:        aws.String(s.cfg.Bucket),
				Key:           aws.String(key),
				UploadId:      uploadID,
				PartNumber:    num,
				Body:          bytes.NewReader(body),
				ContentLength: aws.Int64(int64(len(body))),
			})
			if err != nil {
				return fmt.Errorf("part %d: %w", *num, err)
			}
			s.parts.Add(1)
			parts[i] = types.CompletedPart{ETag: out.ETag, PartNumber: num}
			return nil
		})
	}
	err = g.Wait()
	if err == nil {
		err = ctx.Err() // the loop may have stopped early on ctx alone
	}
	if err == nil {
		_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
			Bucket:          aws.String(s.cfg.Bucket),
			Key:             aws.String(key),
			UploadId:        uploadID,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
			IfNoneMatch:     s.ifNoneMatch(),
		})
	}
	if err != nil {
		s.abort(ctx, key, uploadID)
		return s.mapErr("put (multipart)", key, err)
	}
	s.multipartUploads.Add(1)
	return nil
}

// abort cancels a multipart upload, even when ctx is already cancelled. If
// that fails too, the parts stay until a bucket lifecycle rule
// (AbortIncompleteMultipartUpload) removes them; the log says so.
func (s *S3) abort(ctx context.Context, key string, uploadID *string) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_, err := s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
		Bucket:   aws.String(s.cfg.Bucket),
		Key:      aws.String(key),
		UploadId: uploadID,
	})
	if err != nil {
		s.cfg.Logger.Warn("s3: abort multipart upload failed; parts remain until a lifecycle rule removes them",
			"key", key, "upload_id", aws.ToString(uploadID), "err", err)
	}
}

// Get implements Bucket.
func (s *S3) Get(ctx context.Context, key string) ([]byte, error) {
	if err := ValidateKey(key); err != nil {
		return nil, fmt.Errorf("s3 get: %w", err)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.cfg.Bucket),
		Key:    aws.String(key),
	})
	if err != nil {
		return nil, s.mapErr("get", key, err)
	}
	defer out.Body.Close()
	data, err := readBody(out.Body, out.ContentLength)
	if err != nil {
		return nil, fmt.Errorf("s3 get %s: read body: %w", key, err)
	}
	return data, nil
}

// GetRange implements Bucket with a Range header.
func (s *S3) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	if err := ValidateKey(key); err != nil {
		return nil, fmt.Errorf("s3 get range: %w", err)
	}
	if err := checkRange(off, length); err != nil {
		return nil, fmt.Errorf("s3 get range %s: %w", key, err)
	}
	rng := fmt.Sprintf("bytes=%d-", off) // open-ended when off+length would overflow
	if length <= math.MaxInt64-off {
		rng = fmt.Sprintf("bytes=%d-%d", off, off+length-1)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.cfg.Bucket),
		Key:    aws.String(key),
		Range:  aws.String(rng),
	})
	if err != nil {
		return nil, s.mapErr("get range", key, err)
	}
	defer out.Body.Close()
	data, err := readBody(out.Body, out.ContentLength)
	if err != nil {
		return nil, fmt.Errorf("s3 get range %s: read body: %w", key, err)
	}
	if out.ContentRange == nil {
		// The store ignored Range and sent the whole object (allowed by
		// HTTP, and what some stores do for empty objects): cut it here.
		end, err := clampRange(int64(len(data)), off, length)
		if err != nil {
			return nil, fmt.Errorf("s3 get range %s: %w", key, err)
		}
		return data[off:end], nil
	}
	return data, nil
}

// readBody reads a response body, allocating once when the size is known.
func readBody(r io.Reader, size *int64) ([]byte, error) {
	if size == nil || *size < 0 {
		return io.ReadAll(r)
	}
	buf := make([]byte, *size)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// Delete implements Bucket. S3 answers 204 for missing keys; some
// compatible stores answer 404, which is also success here.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("s3 delete: %w", err)
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(s.cfg.Bucket),
		Key:    aws.String(key),
	})
	if err != nil {
		if err := s.mapErr("delete", key, err); !IsNotFound(err) {
			return err
		}
	}
	return nil
}

// List implements Bucket with ListObjectsV2, which returns keys in UTF-8
// binary order: the lexical order the contract asks for.
func (s *S3) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(s.cfg.Bucket)}
	if prefix != "" {
		in.Prefix = aws.String(prefix)
	}
	pages := s3.NewListObjectsV2Paginator(s.client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return s.mapErr("list", prefix, err)
		}
		for _, obj := range page.Contents {
			info := ObjectInfo{
				Key:     aws.ToString(obj.Key),
				Size:    aws.ToInt64(obj.Size),
				ModTime: aws.ToTime(obj.LastModified),
			}
			if err := fn(info); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close implements Bucket by closing pooled connections.
func (s *S3) Close() error {
	s.http.CloseIdleConnections()
	return nil
}

// mapErr wraps an SDK error for op on key, adding ErrNotFound or
// ErrInvalidRange where the contract asks for them.
func (s *S3) mapErr(op, key string, err error) error {
	var noKey *types.NoSuchKey
	if errors.As(err, &noKey) {
		return fmt.Errorf("s3 %s %s: %w: %w", op, key, ErrNotFound, err)
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return fmt.Errorf("s3 %s %s: %w: %w", op, key, ErrNotFound, err)
		case "InvalidRange":
			return fmt.Errorf("s3 %s %s: %w (range starts at or past the end of the object): %w", op, key, ErrInvalidRange, err)
		case "PreconditionFailed":
			return fmt.Errorf("s3 %s %s: %w: %w", op, key, ErrExists, err)
		}
	}
	if statusCode(err) == http.StatusPreconditionFailed {
		return fmt.Errorf("s3 %s %s: %w: %w", op, key, ErrExists, err)
	}
	if statusCode(err) == http.StatusRequestedRangeNotSatisfiable {
		return fmt.Errorf("s3 %s %s: %w (range starts at or past the end of the object): %w", op, key, ErrInvalidRange, err)
	}
	if s3Transient(err) {
		return fmt.Errorf("s3 %s %s: %w: %w", op, key, ErrUnavailable, err)
	}
	return fmt.Errorf("s3 %s %s: %w", op, key, err)
}

// statusCode returns the HTTP status of an S3 error response, or 0.
func statusCode(err error) int {
	var respErr *smithyhttp.ResponseError
	if errors.As(err, &respErr) {
		return respErr.HTTPStatusCode()
	}
	return 0
}

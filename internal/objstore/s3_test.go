// Tests specific to the S3 backend: multipart upload against a real server,
// and retry, back-pressure and abort behaviour against a scripted fake.

package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamhouse/streamhouse/internal/objstore"
	"github.com/streamhouse/streamhouse/internal/objstore/objstoretest"
	"github.com/streamhouse/streamhouse/internal/testutil"
)

func TestS3MultipartIsUsed(t *testing.T) {
	t.Parallel()
	env := objstoretest.ReadS3Env(t)
	s := objstoretest.NewS3(t, env, func(c *objstore.S3Config) {
		c.MultipartThreshold = objstore.MinPartSize
		c.MultipartPartSize = objstore.MinPartSize
		c.ParallelUploadParts = 2
	})
	ctx := t.Context()
	big := objstoretest.Data(1, 17<<20+5) // 5+5+5+2 MiB (+5 bytes)
	if err := s.Put(ctx, "big", big); err != nil {
		t.Fatal(err)
	}
	small := objstoretest.Data(2, objstore.MinPartSize-1)
	if err := s.Put(ctx, "small", small); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.MultipartUploads != 1 || st.Parts != 4 || st.PutObjects != 1 {
		t.Fatalf("stats %+v: want 1 multipart upload of 4 parts and 1 single PutObject", st)
	}
	for key, want := range map[string][]byte{"big": big, "small": small} {
		got, err := s.Get(ctx, key)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("Get(%s): %d bytes, %v; want the %d bytes put", key, len(got), err, len(want))
		}
	}
	// The server agrees: a multipart object's ETag ends in -<parts>.
	head, err := s.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.Bucket()), Key: aws.String("big")})
	if err != nil {
		t.Fatal(err)
	}
	if etag := strings.Trim(aws.ToString(head.ETag), `"`); !strings.HasSuffix(etag, "-4") {
		t.Errorf("ETag of the multipart object = %q, want a -4 suffix", etag)
	}
	// Range reads across part boundaries.
	got, err := s.GetRange(ctx, "big", objstore.MinPartSize-3, 6)
	if err != nil || !bytes.Equal(got, big[objstore.MinPartSize-3:objstore.MinPartSize+3]) {
		t.Fatalf("GetRange across a part boundary = %v, %v", got, err)
	}
}

// fakeS3 is a scripted S3 endpoint: handle decides every response and sees
// every request; the bucket check at NewS3 always succeeds.
type fakeS3 struct {
	mu     sync.Mutex
	handle func(w http.ResponseWriter, r *http.Request, n int) // n: 1-based count of requests like this one
	counts map[string]int
}

func newFakeS3(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, n int)) (*fakeS3, *httptest.Server) {
	f := &fakeS3{handle: handle, counts: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.Method == http.MethodHead && strings.Count(strings.Trim(r.URL.Path, "/"), "/") == 0 {
			w.WriteHeader(http.StatusOK) // HeadBucket
			return
		}
		kind := r.Method + " " + requestKind(r)
		f.mu.Lock()
		f.counts[kind]++
		n := f.counts[kind]
		f.mu.Unlock()
		f.handle(w, r, n)
	}))
	t.Cleanup(srv.Close)
	return f, srv
}

// requestKind names an S3 request by its query: "uploads", "part", "upload"
// (complete/abort) or "object".
func requestKind(r *http.Request) string {
	q := r.URL.Query()
	switch {
	case q.Has("uploads"):
		return "uploads"
	case q.Has("partNumber"):
		return "part"
	case q.Has("uploadId"):
		return "upload"
	}
	return "object"
}

func (f *fakeS3) count(kind string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[kind]
}

func writeS3Error(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>scripted</Message><RequestId>1</RequestId></Error>`, code)
}

func newFakeClient(t *testing.T, srv *httptest.Server, tweak func(*objstore.S3Config)) *objstore.S3 {
	t.Helper()
	cfg := objstore.S3Config{
		Bucket:         "fake",
		Endpoint:       srv.URL,
		AccessKey:      "key",
		SecretKey:      "secret",
		Throttle:       true,
		RetryBaseDelay: time.Millisecond,
		RetryMaxDelay:  4 * time.Millisecond,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	s, err := objstore.NewS3(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestS3SlowDownShrinksLimiterAndPutSucceeds(t *testing.T) {
	t.Parallel()
	fake, srv := newFakeS3(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n <= 2 {
			writeS3Error(w, http.StatusServiceUnavailable, "SlowDown")
			return
		}
		w.Header().Set("ETag", `"abc"`)
		w.WriteHeader(http.StatusOK)
	})
	s := newFakeClient(t, srv, nil)
	if err := s.Put(t.Context(), "k", []byte("data")); err != nil {
		t.Fatalf("Put after two SlowDowns = %v, want success on the third attempt", err)
	}
	if n := fake.count("PUT object"); n != 3 {
		t.Fatalf("PUT attempts = %d, want 3", n)
	}
	// 64 halved twice (each SlowDown answered a request sent after the
	// previous halving) is 16, plus 1 for the success.
	st := s.Stats()
	if st.Throttled != 2 || st.ConcurrencyLimit != objstore.DefaultS3MaxConcurrency/4+1 || st.InFlight != 0 {
		t.Fatalf("stats %+v: want Throttled 2, ConcurrencyLimit %d, InFlight 0", st, objstore.DefaultS3MaxConcurrency/4+1)
	}
}

func TestS3RetriesAreBounded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		retries, wantAttempts int
		code                  string
		status                int
	}{
		{retries: 0, wantAttempts: 4, code: "SlowDown", status: http.StatusServiceUnavailable}, // default 3 retries
		{retries: 1, wantAttempts: 2, code: "TooManyRequests", status: http.StatusTooManyRequests},
		{retries: -1, wantAttempts: 1, code: "InternalError", status: http.StatusInternalServerError},
		{retries: 3, wantAttempts: 1, code: "AccessDenied", status: http.StatusForbidden}, // not retryable
	} {
		t.Run(fmt.Sprintf("%s/retries=%d", tc.code, tc.retries), func(t *testing.T) {
			t.Parallel()
			fake, srv := newFakeS3(t, func(w http.ResponseWriter, r *http.Request, n int) {
				writeS3Error(w, tc.status, tc.code)
			})
			s := newFakeClient(t, srv, func(c *objstore.S3Config) { c.UploadRetries = tc.retries })
			err := s.Put(t.Context(), "k", []byte("data"))
			if err == nil || !strings.Contains(err.Error(), tc.code) {
				t.Fatalf("Put = %v, want an error naming %s", err, tc.code)
			}
			if n := fake.count("PUT object"); n != tc.wantAttempts {
				t.Fatalf("attempts = %d, want %d", n, tc.wantAttempts)
			}
		})
	}
}

func TestS3ThrottleOff(t *testing.T) {
	t.Parallel()
	_, srv := newFakeS3(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			writeS3Error(w, http.StatusServiceUnavailable, "SlowDown")
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	s := newFakeClient(t, srv, func(c *objstore.S3Config) { c.Throttle = false })
	if err := s.Put(t.Context(), "k", nil); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.ConcurrencyLimit != 0 || st.Throttled != 0 {
		t.Fatalf("stats with Throttle off = %+v, want no limiter", st)
	}
}

func TestS3MultipartFailureAborts(t *testing.T) {
	t.Parallel()
	fake, srv := newFakeS3(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch r.Method + " " + requestKind(r) {
		case "POST uploads":
			fmt.Fprint(w, `<InitiateMultipartUploadResult><Bucket>fake</Bucket><Key>k</Key><UploadId>u1</UploadId></InitiateMultipartUploadResult>`)
		case "PUT part":
			if r.URL.Query().Get("partNumber") == "2" {
				writeS3Error(w, http.StatusBadRequest, "InvalidArgument") // not retryable
				return
			}
			w.Header().Set("ETag", `"p"`)
		case "DELETE upload":
			if r.URL.Query().Get("uploadId") != "u1" {
				writeS3Error(w, http.StatusNotFound, "NoSuchUpload")
				return
			}
			w.WriteHeader(http.StatusNoContent)
		default:
			writeS3Error(w, http.StatusNotImplemented, "NotImplemented")
		}
	})
	s := newFakeClient(t, srv, func(c *objstore.S3Config) {
		c.MultipartThreshold = objstore.MinPartSize
		c.MultipartPartSize = objstore.MinPartSize
		c.ParallelUploadParts = 1 // deterministic: part 3 is never started
	})
	err := s.Put(t.Context(), "k", make([]byte, 3*objstore.MinPartSize))
	if err == nil || !strings.Contains(err.Error(), "InvalidArgument") {
		t.Fatalf("Put = %v, want the part's error", err)
	}
	if n := fake.count("DELETE upload"); n != 1 {
		t.Fatalf("AbortMultipartUpload calls = %d, want 1", n)
	}
	if n := fake.count("POST upload"); n != 0 {
		t.Fatalf("CompleteMultipartUpload called %d times after a failed part", n)
	}
	if n := fake.count("PUT part"); n != 2 {
		t.Fatalf("UploadPart calls = %d, want 2 (stop after the failure)", n)
	}
}

func TestS3MultipartParallelism(t *testing.T) {
	t.Parallel()
	const parallel = 3
	var mu sync.Mutex
	inFlight, maxInFlight := 0, 0
	parts := map[string]int{}
	_, srv := newFakeS3(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch r.Method + " " + requestKind(r) {
		case "POST uploads":
			fmt.Fprint(w, `<InitiateMultipartUploadResult><UploadId>u1</UploadId></InitiateMultipartUploadResult>`)
		case "PUT part":
			mu.Lock()
			inFlight++
			maxInFlight = max(maxInFlight, inFlight)
			parts[r.URL.Query().Get("partNumber")]++
			mu.Unlock()
			// Hold the part until the others arrive (bounded), so the
			// observed maximum reflects the client's parallelism.
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) {
				mu.Lock()
				reached := maxInFlight >= parallel
				mu.Unlock()
				if reached {
					break
				}
				time.Sleep(time.Millisecond)
			}
			mu.Lock()
			inFlight--
			mu.Unlock()
			w.Header().Set("ETag", `"p"`)
		case "POST upload":
			fmt.Fprint(w, `<CompleteMultipartUploadResult><ETag>"x-6"</ETag></CompleteMultipartUploadResult>`)
		default:
			writeS3Error(w, http.StatusNotImplemented, "NotImplemented")
		}
	})
	s := newFakeClient(t, srv, func(c *objstore.S3Config) {
		c.MultipartThreshold = objstore.MinPartSize
		c.MultipartPartSize = objstore.MinPartSize
		c.ParallelUploadParts = parallel
	})
	if err := s.Put(t.Context(), "k", make([]byte, 6*objstore.MinPartSize)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if maxInFlight != parallel {
		t.Errorf("max parts in flight = %d, want %d", maxInFlight, parallel)
	}
	if len(parts) != 6 {
		t.Errorf("parts uploaded: %v, want 1..6 once each", parts)
	}
	if st := s.Stats(); st.MultipartUploads != 1 || st.Parts != 6 {
		t.Errorf("stats %+v", st)
	}
}

func TestS3ConfigValidation(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	if _, err := objstore.NewS3(ctx, objstore.S3Config{}); err == nil {
		t.Error("NewS3 without a bucket succeeded")
	}
	if _, err := objstore.NewS3(ctx, objstore.S3Config{Bucket: "b", MultipartPartSize: 1 << 20}); err == nil {
		t.Error("NewS3 with a 1 MiB part size succeeded")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound) // HeadBucket: no such bucket
	}))
	defer srv.Close()
	_, err := objstore.NewS3(ctx, objstore.S3Config{Bucket: "nope", Endpoint: srv.URL, AccessKey: "k", SecretKey: "s"})
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("NewS3 on a missing bucket = %v, want 'does not exist'", err)
	}
}

func TestS3CancelWhileThrottledWaits(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	fake, srv := newFakeS3(t, func(w http.ResponseWriter, r *http.Request, n int) {
		<-release
		w.WriteHeader(http.StatusOK)
	})
	defer close(release)
	s := newFakeClient(t, srv, func(c *objstore.S3Config) { c.MaxConcurrency = 1 })
	go s.Put(context.Background(), "first", nil) // takes the only slot and blocks in the server
	testutil.WaitFor(t, "the first request to hold the slot", func() bool { return s.Stats().InFlight == 1 })
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	err := s.Put(ctx, "second", nil)
	if err == nil || !strings.Contains(err.Error(), "deadline exceeded") {
		t.Fatalf("Put waiting for a slot = %v, want the ctx deadline", err)
	}
	// The second request never reached the server: it waited for a slot.
	if n := fake.count("PUT object"); n != 1 {
		t.Fatalf("server saw %d PUTs, want 1", n)
	}
}

// A store that answers create-only writes (If-None-Match: *) with 501 is
// written with a HEAD check and a plain PUT instead of being retried
// forever; a key the HEAD finds is still refused with ErrExists.
func TestS3WithoutConditionalWrites(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	stored := map[string]bool{}
	fake, srv := newFakeS3(t, func(w http.ResponseWriter, r *http.Request, n int) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Method == http.MethodPut && r.Header.Get("If-None-Match") != "":
			writeS3Error(w, http.StatusNotImplemented, "NotImplemented")
		case r.Method == http.MethodPut:
			stored[r.URL.Path] = true
			w.Header().Set("ETag", `"abc"`)
			w.WriteHeader(http.StatusOK)
		case r.Method == http.MethodHead && stored[r.URL.Path]:
			w.WriteHeader(http.StatusOK)
		case r.Method == http.MethodHead:
			w.WriteHeader(http.StatusNotFound)
		default:
			writeS3Error(w, http.StatusBadRequest, "Unexpected")
		}
	})
	s := newFakeClient(t, srv, nil)
	ctx := t.Context()
	for _, key := range []string{"a", "b"} {
		if err := s.Put(ctx, key, []byte("data")); err != nil {
			t.Fatalf("Put %s on a store without conditional writes = %v", key, err)
		}
	}
	// One refused conditional attempt, then plain PUTs only.
	if n := fake.count("PUT object"); n != 3 {
		t.Fatalf("PUT attempts = %d, want 3 (one conditional, two plain)", n)
	}
	if err := s.Put(ctx, "a", []byte("other")); !errors.Is(err, objstore.ErrExists) {
		t.Fatalf("Put over an existing key = %v, want ErrExists", err)
	}
}

// Package kmstest runs a real KMS for tests: local-kms
// (github.com/nsmithuk/local-kms, pinned in go.mod as a tool dependency),
// one private process per [Start], plus a [Proxy] that injects delays,
// 503s and throttling in front of it.
//
//	s := kmstest.Start(t) // builds local-kms once, starts it, stops it at t.Cleanup
//	arn := s.CreateKey(t)
//	p, err := awskms.New(ctx, awskms.Options{KeyARN: arn, Endpoint: s.Endpoint(), ConfigOptions: s.ConfigOptions()})
//
// # The binary
//
// The first Start in a test binary builds local-kms with `go build` (about
// 30 s on 2 cores) into os.UserCacheDir()/blindex/kmstest, named after the
// module version in go.mod and the Go version, under a file lock so that test
// binaries running in parallel build it once; later runs reuse it. Set
// BLINDEX_LOCAL_KMS to the path of a prebuilt binary to skip the build. The
// tests must run inside the blindex module (go test does that).
//
// # Each server
//
// Each server has its own temporary KMS_DATA_PATH and its own loopback port
// (picked by listening on 127.0.0.1:0; local-kms exits on a busy port, and
// Start then retries with another). Start waits until it answers a
// ListKeys, and kills it at t.Cleanup. local-kms binds every interface; the
// harness only ever talks to 127.0.0.1.
//
// # Known differences from AWS KMS
//
//   - Decrypt without KeyId on a disabled key returns AccessDeniedException
//     (AWS: DisabledException). blindex always sends KeyId.
//   - Decrypt naming another key returns InvalidCiphertextException (AWS:
//     IncorrectKeyException). Both are the same class for blindex.
//   - CancelKeyDeletion leaves the key enabled (AWS: disabled; EnableKey
//     is needed).
//   - RotateKeyOnDemand returns 501.
//   - Credentials and signatures are not checked.
package kmstest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// Region and AccountID of every server Start starts.
const (
	Region    = "eu-west-1"
	AccountID = "111122223333"
)

// Server is one running local-kms.
type Server struct {
	endpoint string
	client   *kms.Client
	proc     *os.Process
	stop     func()
}

// Start starts a local-kms for t and stops it at t.Cleanup. It fails t if
// local-kms cannot be built or does not come up.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	var lastErr error
	for attempt := range 5 {
		s, err := start(t, bin, filepath.Join(dir, fmt.Sprintf("try%d", attempt)))
		if err == nil {
			return s
		}
		lastErr = err
		t.Logf("kmstest: local-kms did not come up (attempt %d): %v", attempt+1, err)
	}
	t.Fatalf("kmstest: local-kms did not come up: %v", lastErr)
	return nil
}

func start(t testing.TB, bin, dir string) (*Server, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "local-kms.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"PORT="+strconv.Itoa(port),
		"KMS_DATA_PATH="+filepath.Join(dir, "data"),
		"KMS_SEED_PATH="+filepath.Join(dir, "no-seed.yaml"),
		"KMS_REGION="+Region,
		"KMS_ACCOUNT_ID="+AccountID,
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Dir = dir
	setSysProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		cmd.Process.Kill()
		<-exited
	}

	s := &Server{endpoint: "http://127.0.0.1:" + strconv.Itoa(port), proc: cmd.Process, stop: stop}
	s.client = newClient(s.endpoint)
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-exited:
			return nil, fmt.Errorf("local-kms exited: %s", tail(logPath))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		out, err := s.client.ListKeys(ctx, &kms.ListKeysInput{})
		cancel()
		if err == nil && len(out.Keys) == 0 {
			break // up, and ours: a fresh data path holds no key
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("local-kms not answering on port %d: %v: %s", port, err, tail(logPath))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// It must still be ours (another process may have won the port).
	select {
	case <-exited:
		return nil, fmt.Errorf("local-kms exited: %s", tail(logPath))
	default:
	}
	t.Cleanup(stop)
	return s, nil
}

// Stop kills local-kms for good: connections to it are refused (KMS down).
func (s *Server) Stop() { s.stop() }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(bytes.TrimSpace(b))
}

// Credentials returns the static fake credentials the harness uses (local-kms
// does not check them).
func Credentials() aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider("AKIAKMSTEST", "kmstest-secret", "")
}

func newClient(endpoint string) *kms.Client {
	return kms.New(kms.Options{
		Region:       Region,
		Credentials:  Credentials(),
		BaseEndpoint: aws.String(endpoint),
	})
}

// Endpoint returns the server's URL, http://127.0.0.1:PORT.
func (s *Server) Endpoint() string { return s.endpoint }

// Region returns the server's region ([Region]).
func (s *Server) Region() string { return Region }

// Client returns a KMS client for the server, with static fake credentials:
// the tests' admin client (DisableKey, ScheduleKeyDeletion, ...).
func (s *Server) Client() *kms.Client { return s.client }

// ConfigOptions returns options for config.LoadDefaultConfig (as in
// awskms.Options.ConfigOptions) that use the fake credentials, so that no
// credential chain (and no instance metadata service) is consulted.
func (s *Server) ConfigOptions() []func(*config.LoadOptions) error {
	return []func(*config.LoadOptions) error{config.WithCredentialsProvider(Credentials())}
}

// CreateKey creates a symmetric encryption key and returns its ARN.
func (s *Server) CreateKey(t testing.TB) string {
	t.Helper()
	out, err := s.client.CreateKey(context.Background(), &kms.CreateKeyInput{})
	if err != nil {
		t.Fatalf("kmstest: CreateKey: %v", err)
	}
	return aws.ToString(out.KeyMetadata.Arn)
}

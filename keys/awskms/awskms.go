package awskms

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/blindex/blindex/keys"
)

// Defaults for [Options].
const (
	DefaultTimeout       = 5 * time.Second
	DefaultMaxAttempts   = 5
	DefaultMaxConcurrent = 16
	maxBackoff           = 2 * time.Second
)

// Options configures a [Provider]. Zero values mean the documented default.
type Options struct {
	// KeyARN is the KMS key's full ARN, arn:aws:kms:REGION:ACCOUNT:key/ID.
	// Required. Aliases are refused: an alias can be re-pointed at another
	// key by whoever controls it.
	KeyARN string
	// Region is the configuration's data-residency region. It must equal
	// the key ARN's region. Default: the key ARN's region.
	Region string
	// Endpoint overrides the KMS endpoint URL (e.g. a VPC endpoint or a
	// local KMS for tests). Default: the configuration chain's
	// (AWS_ENDPOINT_URL_KMS, endpoint_url in the shared config), else AWS's.
	Endpoint string
	// Timeout bounds each attempt of a KMS call (one HTTP request).
	// Default 5s.
	Timeout time.Duration
	// MaxAttempts is how many times one call is attempted, the first
	// included, for retryable failures. Default 5.
	MaxAttempts int
	// MaxConcurrent bounds the KMS calls in flight at once. Default 16.
	MaxConcurrent int
	// Audit, if not nil, receives one line per KMS call (operations
	// GenerateDataKey and Decrypt), whatever its outcome. Default: none.
	Audit *keys.AuditLog
	// Org, if not empty, is the organisation that owns this configuration:
	// a call whose encryption context names another organisation is refused
	// before it reaches KMS. Default: no check.
	Org string
	// ConfigOptions are passed to config.LoadDefaultConfig after the
	// region, e.g. config.WithSharedConfigProfile or
	// config.WithCredentialsProvider. Default: none.
	ConfigOptions []func(*config.LoadOptions) error
}

// Provider wraps root keys with an AWS KMS key. It is safe for concurrent
// use.
type Provider struct {
	client  *kms.Client
	keyARN  string
	timeout time.Duration
	sem     chan struct{}
	audit   *keys.AuditLog
	org     string
}

var _ keys.Provider = (*Provider)(nil)

// New validates opts (reporting every problem at once), loads the AWS
// configuration and returns a provider. It makes no KMS call.
func New(ctx context.Context, opts Options) (*Provider, error) {
	var errs []error
	region := opts.Region
	if opts.KeyARN == "" {
		errs = append(errs, errors.New("KeyARN is required"))
	} else if a, err := arn.Parse(opts.KeyARN); err != nil {
		errs = append(errs, fmt.Errorf("KeyARN is not an ARN: %w", err))
	} else {
		switch {
		case a.Service != "kms":
			errs = append(errs, fmt.Errorf("KeyARN is a %q ARN, not a KMS key's", a.Service))
		case strings.HasPrefix(a.Resource, "alias/"):
			errs = append(errs, errors.New("KeyARN is an alias ARN: use the key's ARN (an alias can be re-pointed at another key)"))
		case !strings.HasPrefix(a.Resource, "key/") || len(a.Resource) == len("key/"):
			errs = append(errs, errors.New("KeyARN does not name a key (arn:aws:kms:REGION:ACCOUNT:key/ID)"))
		}
		switch {
		case a.Region == "":
			errs = append(errs, errors.New("KeyARN has no region"))
		case region == "":
			region = a.Region
		case region != a.Region:
			errs = append(errs, fmt.Errorf("the key is in region %s but the configuration's region is %s: KMS calls must stay in the configuration's region", a.Region, region))
		}
	}
	if opts.Endpoint != "" {
		if u, err := url.Parse(opts.Endpoint); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("Endpoint %q is not an http(s) URL", opts.Endpoint))
		}
	}
	timeout, attempts, concurrent := opts.Timeout, opts.MaxAttempts, opts.MaxConcurrent
	if timeout < 0 || attempts < 0 || concurrent < 0 {
		errs = append(errs, errors.New("Timeout, MaxAttempts and MaxConcurrent must not be negative"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("awskms: invalid options: %w", errors.Join(errs...))
	}
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	if attempts == 0 {
		attempts = DefaultMaxAttempts
	}
	if concurrent == 0 {
		concurrent = DefaultMaxConcurrent
	}

	loadOpts := append([]func(*config.LoadOptions) error{config.WithRegion(region)}, opts.ConfigOptions...)
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("awskms: loading the AWS configuration: %w", err)
	}
	client := kms.NewFromConfig(cfg, func(o *kms.Options) {
		o.Region = region
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		o.HTTPClient = awshttp.NewBuildableClient().WithTimeout(timeout)
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = attempts
			so.MaxBackoff = maxBackoff
		})
	})
	return &Provider{
		client:  client,
		keyARN:  opts.KeyARN,
		timeout: timeout,
		sem:     make(chan struct{}, concurrent),
		audit:   opts.Audit,
		org:     opts.Org,
	}, nil
}

// KeyID returns the key ARN.
func (p *Provider) KeyID() string { return p.keyARN }

// GenerateRootKey calls KMS GenerateDataKey (AES_256) with the key ARN and
// ec, and returns the plaintext key and its ciphertext blob.
func (p *Provider) GenerateRootKey(ctx context.Context, ec keys.EncryptionContext) (plaintext, wrapped []byte, err error) {
	if err := p.check(ec); err != nil {
		return nil, nil, err
	}
	if err := p.acquire(ctx); err != nil {
		return nil, nil, err
	}
	defer p.release()
	start := time.Now()
	defer func() { p.record(keys.OpGenerateDataKey, ec, err, start) }()

	out, err := p.client.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
		KeyId:             aws.String(p.keyARN),
		KeySpec:           types.DataKeySpecAes256,
		EncryptionContext: ec.Map(),
	})
	if err != nil {
		return nil, nil, classify(keys.OpGenerateDataKey, err)
	}
	switch {
	case len(out.Plaintext) != keys.RootKeySize:
		keys.Zero(out.Plaintext)
		return nil, nil, &Error{Op: keys.OpGenerateDataKey, Detail: "KMS returned a key of the wrong size", class: keys.ErrKeyUnavailable}
	case len(out.CiphertextBlob) == 0:
		keys.Zero(out.Plaintext)
		return nil, nil, &Error{Op: keys.OpGenerateDataKey, Detail: "KMS returned no ciphertext", class: keys.ErrKeyUnavailable}
	case aws.ToString(out.KeyId) != p.keyARN:
		keys.Zero(out.Plaintext)
		return nil, nil, &Error{Op: keys.OpGenerateDataKey, Detail: "KMS used another key than the one named", class: keys.ErrKeyRevoked}
	}
	return out.Plaintext, out.CiphertextBlob, nil
}

// UnwrapRootKey calls KMS Decrypt with the key ARN and ec.
func (p *Provider) UnwrapRootKey(ctx context.Context, wrapped []byte, ec keys.EncryptionContext) (key []byte, err error) {
	if err := p.check(ec); err != nil {
		return nil, err
	}
	if len(wrapped) == 0 {
		return nil, fmt.Errorf("awskms: empty wrapped key: %w", keys.ErrInvalidWrappedKey)
	}
	if err := p.acquire(ctx); err != nil {
		return nil, err
	}
	defer p.release()
	start := time.Now()
	defer func() { p.record(keys.OpDecrypt, ec, err, start) }()

	out, err := p.client.Decrypt(ctx, &kms.DecryptInput{
		KeyId:               aws.String(p.keyARN),
		CiphertextBlob:      wrapped,
		EncryptionContext:   ec.Map(),
		EncryptionAlgorithm: types.EncryptionAlgorithmSpecSymmetricDefault,
	})
	if err != nil {
		return nil, classify(keys.OpDecrypt, err)
	}
	switch {
	case aws.ToString(out.KeyId) != p.keyARN:
		keys.Zero(out.Plaintext)
		return nil, &Error{Op: keys.OpDecrypt, Detail: "KMS used another key than the one named", class: keys.ErrKeyRevoked, invalid: true}
	case len(out.Plaintext) != keys.RootKeySize:
		keys.Zero(out.Plaintext)
		return nil, &Error{Op: keys.OpDecrypt, Detail: "the ciphertext does not hold a root key", class: keys.ErrKeyRevoked, invalid: true}
	}
	return out.Plaintext, nil
}

func (p *Provider) check(ec keys.EncryptionContext) error {
	if err := ec.Validate(); err != nil {
		return err
	}
	if p.org != "" && ec.Org != p.org {
		return fmt.Errorf("awskms: the encryption context names another organisation than this configuration's: %w", keys.ErrInvalidContext)
	}
	return nil
}

func (p *Provider) acquire(ctx context.Context) error {
	select {
	case p.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return &Error{Op: "wait", Detail: "no free KMS call slot", class: keys.ErrKeyUnavailable, cause: ctx.Err()}
	}
}

func (p *Provider) release() { <-p.sem }

func (p *Provider) record(op string, ec keys.EncryptionContext, err error, start time.Time) {
	p.audit.Record(keys.AuditEvent{Operation: op, KeyID: p.keyARN, Context: ec, Err: err, Latency: time.Since(start)})
}

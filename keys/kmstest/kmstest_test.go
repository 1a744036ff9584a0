package kmstest

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"
)

func TestStartAndProxy(t *testing.T) {
	start := time.Now()
	Binary(t)
	t.Logf("local-kms binary ready in %v", time.Since(start))
	start = time.Now()
	s := Start(t)
	t.Logf("local-kms up in %v at %s", time.Since(start), s.Endpoint())
	arn := s.CreateKey(t)
	if arn == "" {
		t.Fatal("no ARN")
	}
	ctx := context.Background()
	if _, err := s.Client().DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	// Two servers are independent.
	s2 := Start(t)
	if _, err := s2.Client().DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(arn)}); err == nil {
		t.Error("the second server knows the first one's key")
	}

	p := s.NewProxy(t)
	c := kms.New(kms.Options{Region: Region, Credentials: Credentials(), BaseEndpoint: aws.String(p.Endpoint()),
		RetryMaxAttempts: 1})
	if _, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(arn)}); err != nil {
		t.Fatalf("pass through: %v", err)
	}
	check := func(wantCode string, wantStatus int) {
		t.Helper()
		_, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(arn)})
		var ae smithy.APIError
		var he interface{ HTTPStatusCode() int }
		if !errors.As(err, &ae) || ae.ErrorCode() != wantCode || !errors.As(err, &he) || he.HTTPStatusCode() != wantStatus {
			t.Errorf("got %v, want %s (HTTP %d)", err, wantCode, wantStatus)
		}
	}
	p.Fail503()
	check("ServiceUnavailableException", http.StatusServiceUnavailable)
	p.Throttle()
	check("ThrottlingException", http.StatusBadRequest)
	p.Delay(300 * time.Millisecond)
	start = time.Now()
	if _, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("delayed request took %v", d)
	}
	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := c.DescribeKey(tctx, &kms.DescribeKeyInput{KeyId: aws.String(arn)}); err == nil {
		t.Error("a 300ms delay did not time out a 50ms call")
	}
	if p.Requests() != 5 {
		t.Errorf("proxy counted %d requests, want 5", p.Requests())
	}
}

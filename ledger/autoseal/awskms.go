package autoseal

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
)

// AWSKMS wraps the root key with an AWS KMS symmetric key through the official SDK, so the
// standard credential chain (environment, shared config, instance role) applies.
type AWSKMS struct {
	client *kms.Client
	keyID  string
}

var (
	_ Wrapper   = (*AWSKMS)(nil)
	_ KeyStater = (*AWSKMS)(nil)
)

func openAWSKMS(ctx context.Context, p params) (*AWSKMS, error) {
	keyID, err := p.required(TypeAWSKMS, "kms_key_id", "VAULT_AWSKMS_SEAL_KEY_ID")
	if err != nil {
		return nil, err
	}
	opts := []func(*awsconfig.LoadOptions) error{
		// The server bounds each call with its own deadline and retries at its own pace.
		awsconfig.WithRetryMaxAttempts(2),
	}
	if region := p.get("region", "AWS_REGION", "AWS_DEFAULT_REGION"); region != "" {
		opts = append(opts, awsconfig.WithRegion(region))
	} else {
		opts = append(opts, awsconfig.WithRegion("us-east-1")) // Vault's default
	}
	if ak, sk := p.get("access_key"), p.get("secret_key"); ak != "" || sk != "" {
		if ak == "" || sk == "" {
			return nil, fmt.Errorf("seal \"awskms\": access_key and secret_key go together: %w", ErrConfig)
		}
		opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(ak, sk, p.get("session_token"))))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("seal \"awskms\": load AWS configuration: %v: %w", err, ErrConfig)
	}
	endpoint := p.get("endpoint", "AWS_KMS_ENDPOINT")
	client := kms.NewFromConfig(cfg, func(o *kms.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
	return &AWSKMS{client: client, keyID: keyID}, nil
}

// Type implements Wrapper.
func (w *AWSKMS) Type() string { return TypeAWSKMS }

// KeyID implements Wrapper.
func (w *AWSKMS) KeyID() string { return w.keyID }

// Close implements Wrapper.
func (w *AWSKMS) Close() error { return nil }

// Encrypt implements Wrapper.
func (w *AWSKMS) Encrypt(ctx context.Context, plaintext []byte) ([]byte, error) {
	out, err := w.client.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(w.keyID), Plaintext: plaintext})
	if err != nil {
		return nil, fmt.Errorf("awskms encrypt with key %s: %w", w.keyID, kmsError(ctx, err))
	}
	return out.CiphertextBlob, nil
}

// Decrypt implements Wrapper. The key is named so a ciphertext of another key is refused
// instead of being decrypted with whatever key KMS finds in it.
func (w *AWSKMS) Decrypt(ctx context.Context, ciphertext []byte) ([]byte, error) {
	out, err := w.client.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(w.keyID), CiphertextBlob: ciphertext})
	if err != nil {
		return nil, fmt.Errorf("awskms decrypt with key %s: %w", w.keyID, kmsError(ctx, err))
	}
	return out.Plaintext, nil
}

// KeyState implements KeyStater with DescribeKey.
func (w *AWSKMS) KeyState(ctx context.Context) (KeyState, error) {
	out, err := w.client.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(w.keyID)})
	if err != nil {
		return KeyState{}, fmt.Errorf("awskms describe key %s: %w", w.keyID, kmsError(ctx, err))
	}
	st := KeyState{State: "Enabled"}
	if m := out.KeyMetadata; m != nil {
		st.State = string(m.KeyState)
		if m.DeletionDate != nil {
			st.DeletionDate = *m.DeletionDate
		}
	}
	return st, nil
}

// kmsError sorts an SDK error into this package's sentinels, keeping AWS's message (which
// names the key and the reason, never key material).
func kmsError(ctx context.Context, err error) error {
	var (
		disabled  *types.DisabledException
		invState  *types.KMSInvalidStateException
		notFound  *types.NotFoundException
		usage     *types.InvalidKeyUsageException
		incorrect *types.IncorrectKeyException
		invCipher *types.InvalidCiphertextException
		netErr    net.Error
		apiErr    smithy.APIError
	)
	switch {
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%v: %w", err, ErrUnreachable)
	case errors.As(err, &disabled), errors.As(err, &invState), errors.As(err, &notFound), errors.As(err, &usage):
		return fmt.Errorf("%v: %w", err, ErrKeyUnusable)
	case errors.As(err, &incorrect), errors.As(err, &invCipher):
		return fmt.Errorf("%v: %w", err, ErrWrongKey)
	case errors.As(err, &apiErr):
		switch apiErr.ErrorCode() {
		case "AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException":
			return fmt.Errorf("%v: %w", err, ErrDenied)
		case "ValidationException":
			return fmt.Errorf("%v: %w", err, ErrConfig)
		}
		return fmt.Errorf("%v: %w", err, ErrUnreachable)
	case errors.As(err, &netErr):
		return fmt.Errorf("%v: %w", err, ErrUnreachable)
	}
	return fmt.Errorf("%v: %w", err, ErrUnreachable)
}

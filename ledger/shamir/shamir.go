// Package shamir owns Shamir's Secret Sharing over GF(2^8): splitting a
// secret (the root key) into unseal shares and combining a threshold of them
// back into the secret.
//
// A share is len(secret)+1 bytes: one y-value per secret byte followed by
// the share's x-coordinate, which is never 0 because the secret itself is the
// polynomial's value at 0. The format matches HashiCorp Vault's, so shares
// are interchangeable with tools that speak it.
package shamir

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/big"
)

// MaxParts is the most shares a secret can be split into: x-coordinates are
// the non-zero elements of GF(2^8).
const MaxParts = 255

var (
	// ErrInvalidThreshold is returned by Split when threshold is outside
	// [1, parts], or is 1 with more than one part.
	ErrInvalidThreshold = errors.New("shamir: invalid threshold")
	// ErrInvalidParts is returned by Split when parts is outside [1, MaxParts].
	ErrInvalidParts = errors.New("shamir: invalid number of parts")
	// ErrEmptySecret is returned by Split for a zero-length secret.
	ErrEmptySecret = errors.New("shamir: empty secret")
	// ErrInvalidShares is returned by Combine when the shares cannot have
	// come from one Split: none given, too short, of differing lengths, or
	// with an x-coordinate of 0.
	ErrInvalidShares = errors.New("shamir: invalid shares")
	// ErrDuplicateShare is returned by Combine when two shares have the same
	// x-coordinate. It wraps ErrInvalidShares.
	ErrDuplicateShare = fmt.Errorf("%w: duplicate x-coordinate", ErrInvalidShares)
)

// Split divides secret into parts shares, any threshold of which reconstruct
// it and fewer of which reveal nothing about it. It returns
// ErrInvalidParts, ErrInvalidThreshold or ErrEmptySecret for bad arguments.
func Split(secret []byte, parts, threshold int) ([][]byte, error) {
	return split(rand.Reader, secret, parts, threshold)
}

// split is Split with the randomness source as a parameter, so tests can
// observe what happens when it fails.
func split(random io.Reader, secret []byte, parts, threshold int) ([][]byte, error) {
	switch {
	case parts < 1 || parts > MaxParts:
		return nil, fmt.Errorf("%w: %d, want 1 to %d", ErrInvalidParts, parts, MaxParts)
	case threshold < 1 || threshold > parts:
		return nil, fmt.Errorf("%w: %d, want 1 to %d", ErrInvalidThreshold, threshold, parts)
	case threshold == 1 && parts > 1:
		// A constant polynomial makes every share a copy of the secret.
		return nil, fmt.Errorf("%w: 1 with %d parts would give each holder the secret", ErrInvalidThreshold, parts)
	case len(secret) == 0:
		return nil, ErrEmptySecret
	}

	xs, err := distinctXs(random, parts)
	if err != nil {
		return nil, err
	}

	// coeffs holds, for each secret byte, the threshold-1 random coefficients
	// of x^1..x^(threshold-1); the constant term is the secret byte itself.
	// The leading coefficient may be 0: that only lowers the degree for one
	// byte with probability 1/256 and is what the scheme's proof assumes.
	degree := threshold - 1
	coeffs := make([]byte, len(secret)*degree)
	defer clear(coeffs)
	if _, err := io.ReadFull(random, coeffs); err != nil {
		return nil, fmt.Errorf("shamir: read coefficients: %w", err)
	}

	out := make([][]byte, parts)
	for i, x := range xs {
		share := make([]byte, len(secret)+1)
		for j, s := range secret {
			share[j] = eval(s, coeffs[j*degree:(j+1)*degree], x)
		}
		share[len(secret)] = x
		out[i] = share
	}
	return out, nil
}

// eval returns c0 + c[0]·x + c[1]·x² + … by Horner's rule.
func eval(c0 byte, c []byte, x byte) byte {
	var y byte
	for i := len(c) - 1; i >= 0; i-- {
		y = mul(y, x) ^ c[i]
	}
	return mul(y, x) ^ c0
}

// distinctXs returns n distinct non-zero x-coordinates in random order: the
// first n of a uniform shuffle of 1..255. They are public, but drawing them
// from crypto/rand keeps a share's position from being guessable from its
// holder's index.
func distinctXs(random io.Reader, n int) ([]byte, error) {
	all := make([]byte, MaxParts)
	for i := range all {
		all[i] = byte(i + 1)
	}
	for i := 0; i < n; i++ {
		// Fisher–Yates: swap a uniform pick from all[i:] into position i.
		j, err := rand.Int(random, big.NewInt(int64(len(all)-i)))
		if err != nil {
			return nil, fmt.Errorf("shamir: read x-coordinates: %w", err)
		}
		k := i + int(j.Int64())
		all[i], all[k] = all[k], all[i]
	}
	return all[:n], nil
}

// Combine reconstructs a secret from shares produced by Split. Given at
// least the threshold of shares it returns the secret; given fewer it returns
// an unrelated value of the same length, since the shares alone cannot tell
// how many were needed. A single share is returned as its y-values, which is
// the secret when the split used threshold 1.
//
// It returns ErrDuplicateShare when two shares have the same x-coordinate and
// ErrInvalidShares for any other malformed input.
func Combine(parts [][]byte) ([]byte, error) {
	if len(parts) == 0 {
		return nil, fmt.Errorf("%w: no shares", ErrInvalidShares)
	}
	if len(parts) > MaxParts {
		return nil, fmt.Errorf("%w: %d shares, at most %d can be distinct", ErrInvalidShares, len(parts), MaxParts)
	}
	size := len(parts[0])
	if size < 2 {
		return nil, fmt.Errorf("%w: share of %d bytes, need at least 2", ErrInvalidShares, size)
	}
	var seen [256]bool
	xs := make([]byte, len(parts))
	for i, p := range parts {
		if len(p) != size {
			return nil, fmt.Errorf("%w: shares differ in length (%d and %d bytes)", ErrInvalidShares, size, len(p))
		}
		x := p[size-1]
		if x == 0 {
			return nil, fmt.Errorf("%w: x-coordinate 0", ErrInvalidShares)
		}
		if seen[x] {
			return nil, ErrDuplicateShare
		}
		seen[x] = true
		xs[i] = x
	}

	// Lagrange interpolation at 0: secret = Σ yᵢ·Lᵢ(0) with
	// Lᵢ(0) = Π_{m≠i} x_m / (x_m − x_i). The basis weights depend only on the
	// public x-coordinates, so compute them once for all secret bytes.
	// Numerator and denominator are accumulated separately so each weight
	// costs one inversion rather than one per factor.
	weights := make([]byte, len(xs))
	for i, xi := range xs {
		num, den := byte(1), byte(1)
		for m, xm := range xs {
			if m != i {
				num = mul(num, xm)
				den = mul(den, xm^xi)
			}
		}
		weights[i] = div(num, den)
	}

	secret := make([]byte, size-1)
	for j := range secret {
		var s byte
		for i, p := range parts {
			s ^= mul(weights[i], p[j])
		}
		secret[j] = s
	}
	return secret, nil
}

package shamir

import (
	"bytes"
	"crypto/rand"
	"errors"
	mathrand "math/rand"
	randv2 "math/rand/v2"
	"testing"
	"testing/quick"
)

// newRand returns a deterministic source for choosing subsets and orderings,
// so a failure names a seed that reproduces it. The shares themselves always
// come from crypto/rand.
func newRand(seed uint64) *randv2.Rand {
	return randv2.New(randv2.NewPCG(seed, 0x5ba3))
}

func randomSecret(t testing.TB, n int) []byte {
	t.Helper()
	s := make([]byte, n)
	rand.Read(s)
	return s
}

func mustSplit(t testing.TB, secret []byte, parts, threshold int) [][]byte {
	t.Helper()
	shares, err := Split(secret, parts, threshold)
	if err != nil {
		t.Fatalf("Split(%d bytes, %d, %d): %v", len(secret), parts, threshold, err)
	}
	return shares
}

// pick returns k shares chosen uniformly from shares, in random order.
func pick(r *randv2.Rand, shares [][]byte, k int) [][]byte {
	out := make([][]byte, len(shares))
	copy(out, shares)
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out[:k]
}

func TestSplitCombineRoundTrip(t *testing.T) {
	tests := []struct {
		name      string
		secretLen int
		parts     int
		threshold int
	}{
		{name: "single share", secretLen: 32, parts: 1, threshold: 1},
		{name: "2 of 2", secretLen: 32, parts: 2, threshold: 2},
		{name: "2 of 3", secretLen: 32, parts: 3, threshold: 2},
		{name: "3 of 5 root key", secretLen: 32, parts: 5, threshold: 3},
		{name: "10 of 10", secretLen: 32, parts: 10, threshold: 10},
		{name: "one byte secret", secretLen: 1, parts: 5, threshold: 3},
		{name: "long secret", secretLen: 1000, parts: 4, threshold: 3},
		{name: "max parts low threshold", secretLen: 16, parts: 255, threshold: 2},
		{name: "max parts max threshold", secretLen: 4, parts: 255, threshold: 255},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secret := randomSecret(t, tt.secretLen)
			shares := mustSplit(t, secret, tt.parts, tt.threshold)

			if len(shares) != tt.parts {
				t.Fatalf("got %d shares, want %d", len(shares), tt.parts)
			}
			seen := map[byte]bool{}
			for i, s := range shares {
				if len(s) != tt.secretLen+1 {
					t.Fatalf("share %d is %d bytes, want %d", i, len(s), tt.secretLen+1)
				}
				x := s[len(s)-1]
				if x == 0 || seen[x] {
					t.Fatalf("share %d has x-coordinate %d: zero or repeated", i, x)
				}
				seen[x] = true
			}

			r := newRand(uint64(tt.parts*1000 + tt.threshold))
			for k := tt.threshold; k <= tt.parts; k++ {
				got, err := Combine(pick(r, shares, k))
				if err != nil {
					t.Fatalf("Combine(%d shares): %v", k, err)
				}
				if !bytes.Equal(got, secret) {
					t.Fatalf("Combine(%d of %d shares, threshold %d) did not reconstruct the secret", k, tt.parts, tt.threshold)
				}
			}
		})
	}
}

// TestCombineEverySubsetEveryOrder exhausts a 3-of-5 split: every subset of
// 3, 4 and 5 shares in every order reconstructs the secret, and every subset
// of 2 does not.
func TestCombineEverySubsetEveryOrder(t *testing.T) {
	secret := randomSecret(t, 32)
	shares := mustSplit(t, secret, 5, 3)

	var combos int
	var visit func(chosen []int, used uint)
	visit = func(chosen []int, used uint) {
		if len(chosen) >= 2 {
			subset := make([][]byte, len(chosen))
			for i, c := range chosen {
				subset[i] = shares[c]
			}
			got, err := Combine(subset)
			if err != nil {
				t.Fatalf("Combine(shares %v): %v", chosen, err)
			}
			if enough := len(chosen) >= 3; bytes.Equal(got, secret) != enough {
				t.Fatalf("Combine(shares %v) reconstructed=%t, want %t", chosen, !enough, enough)
			}
			combos++
		}
		for i := range shares {
			if used&(1<<i) == 0 {
				visit(append(chosen, i), used|1<<i)
			}
		}
	}
	visit(nil, 0)

	// Ordered selections of 2..5 from 5: 20 + 60 + 120 + 120.
	if combos != 320 {
		t.Fatalf("checked %d ordered subsets, want 320", combos)
	}
}

func TestSplitCombineQuick(t *testing.T) {
	roundTrip := func(secret []byte, rawParts, rawThreshold uint8, seed uint64) bool {
		if len(secret) == 0 {
			secret = []byte{0}
		}
		parts := 2 + int(rawParts)%30
		threshold := 2 + int(rawThreshold)%(parts-1)
		shares, err := Split(secret, parts, threshold)
		if err != nil {
			t.Logf("Split(%d, %d): %v", parts, threshold, err)
			return false
		}
		r := newRand(seed)
		k := threshold + r.IntN(parts-threshold+1)
		got, err := Combine(pick(r, shares, k))
		return err == nil && bytes.Equal(got, secret)
	}
	cfg := &quick.Config{MaxCount: 300, Rand: mathrand.New(mathrand.NewSource(1))}
	if err := quick.Check(roundTrip, cfg); err != nil {
		t.Fatal(err)
	}
}

func TestFewerThanThresholdSharesDoNotReconstruct(t *testing.T) {
	tests := []struct {
		name      string
		parts     int
		threshold int
	}{
		{name: "1 of 2 of 2", parts: 2, threshold: 2},
		{name: "1 of 2 of 5", parts: 5, threshold: 2},
		{name: "2 of 3 of 5", parts: 5, threshold: 3},
		{name: "4 of 5 of 5", parts: 5, threshold: 5},
		{name: "9 of 10 of 20", parts: 20, threshold: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRand(uint64(tt.threshold))
			for range 50 {
				// A 32-byte secret makes an accidental match a 2^-256 event.
				secret := randomSecret(t, 32)
				shares := mustSplit(t, secret, tt.parts, tt.threshold)
				got, err := Combine(pick(r, shares, tt.threshold-1))
				if err != nil {
					t.Fatalf("Combine: %v", err)
				}
				if bytes.Equal(got, secret) {
					t.Fatal("threshold-1 shares reconstructed the secret")
				}
			}
		})
	}
}

// chiSquareUniform returns Pearson's statistic for counts against a uniform
// distribution over 256 values.
func chiSquareUniform(counts *[256]int) float64 {
	var total int
	for _, c := range counts {
		total += c
	}
	expected := float64(total) / 256
	var chi float64
	for _, c := range counts {
		d := float64(c) - expected
		chi += d * d / expected
	}
	return chi
}

// chiSquareHomogeneity returns Pearson's statistic for whether two
// histograms come from the same distribution.
func chiSquareHomogeneity(a, b *[256]int) float64 {
	var na, nb int
	for i := range a {
		na += a[i]
		nb += b[i]
	}
	total := float64(na + nb)
	var chi float64
	for i := range a {
		col := float64(a[i] + b[i])
		if col == 0 {
			continue
		}
		ea, eb := col*float64(na)/total, col*float64(nb)/total
		da, db := float64(a[i])-ea, float64(b[i])-eb
		chi += da*da/ea + db*db/eb
	}
	return chi
}

// Both statistics have 255 degrees of freedom (mean 255, sd ≈ 22.6). 450 is
// more than 7 standard normal deviations out by the Wilson–Hilferty
// approximation, p < 1e-12 per check, so a correct implementation cannot
// flake, while a share that leaks the secret scores in the tens of thousands.
const chiSquareLimit = 450

// TestShareIndependentOfSecret checks the secrecy property a single share
// must have below the threshold: its y-bytes are uniform whatever the
// secret, so two very different secrets give indistinguishable shares.
func TestShareIndependentOfSecret(t *testing.T) {
	const splits = 2000 // × 32 bytes = 64000 samples, 250 per bucket
	secrets := map[string][]byte{
		"zeros": make([]byte, 32),
		"ones":  bytes.Repeat([]byte{0xff}, 32),
	}
	for _, threshold := range []int{2, 3} {
		t.Run(map[int]string{2: "threshold 2", 3: "threshold 3"}[threshold], func(t *testing.T) {
			hist := map[string]*[256]int{}
			for name, secret := range secrets {
				h := new([256]int)
				for range splits {
					share := mustSplit(t, secret, threshold, threshold)[0]
					for _, y := range share[:len(share)-1] {
						h[y]++
					}
				}
				if chi := chiSquareUniform(h); chi > chiSquareLimit {
					t.Errorf("secret %s: share bytes not uniform, chi-square %.1f > %d", name, chi, chiSquareLimit)
				}
				hist[name] = h
			}
			if chi := chiSquareHomogeneity(hist["zeros"], hist["ones"]); chi > chiSquareLimit {
				t.Errorf("share bytes depend on the secret: chi-square %.1f > %d", chi, chiSquareLimit)
			}
		})
	}
}

// TestChiSquareDetectsLeak shows the statistic above has the power to fail:
// shares that were the secret itself would score far beyond the limit.
func TestChiSquareDetectsLeak(t *testing.T) {
	var leaked [256]int
	leaked[0] = 64000
	if chi := chiSquareUniform(&leaked); chi < chiSquareLimit {
		t.Fatalf("constant bytes scored %.1f, want > %d", chi, chiSquareLimit)
	}
	var zeros, ones [256]int
	zeros[0], ones[0xff] = 64000, 64000
	if chi := chiSquareHomogeneity(&zeros, &ones); chi < chiSquareLimit {
		t.Fatalf("disjoint histograms scored %.1f, want > %d", chi, chiSquareLimit)
	}
}

func TestTamperedShareChangesSecret(t *testing.T) {
	secret := randomSecret(t, 32)
	shares := mustSplit(t, secret, 5, 3)

	t.Run("y-value", func(t *testing.T) {
		for i := range 3 {
			for _, pos := range []int{0, 15, 31} {
				subset := [][]byte{bytes.Clone(shares[0]), bytes.Clone(shares[1]), bytes.Clone(shares[2])}
				subset[i][pos] ^= 0x01
				got, err := Combine(subset)
				if err != nil {
					t.Fatalf("Combine: %v", err)
				}
				// Every Lagrange weight is non-zero, so a change to one
				// y-value changes exactly that byte of the result.
				for j := range secret {
					if changed := got[j] != secret[j]; changed != (j == pos) {
						t.Fatalf("tampering share %d byte %d: byte %d changed=%t", i, pos, j, changed)
					}
				}
			}
		}
	})

	t.Run("x-coordinate", func(t *testing.T) {
		for delta := 1; delta < 256; delta++ {
			subset := [][]byte{bytes.Clone(shares[0]), shares[1], shares[2]}
			subset[0][32] ^= byte(delta)
			got, err := Combine(subset)
			switch {
			case err != nil && !errors.Is(err, ErrInvalidShares):
				t.Fatalf("x ^= %#02x: error %v does not wrap ErrInvalidShares", delta, err)
			case err == nil && bytes.Equal(got, secret):
				t.Fatalf("x ^= %#02x: still reconstructed the secret", delta)
			}
		}
	})
}

func TestSplitSingleShareIsSecret(t *testing.T) {
	secret := randomSecret(t, 32)
	shares := mustSplit(t, secret, 1, 1)
	if !bytes.Equal(shares[0][:32], secret) {
		t.Fatal("threshold-1 share y-values differ from the secret")
	}
	got, err := Combine(shares)
	if err != nil {
		t.Fatalf("Combine: %v", err)
	}
	if !bytes.Equal(got, secret) {
		t.Fatal("Combine of the single share did not return the secret")
	}
}

func TestSplitUsesEveryXAtMaxParts(t *testing.T) {
	shares := mustSplit(t, []byte{42}, 255, 2)
	var seen [256]bool
	for _, s := range shares {
		seen[s[1]] = true
	}
	if seen[0] {
		t.Error("x-coordinate 0 used")
	}
	for x := 1; x < 256; x++ {
		if !seen[x] {
			t.Errorf("x-coordinate %d missing", x)
		}
	}
}

func TestSplitErrors(t *testing.T) {
	secret := []byte("root key")
	tests := []struct {
		name      string
		secret    []byte
		parts     int
		threshold int
		want      error
	}{
		{name: "zero parts", secret: secret, parts: 0, threshold: 1, want: ErrInvalidParts},
		{name: "negative parts", secret: secret, parts: -3, threshold: 2, want: ErrInvalidParts},
		{name: "too many parts", secret: secret, parts: 256, threshold: 2, want: ErrInvalidParts},
		{name: "too many parts and threshold", secret: secret, parts: 256, threshold: 256, want: ErrInvalidParts},
		{name: "zero threshold", secret: secret, parts: 3, threshold: 0, want: ErrInvalidThreshold},
		{name: "negative threshold", secret: secret, parts: 3, threshold: -1, want: ErrInvalidThreshold},
		{name: "threshold above parts", secret: secret, parts: 3, threshold: 4, want: ErrInvalidThreshold},
		{name: "threshold 1 of 2", secret: secret, parts: 2, threshold: 1, want: ErrInvalidThreshold},
		{name: "threshold 1 of 255", secret: secret, parts: 255, threshold: 1, want: ErrInvalidThreshold},
		{name: "empty secret", secret: []byte{}, parts: 3, threshold: 2, want: ErrEmptySecret},
		{name: "nil secret", secret: nil, parts: 3, threshold: 2, want: ErrEmptySecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			shares, err := Split(tt.secret, tt.parts, tt.threshold)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Split error = %v, want %v", err, tt.want)
			}
			if shares != nil {
				t.Fatalf("Split returned %d shares with an error", len(shares))
			}
		})
	}
}

type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

func TestSplitRandomnessFailure(t *testing.T) {
	errEntropy := errors.New("entropy exhausted")
	shares, err := split(failingReader{errEntropy}, []byte("root key"), 3, 2)
	if !errors.Is(err, errEntropy) {
		t.Fatalf("split error = %v, want it to wrap %v", err, errEntropy)
	}
	if shares != nil {
		t.Fatal("split returned shares without randomness")
	}
}

func TestCombineErrors(t *testing.T) {
	share := func(x byte, ys ...byte) []byte { return append(ys, x) }
	tooMany := make([][]byte, 256)
	for i := range tooMany {
		tooMany[i] = share(byte(i+1), 7)
	}
	tests := []struct {
		name   string
		shares [][]byte
		want   error
	}{
		{name: "nil", shares: nil, want: ErrInvalidShares},
		{name: "empty", shares: [][]byte{}, want: ErrInvalidShares},
		{name: "empty share", shares: [][]byte{{}}, want: ErrInvalidShares},
		{name: "x only", shares: [][]byte{{1}, {2}}, want: ErrInvalidShares},
		{name: "lengths differ", shares: [][]byte{share(1, 5, 6), share(2, 5)}, want: ErrInvalidShares},
		{name: "later share longer", shares: [][]byte{share(1, 5), share(2, 5, 6)}, want: ErrInvalidShares},
		{name: "x zero", shares: [][]byte{share(1, 5), share(0, 6)}, want: ErrInvalidShares},
		{name: "single share x zero", shares: [][]byte{share(0, 6)}, want: ErrInvalidShares},
		{name: "duplicate x", shares: [][]byte{share(3, 5), share(3, 6)}, want: ErrDuplicateShare},
		{name: "same share twice", shares: [][]byte{share(9, 1, 2), share(4, 3, 4), share(9, 1, 2)}, want: ErrDuplicateShare},
		{name: "more shares than x-coordinates", shares: tooMany, want: ErrInvalidShares},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secret, err := Combine(tt.shares)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Combine error = %v, want %v", err, tt.want)
			}
			if secret != nil {
				t.Fatal("Combine returned a secret with an error")
			}
		})
	}
}

func TestDuplicateShareIsInvalidShares(t *testing.T) {
	if !errors.Is(ErrDuplicateShare, ErrInvalidShares) {
		t.Fatal("ErrDuplicateShare does not wrap ErrInvalidShares")
	}
}

func FuzzSplitCombine(f *testing.F) {
	f.Add([]byte("0123456789abcdef0123456789abcdef"), uint8(5), uint8(3), uint64(1))
	f.Add([]byte{0}, uint8(1), uint8(1), uint64(2))
	f.Add([]byte{0xff, 0x00}, uint8(255), uint8(255), uint64(3))
	f.Add([]byte("x"), uint8(2), uint8(1), uint64(4))
	f.Add([]byte{}, uint8(3), uint8(2), uint64(5))
	f.Add([]byte("k"), uint8(0), uint8(0), uint64(6))

	f.Fuzz(func(t *testing.T, secret []byte, parts, threshold uint8, seed uint64) {
		if len(secret) > 32 {
			// Longer secrets only repeat the per-byte work; the cap keeps a
			// 255-of-255 execution in milliseconds.
			secret = secret[:32]
		}
		p, th := int(parts), int(threshold)
		shares, err := Split(secret, p, th)
		valid := len(secret) > 0 && p >= 1 && th >= 1 && th <= p && (th > 1 || p == 1)
		if !valid {
			if err == nil {
				t.Fatalf("Split(%d bytes, %d, %d) accepted invalid arguments", len(secret), p, th)
			}
			if !errors.Is(err, ErrInvalidParts) && !errors.Is(err, ErrInvalidThreshold) && !errors.Is(err, ErrEmptySecret) {
				t.Fatalf("Split error %v is not a sentinel", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Split(%d bytes, %d, %d): %v", len(secret), p, th, err)
		}

		r := newRand(seed)
		k := th + r.IntN(p-th+1)
		got, err := Combine(pick(r, shares, k))
		if err != nil {
			t.Fatalf("Combine(%d of %d): %v", k, p, err)
		}
		if !bytes.Equal(got, secret) {
			t.Fatalf("Combine(%d of %d, threshold %d) did not reconstruct the secret", k, p, th)
		}

		// Arbitrary edits must never panic, only error or mis-reconstruct.
		mangled := pick(r, shares, k)
		for i := range mangled {
			mangled[i] = bytes.Clone(mangled[i])
			mangled[i][r.IntN(len(mangled[i]))] ^= byte(r.Uint32())
		}
		_, _ = Combine(mangled)
	})
}

func BenchmarkSplit(b *testing.B) {
	secret := randomSecret(b, 32)
	for b.Loop() {
		if _, err := Split(secret, 5, 3); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCombine(b *testing.B) {
	secret := randomSecret(b, 32)
	shares := mustSplit(b, secret, 5, 3)[:3]
	for b.Loop() {
		if _, err := Combine(shares); err != nil {
			b.Fatal(err)
		}
	}
}

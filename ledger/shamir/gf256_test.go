package shamir

import "testing"

// slowMul is the schoolbook carry-less multiply with explicit reduction, kept
// deliberately different from mul (branches, wide intermediate) so the two
// cannot share a bug.
func slowMul(a, b byte) byte {
	var p uint16
	for i := range 8 {
		if b&(1<<i) != 0 {
			p ^= uint16(a) << i
		}
	}
	for i := 15; i >= 8; i-- {
		if p&(1<<i) != 0 {
			p ^= 0x11b << (i - 8)
		}
	}
	return byte(p)
}

func TestMulMatchesReference(t *testing.T) {
	for a := range 256 {
		for b := range 256 {
			if got, want := mul(byte(a), byte(b)), slowMul(byte(a), byte(b)); got != want {
				t.Fatalf("mul(%#02x, %#02x) = %#02x, want %#02x", a, b, got, want)
			}
		}
	}
}

func TestMulKnownAnswers(t *testing.T) {
	tests := []struct {
		name    string
		a, b    byte
		product byte
	}{
		// FIPS-197 §4.2 worked examples.
		{name: "fips197 57*83", a: 0x57, b: 0x83, product: 0xc1},
		{name: "fips197 57*13", a: 0x57, b: 0x13, product: 0xfe},
		// Powers of the generator 0xe5 from the exp table Vault's shamir
		// package uses: equal answers mean shares are interchangeable.
		{name: "vault e5^2", a: 0xe5, b: 0xe5, product: 0x4c},
		{name: "vault e5^3", a: 0x4c, b: 0xe5, product: 0xb5},
		{name: "zero", a: 0x00, b: 0xff, product: 0x00},
		{name: "one", a: 0x01, b: 0xa7, product: 0xa7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mul(tt.a, tt.b); got != tt.product {
				t.Errorf("mul(%#02x, %#02x) = %#02x, want %#02x", tt.a, tt.b, got, tt.product)
			}
		})
	}
}

func TestInv(t *testing.T) {
	if got := inv(0); got != 0 {
		t.Errorf("inv(0) = %#02x, want 0", got)
	}
	for a := 1; a < 256; a++ {
		if got := mul(byte(a), inv(byte(a))); got != 1 {
			t.Fatalf("%#02x * inv(%#02x) = %#02x, want 1", a, a, got)
		}
	}
}

func TestDiv(t *testing.T) {
	for a := range 256 {
		for b := 1; b < 256; b++ {
			if got := mul(div(byte(a), byte(b)), byte(b)); got != byte(a) {
				t.Fatalf("div(%#02x, %#02x) * %#02x = %#02x, want %#02x", a, b, b, got, a)
			}
		}
	}
}

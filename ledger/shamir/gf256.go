package shamir

// Arithmetic in GF(2^8) with the AES reduction polynomial x^8+x^4+x^3+x+1
// (0x11b). Addition and subtraction are both XOR.
//
// The operands are secret bytes and polynomial coefficients, so every
// function here runs in time independent of its inputs: no lookup tables
// (cache timing) and no branches on operand bits, only masks built from them.

// mul returns a·b.
func mul(a, b byte) byte {
	var p byte
	for range 8 {
		// -(b & 1) is 0xff when the low bit of b is set and 0x00 otherwise.
		p ^= a & -(b & 1)
		// Reduce by 0x1b when the shift carries out of the top bit.
		carry := -(a >> 7)
		a = a<<1 ^ carry&0x1b
		b >>= 1
	}
	return p
}

// inv returns a⁻¹, and 0 for 0. The multiplicative group has order 255, so
// a^254 = a^-1; the exponent is fixed, so the square-and-multiply chain is
// the same for every a.
func inv(a byte) byte {
	// Build a^254 as a^(2+4+8+16+32+64+128).
	sq := mul(a, a) // a^2
	r := sq
	for range 6 {
		sq = mul(sq, sq) // a^4, a^8, ..., a^128
		r = mul(r, sq)
	}
	return r
}

// div returns a/b; callers guarantee b != 0.
func div(a, b byte) byte {
	return mul(a, inv(b))
}

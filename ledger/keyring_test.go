package ledger

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
	"time"
)

// MAC keeps pooled HMAC states instead of asking Tink's PRF each time; the two must agree on
// every input, including across a wrap and unwrap (the state is rebuilt from the unwrapped
// keyset) and under concurrent use of the pool.
func TestMACMatchesTinkPRF(t *testing.T) {
	k, err := NewKeyring(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if k.macs == nil {
		t.Fatal("the PRF keyset's primary key was not recognised as HMAC-SHA256: MAC would fall back to the slow path")
	}
	root := make([]byte, RootKeySize)
	blob, err := k.Wrap(root)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := UnwrapKeyring(root, blob)
	if err != nil {
		t.Fatal(err)
	}
	want := func(domain, value string) string {
		out, err := k.prf.ComputePrimaryPRF([]byte(domain+"\x00"+value), sha256.Size)
		if err != nil {
			t.Fatal(err)
		}
		return hex.EncodeToString(out)
	}
	values := []string{"", "a", "s.token", strings.Repeat("x", 100<<10), "\x00\xff", "hvs.CAESI"}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				v := values[(w+i)%len(values)]
				for _, d := range []string{"token", "audit", ""} {
					if got, exp := k.MAC(d, v), want(d, v); got != exp {
						t.Errorf("MAC(%q, %d bytes) = %s, Tink PRF says %s", d, len(v), got, exp)
						return
					}
					if got, exp := k2.MAC(d, v), want(d, v); got != exp {
						t.Errorf("unwrapped keyring: MAC(%q, %d bytes) = %s, Tink PRF says %s", d, len(v), got, exp)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	// Domain separation survives the concatenation: "a"+"\x00"+"b" is not "a\x00"+"\x00"+"b".
	if k.MAC("a", "b") == k.MAC("a\x00", "b") {
		t.Fatal("MAC domains collide")
	}
}

package token

import (
	"crypto/rand"
	"encoding/json"

	"github.com/ledger-secrets/ledger/ledger"
	tokenview "github.com/ledger-secrets/ledger/projections/token"
)

// Revocation reasons carried by tokenview.RevokedPayload.
const (
	ReasonRevoked       = "revoked"
	ReasonExpired       = "expired"
	ReasonParentRevoked = "parent revoked"
	ReasonUsesExhausted = "uses exhausted"
)

const (
	tokenPrefix = "hvs."
	randomChars = 24 // base62: 24 × log2(62) ≈ 142.9 bits
	base62      = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// NewToken returns a fresh service token ("hvs." + 24 base62 characters, ~143 bits from
// crypto/rand) and a fresh accessor (24 base62 characters, independent of the token).
func NewToken() (token, accessor string) {
	return tokenPrefix + randomBase62(randomChars), randomBase62(randomChars)
}

// RandomBase62 returns n uniform base62 characters from crypto/rand (generate-root OTPs).
func RandomBase62(n int) string { return randomBase62(n) }

// randomBase62 draws n uniform base62 characters: bytes ≥ 248 (= 4 × 62) are rejected so the
// modulo does not bias the alphabet.
func randomBase62(n int) string {
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/4+8)
	for len(out) < n {
		// crypto/rand.Read never returns an error (it aborts the program if the kernel's
		// generator fails), so there is nothing to handle.
		_, _ = rand.Read(buf)
		for _, c := range buf {
			if c < 248 && len(out) < n {
				out = append(out, base62[c%62])
			}
		}
	}
	clear(buf)
	return string(out)
}

// CreatedEvent records a new token. Init uses it to issue the root token. p.MAC must be
// keyring.MAC("token", token); the token itself is not in the event.
func CreatedEvent(p tokenview.CreatedPayload, actor string) ledger.Event {
	return event(tokenview.Created, p.MAC, actor, p)
}

// UsedEvent records one use of a limited-use token (num_uses). The view drops the token at
// its last use; the pipeline appends one per request made with such a token.
func UsedEvent(mac string) ledger.Event {
	return event(tokenview.Used, mac, "", tokenview.UsedPayload{MAC: mac})
}

// RevokedEvent records the revocation of one token; see RevokeTree for a token and its
// descendants.
func RevokedEvent(mac, reason string, orphanChildren bool) ledger.Event {
	return event(tokenview.Revoked, mac, "", tokenview.RevokedPayload{MAC: mac, Reason: reason, OrphanChildren: orphanChildren})
}

func renewedEvent(p tokenview.RenewedPayload) ledger.Event {
	return event(tokenview.Renewed, p.MAC, "", p)
}

func event(typ, mac, actor string, payload any) ledger.Event {
	b, err := json.Marshal(payload)
	if err != nil {
		// The payloads are structs of strings, numbers, times and string maps.
		panic("token: payload does not encode: " + err.Error())
	}
	return ledger.Event{Type: typ, Subject: ledger.SubjectFor("token", mac), Actor: actor, Payload: b}
}

// RevokeTree decides the revocation of the token with this MAC and of every descendant: one
// Revoked event per token, depth-first with children before their parent (as Vault revokes
// leaves first), siblings in MAC order. The token itself carries reason, its descendants
// "parent revoked". It returns nil when the view holds none of them. The caller should hold
// the pipeline lock TreeLock so no child appears between this decision and its append.
func (b *Backend) RevokeTree(mac, reason string) []ledger.Event {
	type frame struct {
		mac  string
		kids []string
		next int
	}
	var out []ledger.Event
	seen := map[string]bool{mac: true} // guards against a cycle in a corrupted view
	stack := []frame{{mac: mac, kids: b.view.Children(mac)}}
	for len(stack) > 0 {
		top := &stack[len(stack)-1]
		if top.next < len(top.kids) {
			kid := top.kids[top.next]
			top.next++
			if !seen[kid] {
				seen[kid] = true
				stack = append(stack, frame{mac: kid, kids: b.view.Children(kid)})
			}
			continue
		}
		why := ReasonParentRevoked
		if len(stack) == 1 {
			why = reason
		}
		if _, ok := b.view.ByMAC(top.mac); ok {
			out = append(out, RevokedEvent(top.mac, why, false))
		}
		stack = stack[:len(stack)-1]
	}
	return out
}

package commands

import (
	"fmt"
	"unicode/utf8"
)

// checkUTF8 refuses a path that is not valid UTF-8. Such a path cannot survive the JSON of an
// event payload: its invalid bytes would come back as U+FFFD, so two different paths ("a-%ff",
// "a-%fe") would become one key, and the key in the view would no longer match the one its
// value was sealed for. The canonical form of a path is therefore its bytes as sent, valid
// UTF-8, with no Unicode normalisation (two different spellings stay two keys); the message
// names the offset, never the bytes.
func checkUTF8(p string) error {
	if utf8.ValidString(p) {
		return nil
	}
	for i := 0; i < len(p); {
		r, n := utf8.DecodeRuneInString(p[i:])
		if r == utf8.RuneError && n <= 1 {
			return fmt.Errorf("path is not valid UTF-8 (invalid byte at offset %d): %w", i, ErrInvalidPath)
		}
		i += n
	}
	return fmt.Errorf("path is not valid UTF-8: %w", ErrInvalidPath)
}

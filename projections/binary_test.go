package projections

import (
	"testing"
	"time"
)

func TestPackTime(t *testing.T) {
	est := time.FixedZone("EST", -5*3600)
	for _, in := range []time.Time{
		{},
		time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), // the zero time's next nanosecond
		time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(2026, 12, 5, 7, 0, 0, 123456789, est),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Now(), // with a monotonic reading
	} {
		sec, nsec := PackTime(in)
		out := UnpackTime(sec, nsec)
		if !out.Equal(in) || out.IsZero() != in.IsZero() {
			t.Errorf("%v came back as %v", in, out)
		}
		if !out.IsZero() && out.Location() != time.UTC {
			t.Errorf("%v came back in %v, want UTC", in, out.Location())
		}
		if got, want := AppendTime(nil, out), AppendTime(nil, in); string(got) != string(want) {
			t.Errorf("%v encodes as %x after packing, %x before", in, got, want)
		}
	}
	if !UnpackTime(0, 0).IsZero() {
		t.Error("zero fields are not the zero time")
	}
}

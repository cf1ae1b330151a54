package codec

import "testing"

func TestFormatHashrate(t *testing.T) {
	for h, want := range map[float64]string{
		0: "0.00 H/s", 999: "999.00 H/s", 1000: "1.00 kH/s", 1.234e12: "1.23 TH/s", 5e21: "5000.00 EH/s",
	} {
		if got := FormatHashrate(h); got != want {
			t.Errorf("FormatHashrate(%g) = %q, want %q", h, got, want)
		}
	}
}

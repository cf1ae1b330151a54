package codec

import "strconv"

// FormatHashrate renders hashes per second with an SI unit, two decimals:
// "1.23 TH/s". Log lines and alert messages use the same form.
func FormatHashrate(h float64) string {
	units := [...]string{"H/s", "kH/s", "MH/s", "GH/s", "TH/s", "PH/s", "EH/s"}
	i := 0
	for h >= 1000 && i < len(units)-1 {
		h /= 1000
		i++
	}
	return strconv.FormatFloat(h, 'f', 2, 64) + " " + units[i]
}

package sms

import (
	"errors"
	"fmt"
)

// Encodings Segments reports.
const (
	// EncodingGSM7 is the GSM 03.38 7-bit default alphabet: 160 septets
	// in a single SMS, 153 in each part of a concatenated one (the user
	// data header takes the rest).
	EncodingGSM7 = "GSM-7"
	// EncodingUCS2 is UTF-16 as SMS carries it, used when any character
	// is outside GSM-7: 70 code units in a single SMS, 67 in each part of
	// a concatenated one.
	EncodingUCS2 = "UCS-2"
)

// Segment capacities (GSM 03.38 and 03.40).
const (
	gsm7Single = 160
	gsm7Part   = 153
	ucs2Single = 70
	ucs2Part   = 67
)

// ErrTooManySegments is wrapped by CheckSegments's error.
var ErrTooManySegments = errors.New("too many SMS segments")

// gsm7Basic is the GSM 03.38 default alphabet in table order, without the
// escape code 0x1B: one septet each.
const gsm7Basic = "@£$¥èéùìòÇ\nØø\rÅå" +
	"Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ" +
	" !\"#¤%&'()*+,-./" +
	"0123456789:;<=>?" +
	"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§" +
	"¿abcdefghijklmnopqrstuvwxyzäöñüà"

// gsm7Extension is the default alphabet's extension table: two septets
// each (the escape code, then the character).
const gsm7Extension = "\f^{}\\[~]|€"

// gsm7Septets maps each GSM-7 character to the septets it takes.
var gsm7Septets = func() map[rune]int {
	m := make(map[rune]int, 140)
	for _, r := range gsm7Basic {
		m[r] = 1
	}
	for _, r := range gsm7Extension {
		m[r] = 2
	}
	return m
}()

// Segments returns the number of SMS segments text is sent as, and the
// encoding: GSM-7 when every character is in the GSM 03.38 default
// alphabet or its extension table (which costs two septets a character:
// € [ ] { } \ ^ ~ | and form feed), else UCS-2, counted in UTF-16 code
// units (a character outside the Basic Multilingual Plane, such as most
// emoji, takes two). Korean text is UCS-2.
//
// A text that fits one SMS (160 septets or 70 units) is one segment.
// Longer texts are split into parts of 153 septets or 67 units, and a
// character never straddles two parts: an extension character or a
// surrogate pair that does not fit the rest of a part starts the next
// one. An empty text is 0 segments.
func Segments(text string) (n int, encoding string) {
	gsm := true
	for _, r := range text {
		if gsm7Septets[r] == 0 {
			gsm = false
			break
		}
	}
	if gsm {
		return count(text, gsm7Single, gsm7Part, func(r rune) int { return gsm7Septets[r] }), EncodingGSM7
	}
	return count(text, ucs2Single, ucs2Part, utf16Units), EncodingUCS2
}

// utf16Units is the number of UTF-16 code units of r.
func utf16Units(r rune) int {
	if r >= 0x10000 {
		return 2
	}
	return 1
}

// count returns the segments of text whose characters take size(r)
// units, single units fitting one SMS and part units each part of a
// concatenated one.
func count(text string, single, part int, size func(rune) int) int {
	total := 0
	for _, r := range text {
		total += size(r)
	}
	switch {
	case total == 0:
		return 0
	case total <= single:
		return 1
	}
	n, used := 1, 0
	for _, r := range text {
		u := size(r)
		if used+u > part {
			n++
			used = 0
		}
		used += u
	}
	return n
}

// CheckSegments returns an error wrapping ErrTooManySegments when text is
// more than max segments (see Segments); max <= 0 means no limit. It is
// the submission-time check of an SMS text.
func CheckSegments(text string, max int) error {
	if max <= 0 {
		return nil
	}
	if n, enc := Segments(text); n > max {
		return fmt.Errorf("sms: the text is %d %s segments, more than %d: %w", n, enc, max, ErrTooManySegments)
	}
	return nil
}

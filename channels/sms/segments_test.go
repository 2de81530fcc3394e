package sms_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/unifiedms/ums/channels/sms"
)

func TestSegments(t *testing.T) {
	a := func(n int) string { return strings.Repeat("a", n) }
	cases := []struct {
		name string
		text string
		n    int
		enc  string
	}{
		{"empty", "", 0, sms.EncodingGSM7},
		{"plain", "Hello, world!", 1, sms.EncodingGSM7},
		{"160", a(160), 1, sms.EncodingGSM7},
		{"161", a(161), 2, sms.EncodingGSM7},
		{"306", a(306), 2, sms.EncodingGSM7},
		{"307", a(307), 3, sms.EncodingGSM7},
		{"GSM letters outside ASCII", "Ça va? 5€ ñ ü Δ Ω ß É ¿¡ § £ ¥ @ _", 1, sms.EncodingGSM7},
		{"all basic characters", "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà", 1, sms.EncodingGSM7},
		// Extension characters take two septets.
		{"80 euros", strings.Repeat("€", 80), 1, sms.EncodingGSM7},
		{"81 euros", strings.Repeat("€", 81), 2, sms.EncodingGSM7},
		{"158 and a brace", a(158) + "{", 1, sms.EncodingGSM7},
		{"159 and a brace", a(159) + "{", 2, sms.EncodingGSM7},
		{"extension table", "\f^{}\\[~]|€", 1, sms.EncodingGSM7},
		// 306 septets, but the euro cannot straddle parts 1 and 2.
		{"escape not split", a(152) + "€" + a(152), 3, sms.EncodingGSM7},
		// Not in GSM-7: UCS-2.
		{"backtick", "`", 1, sms.EncodingUCS2},
		{"u circumflex", "coûte", 1, sms.EncodingUCS2},
		{"lowercase c cedilla", "ç", 1, sms.EncodingUCS2},
		{"Korean 70", strings.Repeat("가", 70), 1, sms.EncodingUCS2},
		{"Korean 71", strings.Repeat("가", 71), 2, sms.EncodingUCS2},
		{"Korean 134", strings.Repeat("가", 134), 2, sms.EncodingUCS2},
		{"Korean 135", strings.Repeat("가", 135), 3, sms.EncodingUCS2},
		{"Korean 150", strings.Repeat("가", 150), 3, sms.EncodingUCS2},
		{"Korean sentence", "[UMS] 인증번호는 123456 입니다.", 1, sms.EncodingUCS2},
		{"one emoji makes it UCS-2", a(100) + "🙂", 2, sms.EncodingUCS2},
		// Emoji outside the BMP are two UTF-16 units each.
		{"35 emoji", strings.Repeat("😀", 35), 1, sms.EncodingUCS2},
		{"36 emoji", strings.Repeat("😀", 36), 2, sms.EncodingUCS2},
		// 134 units, but a surrogate pair cannot straddle parts: 33 a part.
		{"67 emoji", strings.Repeat("😀", 67), 3, sms.EncodingUCS2},
		{"69 units and an emoji", strings.Repeat("가", 69) + "😀", 2, sms.EncodingUCS2},
		{"BMP symbol", "☺", 1, sms.EncodingUCS2},
	}
	for _, c := range cases {
		n, enc := sms.Segments(c.text)
		if n != c.n || enc != c.enc {
			t.Errorf("%s: Segments = %d %s, want %d %s", c.name, n, enc, c.n, c.enc)
		}
	}
}

func TestCheckSegments(t *testing.T) {
	long := strings.Repeat("가", 150) // 3 segments
	if err := sms.CheckSegments(long, 0); err != nil {
		t.Errorf("no limit: %v", err)
	}
	if err := sms.CheckSegments(long, 3); err != nil {
		t.Errorf("limit 3: %v", err)
	}
	err := sms.CheckSegments(long, 2)
	if !errors.Is(err, sms.ErrTooManySegments) {
		t.Fatalf("limit 2: %v", err)
	}
	if want := "3 UCS-2 segments, more than 2"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if err := sms.CheckSegments(strings.Repeat("a", 160), 1); err != nil {
		t.Errorf("160 GSM-7 characters in 1: %v", err)
	}
}

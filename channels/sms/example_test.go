package sms_test

import (
	"fmt"
	"strings"

	"github.com/unifiedms/ums/channels/sms"
)

// A text's segments decide its price; the server refuses texts over its
// limit when they are submitted.
func ExampleSegments() {
	fmt.Println(sms.Segments(strings.Repeat("a", 160)))
	fmt.Println(sms.Segments(strings.Repeat("a", 161)))
	fmt.Println(sms.Segments("Total: 10€ {paid}"))
	fmt.Println(sms.Segments(strings.Repeat("안", 150)))
	fmt.Println(sms.CheckSegments(strings.Repeat("안", 150), 2))
	// Output:
	// 1 GSM-7
	// 2 GSM-7
	// 1 GSM-7
	// 3 UCS-2
	// sms: the text is 3 UCS-2 segments, more than 2: too many SMS segments
}

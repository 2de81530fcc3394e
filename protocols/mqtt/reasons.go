package mqtt

import (
	"errors"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/unifiedms/ums/core"
)

// Reason codes: core errors as MQTT 5 reason codes, and MQTT 5 CONNACK
// codes as MQTT 3.1.1 return codes.

// v3ConnackCode maps an MQTT 5 CONNACK reason code onto the MQTT 3.1.1
// return codes.
func v3ConnackCode(c byte) byte {
	switch c {
	case 0x00, 0x01, 0x02, 0x03, 0x04, 0x05:
		return c
	case packets.ErrUnsupportedProtocolVersion.Code:
		return 0x01
	case packets.ErrClientIdentifierNotValid.Code, packets.ErrUnspecifiedError.Code:
		return 0x02
	case packets.ErrBadUsernameOrPassword.Code, packets.ErrMalformedPacket.Code:
		return 0x04
	case packets.ErrNotAuthorized.Code, packets.ErrBanned.Code:
		return 0x05
	}
	return 0x03 // server unavailable
}

// reasonFor maps a core error onto an MQTT 5 reason code.
func reasonFor(err error) packets.Code {
	switch {
	case err == nil:
		return packets.CodeSuccess
	case errors.Is(err, core.ErrLimitReached):
		return packets.ErrQuotaExceeded // before ErrNotAllowed, which it also is
	case errors.Is(err, core.ErrAccessRefused):
		return packets.ErrNotAuthorized
	case errors.Is(err, core.ErrResourceLocked):
		return packets.ErrQuotaExceeded
	case errors.Is(err, core.ErrNotFound):
		return packets.ErrImplementationSpecificError
	case errors.Is(err, core.ErrPreconditionFailed):
		return packets.ErrImplementationSpecificError
	case errors.Is(err, core.ErrClosed):
		return packets.ErrUnspecifiedError
	}
	return packets.ErrUnspecifiedError
}

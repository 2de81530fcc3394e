package core

import (
	"strconv"
	"time"
)

// Overflow behaviours of a queue at its length limit.
const (
	OverflowDropHead         = "drop-head"
	OverflowRejectPublish    = "reject-publish"
	OverflowRejectPublishDLX = "reject-publish-dlx"
)

// queueArgs are a queue's parsed x- arguments.
type queueArgs struct {
	messageTTL     time.Duration // <0: none
	expires        time.Duration // 0: never
	maxLength      int64         // <0: none
	maxLengthBytes int64         // <0: none
	overflow       string
	dlx            string
	hasDLX         bool
	dlrk           string
	hasDLRK        bool
	maxPriority    int // 0: not a priority queue
	singleActive   bool
	deliveryLimit  int64 // <0: none
}

// parseQueueArgs validates the arguments RabbitMQ knows; unknown ones are
// accepted and ignored, as RabbitMQ does.
func parseQueueArgs(v *Vhost, name string, args Table) (queueArgs, error) {
	qa := queueArgs{messageTTL: -1, maxLength: -1, maxLengthBytes: -1, overflow: OverflowDropHead, deliveryLimit: -1}
	bad := func(arg string, why string, val any) error {
		return errorf(ErrPreconditionFailed, "invalid arg '%s' for queue '%s' in vhost '%s': %s (got %v of type %s)",
			arg, name, v.Name, why, val, typeName(val))
	}
	nonNeg := func(arg string) (int64, bool, error) {
		val, ok := args[arg]
		if !ok {
			return 0, false, nil
		}
		n, isInt := toInt64(val)
		if !isInt {
			return 0, false, bad(arg, "expected an integer", val)
		}
		if n < 0 {
			return 0, false, bad(arg, "must not be negative", val)
		}
		return n, true, nil
	}
	if n, ok, err := nonNeg("x-message-ttl"); err != nil {
		return qa, err
	} else if ok {
		qa.messageTTL = time.Duration(n) * time.Millisecond
	}
	if n, ok, err := nonNeg("x-expires"); err != nil {
		return qa, err
	} else if ok {
		if n == 0 {
			return qa, bad("x-expires", "must be positive", args["x-expires"])
		}
		qa.expires = time.Duration(n) * time.Millisecond
	}
	if n, ok, err := nonNeg("x-max-length"); err != nil {
		return qa, err
	} else if ok {
		qa.maxLength = n
	}
	if n, ok, err := nonNeg("x-max-length-bytes"); err != nil {
		return qa, err
	} else if ok {
		qa.maxLengthBytes = n
	}
	if n, ok, err := nonNeg("x-delivery-limit"); err != nil {
		return qa, err
	} else if ok {
		qa.deliveryLimit = n
	}
	if n, ok, err := nonNeg("x-max-priority"); err != nil {
		return qa, err
	} else if ok {
		if n < 1 || n > 255 {
			return qa, bad("x-max-priority", "must be between 1 and 255", args["x-max-priority"])
		}
		qa.maxPriority = int(n)
	}
	if val, ok := args["x-overflow"]; ok {
		s, isStr := val.(string)
		switch {
		case !isStr:
			return qa, bad("x-overflow", "expected a string", val)
		case s == OverflowDropHead || s == OverflowRejectPublish || s == OverflowRejectPublishDLX:
			qa.overflow = s
		default:
			return qa, bad("x-overflow", "expected drop-head, reject-publish or reject-publish-dlx", val)
		}
	}
	if val, ok := args["x-dead-letter-exchange"]; ok {
		s, isStr := val.(string)
		if !isStr {
			return qa, bad("x-dead-letter-exchange", "expected a string", val)
		}
		qa.dlx, qa.hasDLX = s, true
	}
	if val, ok := args["x-dead-letter-routing-key"]; ok {
		s, isStr := val.(string)
		if !isStr {
			return qa, bad("x-dead-letter-routing-key", "expected a string", val)
		}
		if !qa.hasDLX {
			return qa, errorf(ErrPreconditionFailed, "invalid arg 'x-dead-letter-routing-key' for queue '%s' in vhost '%s': Key x-dead-letter-exchange should be present", name, v.Name)
		}
		qa.dlrk, qa.hasDLRK = s, true
	}
	if val, ok := args["x-single-active-consumer"]; ok {
		b, isBool := val.(bool)
		if !isBool {
			return qa, bad("x-single-active-consumer", "expected a boolean", val)
		}
		qa.singleActive = b
	}
	if val, ok := args["x-queue-type"]; ok {
		s, _ := val.(string)
		if s != "classic" {
			return qa, errorf(ErrPreconditionFailed, "invalid arg 'x-queue-type' for queue '%s' in vhost '%s': queue type '%v' is not supported", name, v.Name, val)
		}
	}
	return qa, nil
}

// messageExpiry parses the expiration property (milliseconds as a decimal
// string). ok is false when the message has none.
func messageExpiry(p *Properties) (time.Duration, bool, error) {
	if p.Expiration == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(p.Expiration, 10, 64)
	if err != nil || n < 0 {
		return 0, false, errorf(ErrPreconditionFailed, "invalid expiration '%s'", p.Expiration)
	}
	return time.Duration(n) * time.Millisecond, true, nil
}

// ValidateMessage checks properties the core interprets.
func ValidateMessage(m *Message) error {
	_, _, err := messageExpiry(&m.Props)
	return err
}

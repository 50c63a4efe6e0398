package cli

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Positive is a Check that the value is more than zero: a count or a time
// limit where zero would mean nothing is allowed or nothing is waited for.
func Positive[T ~int | ~int64](p *T) func() error {
	return func() error {
		if *p <= 0 {
			return errors.New("must be more than 0")
		}
		return nil
	}
}

// NonNegative is a Check that the value is zero or more.
func NonNegative[T ~int | ~int64](p *T) func() error {
	return func() error {
		if *p < 0 {
			return errors.New("must not be negative")
		}
		return nil
	}
}

// NonEmpty is a Check that the string is not empty or blank.
func NonEmpty(p *string) func() error {
	return func() error {
		if strings.TrimSpace(*p) == "" {
			return errors.New("must not be empty")
		}
		return nil
	}
}

// HostPort is a Check that the value is a TCP address to listen on:
// HOST:PORT with a port from 0 to 65535 (0: any free port), the host
// optional (all addresses) and an IPv6 host in brackets.
func HostPort(p *string) func() error {
	return func() error {
		_, port, err := net.SplitHostPort(*p)
		if err == nil {
			_, err = strconv.ParseUint(port, 10, 16)
		}
		if err != nil {
			return fmt.Errorf("not an address to listen on (HOST:PORT, as 127.0.0.1:2222, :2222 or [::1]:2222)")
		}
		return nil
	}
}

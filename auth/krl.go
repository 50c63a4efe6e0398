package auth

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	gossh "golang.org/x/crypto/ssh"
)

// OpenSSH KRL format (PROTOCOL.krl).
const (
	krlMagic         = "SSHKRL\n\x00"
	krlFormatVersion = 1

	krlSectionCertificates  = 1
	krlSectionExplicitKey   = 2
	krlSectionFingerprintS1 = 3
	krlSectionSignature     = 4
	krlSectionFingerprintS2 = 5

	krlCertSerialList   = 0x20
	krlCertSerialRange  = 0x21
	krlCertSerialBitmap = 0x22
	krlCertKeyID        = 0x23

	// maxBitmapSerials bounds what one bitmap section may expand to.
	maxBitmapSerials = 1 << 24
)

// krlReader reads SSH wire types, remembering the first error.
type krlReader struct {
	b   []byte
	err error
}

func (r *krlReader) fail(msg string) {
	if r.err == nil {
		r.err = errors.New(msg)
	}
}

func (r *krlReader) u8() byte {
	if r.err != nil || len(r.b) < 1 {
		r.fail("truncated")
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *krlReader) u32() uint32 {
	if r.err != nil || len(r.b) < 4 {
		r.fail("truncated")
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *krlReader) u64() uint64 {
	if r.err != nil || len(r.b) < 8 {
		r.fail("truncated")
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *krlReader) str() []byte {
	n := r.u32()
	if r.err != nil {
		return nil
	}
	if uint64(n) > uint64(len(r.b)) {
		r.fail("truncated string")
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (rl *revocationList) parseKRL(raw []byte) error {
	r := &krlReader{b: raw[len(krlMagic):]}
	if v := r.u32(); r.err == nil && v != krlFormatVersion {
		return fmt.Errorf("unsupported format version %d", v)
	}
	r.u64() // krl_version
	r.u64() // generated_date
	r.u64() // flags
	r.str() // reserved
	r.str() // comment
	for r.err == nil && len(r.b) > 0 {
		typ := r.u8()
		data := r.str()
		if r.err != nil {
			break
		}
		var err error
		switch typ {
		case krlSectionCertificates:
			err = rl.parseCertSection(data)
		case krlSectionExplicitKey:
			err = eachString(data, func(b []byte) error {
				k, err := gossh.ParsePublicKey(b)
				if err != nil {
					return fmt.Errorf("revoked key: %w", err)
				}
				rl.keys[string(k.Marshal())] = true
				return nil
			})
		case krlSectionFingerprintS1:
			err = eachString(data, func(b []byte) error {
				if len(b) != 20 {
					return errors.New("bad SHA1 fingerprint length")
				}
				rl.sha1[string(b)] = true
				return nil
			})
		case krlSectionFingerprintS2:
			err = eachString(data, func(b []byte) error {
				if len(b) != 32 {
					return errors.New("bad SHA256 fingerprint length")
				}
				rl.sha256[string(b)] = true
				return nil
			})
		case krlSectionSignature:
			// OpenSSH itself no longer verifies KRL signatures; the file's
			// integrity is its permissions.
		default:
			err = fmt.Errorf("unknown section type %d", typ)
		}
		if err != nil {
			return err
		}
	}
	return r.err
}

func eachString(data []byte, f func([]byte) error) error {
	r := &krlReader{b: data}
	for r.err == nil && len(r.b) > 0 {
		b := r.str()
		if r.err != nil {
			break
		}
		if err := f(b); err != nil {
			return err
		}
	}
	return r.err
}

func (rl *revocationList) parseCertSection(data []byte) error {
	r := &krlReader{b: data}
	caBlob := r.str()
	r.str() // reserved
	if r.err != nil {
		return r.err
	}
	sec := certRevocations{keyIDs: map[string]bool{}}
	if len(caBlob) > 0 {
		ca, err := gossh.ParsePublicKey(caBlob)
		if err != nil {
			return fmt.Errorf("CA key: %w", err)
		}
		sec.ca = string(ca.Marshal())
	}
	for r.err == nil && len(r.b) > 0 {
		typ := r.u8()
		sub := &krlReader{b: r.str()}
		if r.err != nil {
			break
		}
		switch typ {
		case krlCertSerialList:
			for sub.err == nil && len(sub.b) > 0 {
				s := sub.u64()
				sec.serials = append(sec.serials, serialRange{s, s})
			}
		case krlCertSerialRange:
			lo, hi := sub.u64(), sub.u64()
			if sub.err == nil && lo > hi {
				return errors.New("serial range with min > max")
			}
			sec.serials = append(sec.serials, serialRange{lo, hi})
		case krlCertSerialBitmap:
			if err := sec.addBitmap(sub); err != nil {
				return err
			}
		case krlCertKeyID:
			for sub.err == nil && len(sub.b) > 0 {
				id := sub.str()
				if sub.err == nil {
					sec.keyIDs[string(id)] = true
				}
			}
		default:
			return fmt.Errorf("unknown certificate section type %#x", typ)
		}
		if sub.err != nil {
			return sub.err
		}
	}
	if r.err != nil {
		return r.err
	}
	if sec.ca == "" && len(sec.serials) > 0 {
		return errors.New("serial revocation without a CA key")
	}
	sec.serials = mergeRanges(sec.serials)
	rl.certs = append(rl.certs, sec)
	return nil
}

// mergeRanges sorts ranges and joins the overlapping and adjacent ones, so
// that a lookup is a binary search.
func mergeRanges(rs []serialRange) []serialRange {
	slices.SortFunc(rs, func(a, b serialRange) int { return cmp.Compare(a.lo, b.lo) })
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && (r.lo <= out[n-1].hi || out[n-1].hi != math.MaxUint64 && r.lo == out[n-1].hi+1) {
			out[n-1].hi = max(out[n-1].hi, r.hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

// addBitmap reads "uint64 offset, mpint bitmap": bit n (from the least
// significant) revokes serial offset+n.
func (sec *certRevocations) addBitmap(sub *krlReader) error {
	offset := sub.u64()
	bm := sub.str()
	if sub.err != nil {
		return sub.err
	}
	if len(bm) > 0 && bm[0]&0x80 != 0 {
		return errors.New("negative serial bitmap")
	}
	if uint64(len(bm))*8 > maxBitmapSerials {
		return errors.New("serial bitmap too large")
	}
	nbits := uint64(len(bm)) * 8
	for bit := uint64(0); bit < nbits; bit++ {
		byteIdx := len(bm) - 1 - int(bit/8)
		if bm[byteIdx]&(1<<(bit%8)) == 0 {
			continue
		}
		if offset > math.MaxUint64-bit {
			return errors.New("serial bitmap overflows")
		}
		s := offset + bit
		// Merge runs so a dense bitmap stays a few ranges.
		if n := len(sec.serials); n > 0 && sec.serials[n-1].hi+1 == s && sec.serials[n-1].hi != math.MaxUint64 {
			sec.serials[n-1].hi = s
		} else {
			sec.serials = append(sec.serials, serialRange{s, s})
		}
	}
	return nil
}

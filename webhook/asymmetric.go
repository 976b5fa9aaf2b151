package webhook

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"hash"
	"sync"
)

// msgPool holds buffers for the schemes that sign a message made of parts
// with Ed25519, which needs the whole message at once.
var msgPool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// maxPooledMsg is the largest buffer returned to msgPool: a 1 MiB body
// should not stay in memory for ever.
const maxPooledMsg = 64 << 10

// verifyEd25519 reports whether sig is an Ed25519 signature, under any of
// keys, of the concatenation of pre and body.
func verifyEd25519(keys []ed25519.PublicKey, sig, body []byte, pre ...string) bool {
	if len(sig) != ed25519.SignatureSize || len(keys) == 0 {
		return false
	}
	bp := msgPool.Get().(*[]byte)
	m := (*bp)[:0]
	for _, p := range pre {
		m = append(m, p...)
	}
	m = append(m, body...)
	ok := false
	for _, k := range keys {
		if ed25519.Verify(k, m, sig) {
			ok = true
		}
	}
	if cap(m) <= maxPooledMsg {
		*bp = m[:0]
		msgPool.Put(bp)
	}
	return ok
}

// parseEd25519 decodes a 32-byte Ed25519 public key.
func parseEd25519(raw []byte, err error) (ed25519.PublicKey, error) {
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, errors.New("not a 32-byte Ed25519 public key")
	}
	return ed25519.PublicKey(raw), nil
}

// addEd25519Keys decodes keys with decode into s's Ed25519 keys; none, an
// empty one, or one that is not a key makes s unusable.
func (s *Scheme) addEd25519Keys(keys []string, decode func(string) ([]byte, error), format string) {
	if len(keys) == 0 {
		s.bad = ErrNoSecret
	}
	for _, k := range keys {
		if k == "" {
			s.bad = ErrNoSecret
			return
		}
		pk, err := parseEd25519(decode(k))
		if err != nil {
			s.bad = errors.Join(ErrNoSecret, errors.New("webhook: "+s.name+" public key is not "+format))
			return
		}
		s.edKeys = append(s.edKeys, pk)
	}
}

// hashPool holds SHA-256 states for the ECDSA schemes, with a scratch
// buffer for the parts before the body (a conversion would allocate).
var hashPool = sync.Pool{New: func() any { return &hashState{h: sha256.New()} }}

type hashState struct {
	h       hash.Hash
	scratch []byte
}

// verifyECDSA reports whether der is an ASN.1 ECDSA signature, under any
// of keys, of the SHA-256 of the concatenation of pre and body.
func verifyECDSA(keys []*ecdsa.PublicKey, der, body []byte, pre ...string) bool {
	if len(der) == 0 {
		return false
	}
	st := hashPool.Get().(*hashState)
	st.h.Reset()
	st.scratch = st.scratch[:0]
	for _, p := range pre {
		st.scratch = append(st.scratch, p...)
	}
	st.h.Write(st.scratch)
	st.h.Write(body)
	var sum [sha256.Size]byte
	st.h.Sum(sum[:0])
	hashPool.Put(st)
	ok := false
	for _, k := range keys {
		if ecdsa.VerifyASN1(k, sum[:], der) {
			ok = true
		}
	}
	return ok
}

// parseECDSAP256 decodes a base64 DER (PKIX) P-256 public key.
func parseECDSAP256(s string) (*ecdsa.PublicKey, error) {
	der, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, err
	}
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok || k.Curve != elliptic.P256() {
		return nil, errors.New("not an ECDSA P-256 key")
	}
	return k, nil
}

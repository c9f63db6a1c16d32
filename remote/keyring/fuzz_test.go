package keyring

import (
	"errors"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the blob decoder (and to Unwrap when
// they decode with cheap parameters): no panic, and every failure is
// ErrFormat or ErrWrongPassphrase.
func FuzzDecode(f *testing.F) {
	_, blob, err := NewWithParams([]byte("seed"), TestParams)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(blob)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"version":1,"kdf":"argon2id","salt":"AAAAAAAAAAAAAAAAAAAAAA==","time":1,"memory":64,"threads":1,"nonce":"AAAAAAAAAAAAAAAA","ciphertext":"AAAA"}`))
	f.Add([]byte(`{"version":1,"kdf":"argon2id","memory":4294967295}`))
	f.Add([]byte("\x00\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("decode error not ErrFormat: %v", err)
			}
			return
		}
		if b.Version != Version || b.KDF != KDF || len(b.Ciphertext) != KeySize+tagSize {
			t.Fatalf("decoded an invalid blob: %+v", b)
		}
		if b.Memory <= 1024 && b.Time <= 2 {
			if _, err := Unwrap(data, []byte("seed")); err != nil && !errors.Is(err, ErrWrongPassphrase) {
				t.Fatalf("unwrap: %v", err)
			}
		}
	})
}

package keyring

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestWrapUnwrap(t *testing.T) {
	master, blob, err := NewWithParams([]byte("correct horse"), TestParams)
	if err != nil {
		t.Fatal(err)
	}
	if len(master) != KeySize || bytes.Equal(master, make([]byte, KeySize)) {
		t.Fatalf("master key %x", master)
	}
	got, err := Unwrap(blob, []byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, master) {
		t.Fatal("unwrapped key differs")
	}
	if bytes.Contains(blob, master) {
		t.Fatal("blob contains the raw key")
	}
	_, err = Unwrap(blob, []byte("correct horsf"))
	if !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: got %v", err)
	}
	// Two keys are different, and so are two wraps of one key (fresh salt).
	master2, blob2, err := NewWithParams([]byte("correct horse"), TestParams)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(master, master2) || bytes.Equal(blob, blob2) {
		t.Fatal("two New calls gave the same key or blob")
	}
}

func TestBlobFields(t *testing.T) {
	_, blob, err := NewWithParams([]byte("p"), TestParams)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(blob, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"version", "kdf", "salt", "time", "memory", "threads", "nonce", "ciphertext"} {
		if _, ok := m[k]; !ok {
			t.Errorf("blob lacks %q: %s", k, blob)
		}
	}
	if m["kdf"] != "argon2id" || m["version"] != float64(1) {
		t.Errorf("kdf/version: %s", blob)
	}
}

func TestTamper(t *testing.T) {
	_, blob, err := NewWithParams([]byte("p"), TestParams)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Decode(blob)
	if err != nil {
		t.Fatal(err)
	}
	mutate := []func(b *Blob){
		func(b *Blob) { b.Ciphertext[0] ^= 1 },
		func(b *Blob) { b.Nonce[3] ^= 1 },
		func(b *Blob) { b.Salt[0] ^= 1 },
		func(b *Blob) { b.Time++ },
	}
	for i, f := range mutate {
		c := *b
		c.Ciphertext = bytes.Clone(b.Ciphertext)
		c.Nonce = bytes.Clone(b.Nonce)
		c.Salt = bytes.Clone(b.Salt)
		f(&c)
		enc, _ := json.Marshal(&c)
		if _, err := Unwrap(enc, []byte("p")); !errors.Is(err, ErrWrongPassphrase) {
			t.Errorf("mutation %d: got %v, want ErrWrongPassphrase", i, err)
		}
	}
	bad := []string{
		``, `{}`, `not json`, `{"version":2,"kdf":"argon2id"}`,
		`{"version":1,"kdf":"scrypt"}`,
	}
	for _, s := range bad {
		if _, err := Unwrap([]byte(s), []byte("p")); !errors.Is(err, ErrFormat) {
			t.Errorf("%q: got %v, want ErrFormat", s, err)
		}
	}
	// Absurd cost parameters are refused before any key is derived.
	c := *b
	c.Memory = 1 << 31
	enc, _ := json.Marshal(&c)
	if _, err := Decode(enc); !errors.Is(err, ErrFormat) {
		t.Errorf("huge memory: got %v", err)
	}
}

func TestRewrap(t *testing.T) {
	master, blob, err := NewWithParams([]byte("old"), TestParams)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Rewrap(blob, []byte("wrong"), []byte("new")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("rewrap with wrong old passphrase: %v", err)
	}
	nb, err := Rewrap(blob, []byte("old"), []byte("new"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Unwrap(nb, []byte("old")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("old passphrase still opens the new blob: %v", err)
	}
	got, err := Unwrap(nb, []byte("new"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, master) {
		t.Fatal("rewrap changed the master key")
	}
	d, _ := Decode(nb)
	if d.Params() != TestParams {
		t.Fatalf("rewrap changed the params: %+v", d.Params())
	}
}

// TestDefaultCost measures the real parameters: an unlock must cost enough
// to slow guessing, and not so much that mounting feels slow.
func TestDefaultCost(t *testing.T) {
	if testing.Short() {
		t.Skip("short: skipping the 128 MiB argon2id run")
	}
	_, blob, err := New([]byte("p"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := Unwrap(blob, []byte("p")); err != nil {
		t.Fatal(err)
	}
	d := time.Since(start)
	t.Logf("unlock with DefaultParams %+v took %v", DefaultParams, d)
	if d < 20*time.Millisecond {
		t.Errorf("unlock took %v: parameters too weak", d)
	}
	if d > 10*time.Second {
		t.Errorf("unlock took %v: too slow", d)
	}
}

func TestWrapRejects(t *testing.T) {
	if _, err := Wrap(make([]byte, 16), []byte("p"), TestParams); err == nil {
		t.Error("short master key accepted")
	}
	if _, err := Wrap(make([]byte, KeySize), []byte("p"), Params{}); !errors.Is(err, ErrFormat) {
		t.Errorf("zero params: %v", err)
	}
}

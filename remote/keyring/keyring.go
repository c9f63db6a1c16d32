package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/crypto/argon2"
)

// KeySize is the length of a master key in bytes.
const KeySize = 32

// Version is the blob format written by this package.
const Version = 1

// KDF is the only key-derivation function understood.
const KDF = "argon2id"

const (
	saltSize  = 16
	nonceSize = 12
	tagSize   = 16
	// Bounds on decoded parameters, so a hostile blob cannot make Unwrap
	// allocate without limit or spin for hours.
	maxMemoryKiB = 1 << 20 // 1 GiB
	maxTime      = 64
	maxThreads   = 64
	maxSaltSize  = 64
	maxBlobSize  = 4096
)

// additional data bound into the AEAD, so a ciphertext from another format
// or purpose cannot be substituted.
var aeadAD = []byte("meshdrive keyring v1")

// Errors of the keyring.
var (
	// ErrWrongPassphrase: the passphrase does not open the blob (the AEAD
	// check failed). The caller names the drive in the message it prints.
	ErrWrongPassphrase = errors.New("wrong passphrase (key check failed)")
	// ErrFormat: the blob is not a wrapped key this version understands.
	ErrFormat = errors.New("malformed wrapped key")
)

// Params are the argon2id cost parameters.
type Params struct {
	Time      uint32 // passes
	MemoryKiB uint32 // memory in KiB
	Threads   uint8
}

// DefaultParams make an unlock take a few tenths of a second on a small
// machine (measured on 2 cores: about 0.2-0.5 s).
var DefaultParams = Params{Time: 4, MemoryKiB: 128 << 10, Threads: 2}

// TestParams are cheap parameters for tests only: they give no protection
// against guessing.
var TestParams = Params{Time: 1, MemoryKiB: 64, Threads: 1}

// Blob is the wrapped key as stored (JSON).
type Blob struct {
	Version    int    `json:"version"`
	KDF        string `json:"kdf"`
	Salt       []byte `json:"salt"`
	Time       uint32 `json:"time"`
	Memory     uint32 `json:"memory"` // KiB
	Threads    uint8  `json:"threads"`
	Nonce      []byte `json:"nonce"`
	Ciphertext []byte `json:"ciphertext"`
}

// New makes a random master key and wraps it under passphrase with
// DefaultParams. master and wrapped are newly allocated and owned by the
// caller.
func New(passphrase []byte) (master, wrapped []byte, err error) {
	return NewWithParams(passphrase, DefaultParams)
}

// NewWithParams is New with chosen argon2id parameters.
func NewWithParams(passphrase []byte, p Params) (master, wrapped []byte, err error) {
	master = make([]byte, KeySize)
	if _, err := rand.Read(master); err != nil {
		return nil, nil, fmt.Errorf("keyring: random key: %w", err)
	}
	wrapped, err = Wrap(master, passphrase, p)
	if err != nil {
		return nil, nil, err
	}
	return master, wrapped, nil
}

// Wrap encrypts master (KeySize bytes) under passphrase with a fresh salt
// and nonce and returns the JSON blob.
func Wrap(master, passphrase []byte, p Params) ([]byte, error) {
	if len(master) != KeySize {
		return nil, fmt.Errorf("keyring: master key is %d bytes, want %d", len(master), KeySize)
	}
	if err := p.check(); err != nil {
		return nil, err
	}
	b := Blob{Version: Version, KDF: KDF, Time: p.Time, Memory: p.MemoryKiB, Threads: p.Threads,
		Salt: make([]byte, saltSize), Nonce: make([]byte, nonceSize)}
	if _, err := rand.Read(b.Salt); err != nil {
		return nil, fmt.Errorf("keyring: random salt: %w", err)
	}
	if _, err := rand.Read(b.Nonce); err != nil {
		return nil, fmt.Errorf("keyring: random nonce: %w", err)
	}
	aead, err := b.aead(passphrase)
	if err != nil {
		return nil, err
	}
	b.Ciphertext = aead.Seal(nil, b.Nonce, master, aeadAD)
	out, err := json.MarshalIndent(&b, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("keyring: encode: %w", err)
	}
	return append(out, '\n'), nil
}

// Unwrap opens a blob made by New or Wrap. A wrong passphrase returns
// ErrWrongPassphrase; a damaged blob returns an error wrapping ErrFormat.
func Unwrap(wrapped, passphrase []byte) (master []byte, err error) {
	b, err := Decode(wrapped)
	if err != nil {
		return nil, err
	}
	aead, err := b.aead(passphrase)
	if err != nil {
		return nil, err
	}
	master, err = aead.Open(nil, b.Nonce, b.Ciphertext, aeadAD)
	if err != nil {
		return nil, ErrWrongPassphrase
	}
	return master, nil
}

// Rewrap changes the passphrase: it unwraps with oldPass and wraps the same
// master key under newPass with a new salt and nonce, keeping the blob's
// cost parameters (RewrapWithParams chooses new ones).
func Rewrap(wrapped, oldPass, newPass []byte) ([]byte, error) {
	b, err := Decode(wrapped)
	if err != nil {
		return nil, err
	}
	return RewrapWithParams(wrapped, oldPass, newPass, b.Params())
}

// RewrapWithParams is Rewrap with chosen parameters for the new blob.
func RewrapWithParams(wrapped, oldPass, newPass []byte, p Params) ([]byte, error) {
	master, err := Unwrap(wrapped, oldPass)
	if err != nil {
		return nil, err
	}
	defer clear(master)
	return Wrap(master, newPass, p)
}

// Decode parses and checks a blob without deriving any key. It is the one
// decoder of bytes read from disk or a node.
func Decode(data []byte) (*Blob, error) {
	if len(data) > maxBlobSize {
		return nil, fmt.Errorf("%w: %d bytes is too long", ErrFormat, len(data))
	}
	var b Blob
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if b.Version != Version {
		return nil, fmt.Errorf("%w: version %d, this program reads version %d", ErrFormat, b.Version, Version)
	}
	if b.KDF != KDF {
		return nil, fmt.Errorf("%w: kdf %q, want %q", ErrFormat, b.KDF, KDF)
	}
	if len(b.Salt) < 8 || len(b.Salt) > maxSaltSize {
		return nil, fmt.Errorf("%w: salt is %d bytes", ErrFormat, len(b.Salt))
	}
	if len(b.Nonce) != nonceSize {
		return nil, fmt.Errorf("%w: nonce is %d bytes, want %d", ErrFormat, len(b.Nonce), nonceSize)
	}
	if len(b.Ciphertext) != KeySize+tagSize {
		return nil, fmt.Errorf("%w: ciphertext is %d bytes, want %d", ErrFormat, len(b.Ciphertext), KeySize+tagSize)
	}
	if err := b.Params().check(); err != nil {
		return nil, err
	}
	return &b, nil
}

// Params returns the blob's argon2id parameters.
func (b *Blob) Params() Params {
	return Params{Time: b.Time, MemoryKiB: b.Memory, Threads: b.Threads}
}

func (p Params) check() error {
	if p.Time < 1 || p.Time > maxTime {
		return fmt.Errorf("%w: argon2id time %d out of range 1..%d", ErrFormat, p.Time, maxTime)
	}
	if p.Threads < 1 || p.Threads > maxThreads {
		return fmt.Errorf("%w: argon2id threads %d out of range 1..%d", ErrFormat, p.Threads, maxThreads)
	}
	if p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxMemoryKiB {
		return fmt.Errorf("%w: argon2id memory %d KiB out of range", ErrFormat, p.MemoryKiB)
	}
	return nil
}

func (b *Blob) aead(passphrase []byte) (cipher.AEAD, error) {
	kek := argon2.IDKey(passphrase, b.Salt, b.Time, b.Memory, b.Threads, KeySize)
	defer clear(kek)
	blk, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	aead, err := cipher.NewGCM(blk)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	return aead, nil
}

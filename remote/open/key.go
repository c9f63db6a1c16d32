package open

import "github.com/meshdrive/meshdrive/remote/keyring"

// A drive's master key, wrapped with a passphrase (remote/keyring).
type (
	KeyParams = keyring.Params
	KeyBlob   = keyring.Blob
)

// KeySize is the length of a master key in bytes.
const KeySize = keyring.KeySize

// ErrWrongPassphrase: the passphrase does not open the wrapped key.
var ErrWrongPassphrase = keyring.ErrWrongPassphrase

// DefaultKeyParams are the key derivation parameters of new keys.
func DefaultKeyParams() KeyParams { return keyring.DefaultParams }

// TestKeyParams are cheap parameters for tests only: they give no
// protection against guessing.
func TestKeyParams() KeyParams { return keyring.TestParams }

// NewKey makes a master key and its wrapping with passphrase.
func NewKey(passphrase []byte, p KeyParams) (master, wrapped []byte, err error) {
	return keyring.NewWithParams(passphrase, p)
}

// WrapKey wraps master with passphrase.
func WrapKey(master, passphrase []byte, p KeyParams) ([]byte, error) {
	return keyring.Wrap(master, passphrase, p)
}

// UnwrapKey opens a wrapped key (ErrWrongPassphrase when it does not).
func UnwrapKey(wrapped, passphrase []byte) ([]byte, error) {
	return keyring.Unwrap(wrapped, passphrase)
}

// DecodeKey reads a wrapped key without opening it.
func DecodeKey(data []byte) (*KeyBlob, error) { return keyring.Decode(data) }

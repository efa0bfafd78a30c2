package certstest

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"strings"
	"testing"
)

// PKCS1PEM returns key as an "RSA PRIVATE KEY" (PKCS#1) block. key must be
// an *rsa.PrivateKey.
func PKCS1PEM(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	k, ok := key.(*rsa.PrivateKey)
	if !ok {
		t.Fatalf("certstest: PKCS1PEM: %T is not an RSA key", key)
	}
	return encode("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k))
}

// SEC1PEM returns key as an "EC PRIVATE KEY" (SEC 1) block, the form
// `openssl ecparam -genkey` writes. key must be an *ecdsa.PrivateKey.
func SEC1PEM(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	k, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("certstest: SEC1PEM: %T is not an ECDSA key", key)
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatalf("certstest: SEC1PEM: %v", err)
	}
	return encode("EC PRIVATE KEY", der)
}

// ECParametersPEM returns the "EC PARAMETERS" block that
// `openssl ecparam -genkey` writes before the key. key must be an
// *ecdsa.PrivateKey on P-256, P-384 or P-521.
func ECParametersPEM(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	k, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("certstest: ECParametersPEM: %T is not an ECDSA key", key)
	}
	oids := map[elliptic.Curve]asn1.ObjectIdentifier{
		elliptic.P256(): {1, 2, 840, 10045, 3, 1, 7},
		elliptic.P384(): {1, 3, 132, 0, 34},
		elliptic.P521(): {1, 3, 132, 0, 35},
	}
	oid, ok := oids[k.Curve]
	if !ok {
		t.Fatalf("certstest: ECParametersPEM: unsupported curve %s", k.Curve.Params().Name)
	}
	der, err := asn1.Marshal(oid)
	if err != nil {
		t.Fatalf("certstest: ECParametersPEM: %v", err)
	}
	return encode("EC PARAMETERS", der)
}

// EncryptedLegacyPEM returns key in OpenSSL's legacy encrypted form: a
// PKCS#1 or SEC 1 block with "Proc-Type: 4,ENCRYPTED" and "DEK-Info"
// headers, encrypted with AES-256-CBC under password, as
// `openssl rsa -aes256` writes. (x509.EncryptPEMBlock would do this but is
// deprecated because the format is insecure; scoregate only needs to
// recognise it.) key must be RSA or ECDSA.
func EncryptedLegacyPEM(t testing.TB, key crypto.Signer, password string) []byte {
	t.Helper()
	var plain *pem.Block
	switch key.(type) {
	case *rsa.PrivateKey:
		plain, _ = pem.Decode(PKCS1PEM(t, key))
	case *ecdsa.PrivateKey:
		plain, _ = pem.Decode(SEC1PEM(t, key))
	default:
		t.Fatalf("certstest: EncryptedLegacyPEM: %T has no legacy encoding", key)
	}
	iv := randomBytes(t, aes.BlockSize)
	// EVP_BytesToKey with MD5 and one iteration; the salt is the IV's
	// first eight bytes.
	var derived, prev []byte
	for len(derived) < 32 {
		h := md5.New()
		h.Write(prev)
		h.Write([]byte(password))
		h.Write(iv[:8])
		prev = h.Sum(nil)
		derived = append(derived, prev...)
	}
	return pem.EncodeToMemory(&pem.Block{
		Type: plain.Type,
		Headers: map[string]string{
			"Proc-Type": "4,ENCRYPTED",
			"DEK-Info":  "AES-256-CBC," + strings.ToUpper(hex.EncodeToString(iv)),
		},
		Bytes: encryptCBC(t, derived[:32], iv, plain.Bytes),
	})
}

// EncryptedPKCS8PEM returns key as an "ENCRYPTED PRIVATE KEY" block
// (PKCS#8 with PBES2: PBKDF2-HMAC-SHA256 and AES-256-CBC) under password,
// the form `openssl pkcs8 -topk8` and `openssl genpkey -aes256` write.
func EncryptedPKCS8PEM(t testing.TB, key crypto.Signer, password string) []byte {
	t.Helper()
	plain, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("certstest: EncryptedPKCS8PEM: %v", err)
	}
	salt, iv := randomBytes(t, 16), randomBytes(t, aes.BlockSize)
	const iter = 2048
	k, err := pbkdf2.Key(sha256.New, password, salt, iter, 32)
	if err != nil {
		t.Fatalf("certstest: EncryptedPKCS8PEM: %v", err)
	}
	type pbkdf2Params struct {
		Salt       []byte
		Iterations int
		PRF        pkix.AlgorithmIdentifier
	}
	type pbes2Params struct {
		KDF pkix.AlgorithmIdentifier
		Enc pkix.AlgorithmIdentifier
	}
	type encryptedPrivateKeyInfo struct {
		Alg  pkix.AlgorithmIdentifier
		Data []byte
	}
	kdf, err := asn1.Marshal(pbkdf2Params{
		Salt:       salt,
		Iterations: iter,
		PRF:        pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}, Parameters: asn1.NullRawValue},
	})
	if err != nil {
		t.Fatalf("certstest: EncryptedPKCS8PEM: %v", err)
	}
	ivDER, err := asn1.Marshal(iv)
	if err != nil {
		t.Fatalf("certstest: EncryptedPKCS8PEM: %v", err)
	}
	params, err := asn1.Marshal(pbes2Params{
		KDF: pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}, Parameters: asn1.RawValue{FullBytes: kdf}},
		Enc: pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}, Parameters: asn1.RawValue{FullBytes: ivDER}},
	})
	if err != nil {
		t.Fatalf("certstest: EncryptedPKCS8PEM: %v", err)
	}
	der, err := asn1.Marshal(encryptedPrivateKeyInfo{
		Alg:  pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}, Parameters: asn1.RawValue{FullBytes: params}},
		Data: encryptCBC(t, k, iv, plain),
	})
	if err != nil {
		t.Fatalf("certstest: EncryptedPKCS8PEM: %v", err)
	}
	return encode("ENCRYPTED PRIVATE KEY", der)
}

// encryptCBC pads plain as PKCS#7 and encrypts it with AES-CBC.
func encryptCBC(t testing.TB, key, iv, plain []byte) []byte {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatalf("certstest: %v", err)
	}
	pad := aes.BlockSize - len(plain)%aes.BlockSize
	buf := append([]byte(nil), plain...)
	for range pad {
		buf = append(buf, byte(pad))
	}
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(buf, buf)
	return buf
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("certstest: %v", err)
	}
	return b
}

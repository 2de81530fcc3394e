package auth

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"hash"
)

// Hashing algorithm names, as RabbitMQ writes them in definitions files.
const (
	HashSHA256 = "rabbit_password_hashing_sha256"
	HashSHA512 = "rabbit_password_hashing_sha512"
	HashMD5    = "rabbit_password_hashing_md5"
)

const saltLen = 4

// HashPassword returns the RabbitMQ SHA-256 salted hash of password, as
// `rabbitmqctl hash_password` computes it before base64: a random 4-byte
// salt followed by SHA-256(salt || password).
func HashPassword(password string) []byte {
	var salt [saltLen]byte
	rand.Read(salt[:]) // never fails (crypto/rand.Read aborts instead)
	return saltedHash(sha256.New(), salt[:], password)
}

// saltedHash returns salt || h(salt || password).
func saltedHash(h hash.Hash, salt []byte, password string) []byte {
	h.Write(salt)
	h.Write([]byte(password))
	out := make([]byte, 0, len(salt)+h.Size())
	out = append(out, salt...)
	return h.Sum(out)
}

// HashAlgorithm names the algorithm of a password hash in RabbitMQ's format
// (base64-decoded) from its length: HashSHA256, HashSHA512 or HashMD5, or ""
// when the length fits none.
func HashAlgorithm(hash []byte) string { return algorithmFor(hash) }

// algorithmFor names the algorithm of a stored hash from its length, or
// returns "" if the length fits none.
func algorithmFor(stored []byte) string {
	switch len(stored) - saltLen {
	case sha256.Size:
		return HashSHA256
	case sha512.Size:
		return HashSHA512
	case md5.Size:
		return HashMD5
	}
	return ""
}

func newHash(alg string) hash.Hash {
	switch alg {
	case HashSHA512:
		return sha512.New()
	case HashMD5:
		return md5.New()
	}
	return sha256.New()
}

// checkPassword reports whether password matches stored, in time that does
// not depend on where they differ.
func checkPassword(stored []byte, password string) bool {
	alg := algorithmFor(stored)
	if alg == "" {
		return false
	}
	want := saltedHash(newHash(alg), stored[:saltLen], password)
	return subtle.ConstantTimeCompare(stored, want) == 1
}

// dummyHash is checked against when the user does not exist, so that
// unknown users cost as much as wrong passwords.
var dummyHash = HashPassword("\x00no such user")

// Command noise_gen_ferry writes tests/vectors/noise_ferry.txt: a ferry
// handshake and a few frames made with flynn/noise, an implementation
// independent of src/session.c, following docs/protocol.md ("Handshake",
// "Framing"). test_session checks that src/session.c produces and accepts
// exactly these bytes.
//
// It is not part of the build. To run it on Debian:
//
//	apt-get install golang-go golang-github-flynn-noise-dev
//	GO111MODULE=off GOPATH=/usr/share/gocode go run noise_gen_ferry.go > noise_ferry.txt
package main

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/flynn/noise"
)

const (
	netkey        = "66657272792074657374206e6574776f726b206b65792c203332206279746573"
	initStatic    = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
	respStatic    = "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
	initEphemeral = "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"
	respEphemeral = "101112131415161718191a1b1c1d1e1f000102030405060708090a0b0c0d0e0f"
	unixTime      = 1767225600 // 2026-01-01T00:00:00Z
)

func unhex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// wire prefixes a handshake message with its 2-byte big-endian length.
func wire(msg []byte) []byte {
	out := make([]byte, 2, 2+len(msg))
	binary.BigEndian.PutUint16(out, uint16(len(msg)))
	return append(out, msg...)
}

// frame seals one frame: header (more bit, ciphertext length) as associated data.
func frame(cs *noise.CipherState, pt []byte, more bool) []byte {
	hdr := uint32(len(pt) + 16)
	if more {
		hdr |= 0x80000000
	}
	out := make([]byte, 4)
	binary.BigEndian.PutUint32(out, hdr)
	ct, err := cs.Encrypt(nil, out, pt)
	if err != nil {
		panic(err)
	}
	return append(out, ct...)
}

func main() {
	suite := noise.NewCipherSuite(noise.DH25519, noise.CipherChaChaPoly, noise.HashBLAKE2b)
	si, _ := suite.GenerateKeypair(bytes.NewReader(unhex(initStatic)))
	sr, _ := suite.GenerateKeypair(bytes.NewReader(unhex(respStatic)))
	cfg := noise.Config{
		CipherSuite:           suite,
		Pattern:               noise.HandshakeXX,
		Initiator:             true,
		Prologue:              []byte("ferry/1"),
		PresharedKey:          unhex(netkey),
		PresharedKeyPlacement: 0,
		StaticKeypair:         si,
		Random:                bytes.NewReader(unhex(initEphemeral)),
	}
	hi, err := noise.NewHandshakeState(cfg)
	if err != nil {
		panic(err)
	}
	cfg.Initiator = false
	cfg.StaticKeypair = sr
	cfg.Random = bytes.NewReader(unhex(respEphemeral))
	hr, err := noise.NewHandshakeState(cfg)
	if err != nil {
		panic(err)
	}

	// Message 1 payload: version 1, flags 0, time.
	p1 := make([]byte, 12)
	binary.BigEndian.PutUint16(p1[0:], 1)
	binary.BigEndian.PutUint64(p1[4:], unixTime)
	hello2 := []byte("hello from the responder")
	hello3 := []byte("hello from the initiator")

	m1, _, _, err := hi.WriteMessage(nil, p1)
	if err != nil {
		panic(err)
	}
	if _, _, _, err = hr.ReadMessage(nil, m1); err != nil {
		panic(err)
	}
	m2, _, _, err := hr.WriteMessage(nil, hello2)
	if err != nil {
		panic(err)
	}
	if _, _, _, err = hi.ReadMessage(nil, m2); err != nil {
		panic(err)
	}
	m3, i2r, r2i, err := hi.WriteMessage(nil, hello3)
	if err != nil {
		panic(err)
	}
	if _, _, _, err = hr.ReadMessage(nil, m3); err != nil {
		panic(err)
	}

	// Initiator to responder: an empty message, then "first part|second part"
	// split over two frames. Responder to initiator: one message.
	var tx []byte
	tx = append(tx, frame(i2r, nil, false)...)
	tx = append(tx, frame(i2r, []byte("first part|"), true)...)
	tx = append(tx, frame(i2r, []byte("second part"), false)...)
	rx := frame(r2i, []byte("pong"), false)

	fmt.Printf("# ferry handshake and framing made by noise_gen_ferry.go with flynn/noise.\n")
	fmt.Printf("netkey=%s\n", netkey)
	fmt.Printf("init_static=%s\n", initStatic)
	fmt.Printf("resp_static=%s\n", respStatic)
	fmt.Printf("init_ephemeral=%s\n", initEphemeral)
	fmt.Printf("resp_ephemeral=%s\n", respEphemeral)
	fmt.Printf("time=%d\n", unixTime)
	fmt.Printf("msg1=%x\n", wire(m1))
	fmt.Printf("hello2=%x\n", hello2)
	fmt.Printf("msg2=%x\n", wire(m2))
	fmt.Printf("hello3=%x\n", hello3)
	fmt.Printf("msg3=%x\n", wire(m3))
	fmt.Printf("handshake_hash=%x\n", hi.ChannelBinding())
	fmt.Printf("i2r_frames=%x\n", tx)
	fmt.Printf("i2r_messages=%x,%x\n", "", "first part|second part")
	fmt.Printf("r2i_frames=%x\n", rx)
	fmt.Printf("r2i_messages=%x\n", "pong")
}

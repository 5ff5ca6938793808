//go:build js && wasm

package main

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"syscall/js"
)

// bytesArg copies a JavaScript string or Uint8Array argument into Go.
func bytesArg(v js.Value) []byte {
	if v.Type() == js.TypeString {
		return []byte(v.String())
	}
	b := make([]byte, v.Get("length").Int())
	js.CopyBytesToGo(b, v)
	return b
}

// newHasher returns a JavaScript object {update(Uint8Array), hex()} over
// Go's SHA-256. The page hashes with a dedicated WebAssembly SHA-256 (see
// assets/vendor); this one exists so the benchmark can compare the two.
func newHasher(js.Value, []js.Value) any {
	var h hash.Hash = sha256.New()
	buf := make([]byte, 0)
	obj := js.Global().Get("Object").New()
	obj.Set("update", js.FuncOf(func(_ js.Value, args []js.Value) any {
		n := args[0].Get("length").Int()
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		js.CopyBytesToGo(buf, args[0])
		h.Write(buf)
		return nil
	}))
	obj.Set("hex", js.FuncOf(func(js.Value, []js.Value) any {
		return hex.EncodeToString(h.Sum(nil))
	}))
	return obj
}

func main() {
	api := js.Global().Get("Object").New()
	// verifyReceipt(receipt: string|Uint8Array, fileSHA256Hex, pinnedHex) → JSON text
	api.Set("verifyReceipt", js.FuncOf(func(_ js.Value, a []js.Value) any {
		return VerifyReceipt(bytesArg(a[0]), a[1].String(), a[2].String())
	}))
	// verifyLookup(nodeAnswerJSON: string, fileSHA256Hex, pinnedHex) → JSON text
	api.Set("verifyLookup", js.FuncOf(func(_ js.Value, a []js.Value) any {
		return VerifyLookup(bytesArg(a[0]), a[1].String(), a[2].String())
	}))
	api.Set("newSHA256", js.FuncOf(newHasher))
	js.Global().Set("cunzheng", api)
	if cb := js.Global().Get("cunzhengReady"); cb.Type() == js.TypeFunction {
		cb.Invoke(api)
	}
	select {}
}

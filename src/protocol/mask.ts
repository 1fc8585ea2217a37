/**
 * Masking, RFC 6455 §5.3: payload byte i is XORed with mask byte i mod 4. Works four bytes at a
 * time through a `Uint32Array` view over the aligned middle, bytes only at the edges. Copies of
 * large parts are unmasked by a small WebAssembly SIMD kernel where WebAssembly runs it.
 *
 * @packageDocumentation
 */

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1

/** Below this many bytes a byte loop beats building a 32-bit view (measured: 2.7x at 32 B, even at ~110 B). */
const WORD_THRESHOLD = 100

/**
 * XOR `data` in place with the 4-byte key `m0 m1 m2 m3`, starting at key position `offset`
 * (the number of payload bytes already masked before `data`, for payloads split across chunks).
 */
export function applyMask (data: Uint8Array, m0: number, m1: number, m2: number, m3: number, offset = 0): void {
  const len = data.length
  // In place through the kernel's memory too: 2-3x the word loop from 2 KiB up, copies included.
  if (len >= KERNEL_MIN && kernel !== undefined) {
    viaKernel(kernel, data, 0, data, m0, m1, m2, m3, offset)
    return
  }
  let i = 0
  if ((offset & 3) !== 0) {
    // Rotate so the key starts at data[0].
    const r = offset & 3
    const k = [m0, m1, m2, m3]
    m0 = k[r]; m1 = k[(r + 1) & 3]; m2 = k[(r + 2) & 3]; m3 = k[(r + 3) & 3]
  }
  if (len < WORD_THRESHOLD) {
    for (; i + 3 < len; i += 4) {
      data[i] ^= m0
      data[i + 1] ^= m1
      data[i + 2] ^= m2
      data[i + 3] ^= m3
    }
  } else {
    const head = (4 - (data.byteOffset & 3)) & 3
    for (; i < head; i++) data[i] ^= i === 0 ? m0 : i === 1 ? m1 : m2
    const words = (len - head) >>> 2
    // The key as seen from the first aligned byte, in the platform's byte order.
    const b0 = head === 0 ? m0 : head === 1 ? m1 : head === 2 ? m2 : m3
    const b1 = head === 0 ? m1 : head === 1 ? m2 : head === 2 ? m3 : m0
    const b2 = head === 0 ? m2 : head === 1 ? m3 : head === 2 ? m0 : m1
    const b3 = head === 0 ? m3 : head === 1 ? m0 : head === 2 ? m1 : m2
    const key = LITTLE_ENDIAN
      ? (b0 | (b1 << 8) | (b2 << 16) | (b3 << 24))
      : ((b0 << 24) | (b1 << 16) | (b2 << 8) | b3)
    const view = new Uint32Array(data.buffer, data.byteOffset + head, words)
    // Eight words a round: V8 keeps the loop tight, 1.5x or more the speed of one at a time.
    const words8 = words & ~7
    let w = 0
    for (; w < words8; w += 8) {
      view[w] ^= key
      view[w + 1] ^= key
      view[w + 2] ^= key
      view[w + 3] ^= key
      view[w + 4] ^= key
      view[w + 5] ^= key
      view[w + 6] ^= key
      view[w + 7] ^= key
    }
    for (; w < words; w++) view[w] ^= key
    i = head + (words << 2)
  }
  for (; i < len; i++) {
    const r = i & 3
    data[i] ^= r === 0 ? m0 : r === 1 ? m1 : r === 2 ? m2 : m3
  }
}

/**
 * XOR `bytes[start, end)` in place with `key`, a masking key as `view.getInt32` reads it (its
 * first octet highest), `view` being a DataView of `bytes`: four bytes a step, any alignment, no
 * byte order to mind; bytes only at the end. Applied twice, it leaves the bytes as they were.
 */
export function maskInView (view: DataView, bytes: Uint8Array, start: number, end: number, key: number): void {
  let i = start
  for (; i + 4 <= end; i += 4) view.setInt32(i, view.getInt32(i) ^ key)
  if (i < end) {
    bytes[i] ^= key >>> 24
    if (i + 1 < end) bytes[i + 1] ^= (key >>> 16) & 0xff
    if (i + 2 < end) bytes[i + 2] ^= (key >>> 8) & 0xff
  }
}

/**
 * A WebAssembly module, written by hand: one 64 KiB page of memory exported as `mem`, and
 * `xor(len, key)`, which XORs `mem[0, len)` (len a multiple of 64) with the 32-bit `key` splatted
 * over a v128, four 16-byte lanes a round:
 *
 * ```wat
 * (func (export "xor") (param $len i32) (param $key i32) (local $i i32) (local $k v128)
 *   (local.set $k (i32x4.splat (local.get $key)))
 *   (block (loop
 *     (br_if 1 (i32.ge_u (local.get $i) (local.get $len)))
 *     (v128.store offset=0 (local.get $i) (v128.xor (v128.load offset=0 (local.get $i)) (local.get $k)))
 *     ;; the same at offset=16, 32 and 48
 *     (local.set $i (i32.add (local.get $i) (i32.const 64)))
 *     (br 0))))
 * ```
 */
const KERNEL = [0,97,115,109,1,0,0,0,1,6,1,96,2,127,127,0,3,2,1,0,5,3,1,0,1,7,13,2,3,109,101,109,2,0,3,120,111,114,0,0,10,101,1,99,2,1,127,1,123,32,1,253,17,33,3,2,64,3,64,32,2,32,0,79,13,1,32,2,32,2,253,0,4,0,32,3,253,81,253,11,4,0,32,2,32,2,253,0,4,16,32,3,253,81,253,11,4,16,32,2,32,2,253,0,4,32,32,3,253,81,253,11,4,32,32,2,32,2,253,0,4,48,32,3,253,81,253,11,4,48,32,2,65,192,0,106,33,2,12,0,11,11,11]

interface Kernel { readonly mem: Uint8Array, readonly xor: (len: number, key: number) => void }

/** The kernel, compiled synchronously at import; undefined where WebAssembly or its SIMD is absent. */
const kernel: Kernel | undefined = loadKernel()

function loadKernel (): Kernel | undefined {
  try {
    const wasm = (globalThis as { WebAssembly?: typeof WebAssembly }).WebAssembly
    const bytes = new Uint8Array(KERNEL)
    // validate() is false where the engine lacks SIMD: the plain-JavaScript loop is used then
    if (wasm === undefined || !wasm.validate(bytes)) return undefined
    const exports = new wasm.Instance(new wasm.Module(bytes)).exports as { mem: WebAssembly.Memory, xor: (len: number, key: number) => void }
    return { mem: new Uint8Array(exports.mem.buffer), xor: exports.xor }
  } catch {
    return undefined
  }
}

/** The kernel's memory: parts are unmasked through it this many bytes at a time. */
const KERNEL_BLOCK = 65536
/**
 * Below this many bytes a plain copy and {@link applyMask} are used: the copy into and out of
 * the kernel's memory then costs about what it saves. (64 KiB: 4.4 GB/s copied and unmasked in
 * JavaScript, 14.7 GB/s through the kernel, copies included.)
 */
const KERNEL_MIN = 2048

/** True when {@link copyUnmasked} and {@link applyMask} use the WebAssembly kernel for large parts. */
export const simdUnmask = kernel !== undefined

/**
 * Copy `src` into `dst` at `at` and unmask it there with the key `m0 m1 m2 m3` starting at key
 * position `offset` (as {@link applyMask}); `src` is left as it was. Large parts go through the
 * WebAssembly kernel when there is one.
 */
export function copyUnmasked (dst: Uint8Array, at: number, src: Uint8Array, m0: number, m1: number, m2: number, m3: number, offset = 0): void {
  const n = src.length
  if (kernel === undefined || n < KERNEL_MIN) {
    dst.set(src, at)
    applyMask(dst.subarray(at, at + n), m0, m1, m2, m3, offset)
  } else {
    viaKernel(kernel, dst, at, src, m0, m1, m2, m3, offset)
  }
}

/** {@link copyUnmasked} through the kernel; `dst` may be `src` (the block is copied in before it is copied out). */
function viaKernel (kernel: Kernel, dst: Uint8Array, at: number, src: Uint8Array, m0: number, m1: number, m2: number, m3: number, offset: number): void {
  const n = src.length
  // Every block starts at a multiple of 4 from the first, so one rotated key serves them all.
  // WebAssembly memory is little-endian on every platform.
  const r = offset & 3
  const k0 = r === 0 ? m0 : r === 1 ? m1 : r === 2 ? m2 : m3
  const k1 = r === 0 ? m1 : r === 1 ? m2 : r === 2 ? m3 : m0
  const k2 = r === 0 ? m2 : r === 1 ? m3 : r === 2 ? m0 : m1
  const k3 = r === 0 ? m3 : r === 1 ? m0 : r === 2 ? m1 : m2
  const key = k0 | (k1 << 8) | (k2 << 16) | (k3 << 24)
  const mem = kernel.mem
  for (let p = 0; p < n; p += KERNEL_BLOCK) {
    const len = Math.min(KERNEL_BLOCK, n - p)
    mem.set(p === 0 && len === n ? src : src.subarray(p, p + len))
    // rounded up to 64: the bytes past `len` are scratch, never copied out
    kernel.xor((len + 63) & ~63, key)
    dst.set(len === KERNEL_BLOCK ? mem : mem.subarray(0, len), at + p)
  }
}


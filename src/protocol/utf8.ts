/**
 * UTF-8 validation (RFC 3629 §4, as RFC 6455 §8.1 requires for text), incremental so that a
 * fragmented text message fails on the fragment that breaks it, not at its end.
 *
 * @packageDocumentation
 */

/**
 * An incremental UTF-8 validator. Feed bytes with {@link Utf8Validator.push}; it returns false at
 * the first byte that can never start or continue a valid sequence. {@link Utf8Validator.complete}
 * says whether the bytes so far end on a character boundary.
 */
export class Utf8Validator {
  /** Continuation bytes still owed by the current sequence. */
  private need = 0
  /** The allowed range of the next continuation byte (narrowed after E0, ED, F0 and F4). */
  private lo = 0x80
  private hi = 0xbf

  /** Validate `bytes[start..end)`, carrying state over from earlier calls. */
  push (bytes: Uint8Array, start = 0, end = bytes.length): boolean {
    let need = this.need
    let lo = this.lo
    let hi = this.hi
    let i = start
    while (i < end) {
      const b = bytes[i++]
      if (need === 0) {
        if (b < 0x80) continue
        if (b < 0xc2) return false // a stray continuation byte, or an overlong C0/C1 lead
        if (b < 0xe0) {
          need = 1
        } else if (b < 0xf0) {
          need = 2
          if (b === 0xe0) lo = 0xa0 // overlong 3-byte forms
          else if (b === 0xed) hi = 0x9f // UTF-16 surrogates D800–DFFF
        } else if (b < 0xf5) {
          need = 3
          if (b === 0xf0) lo = 0x90 // overlong 4-byte forms
          else if (b === 0xf4) hi = 0x8f // above U+10FFFF
        } else {
          return false
        }
      } else {
        if (b < lo || b > hi) return false
        lo = 0x80
        hi = 0xbf
        need--
      }
    }
    this.need = need
    this.lo = lo
    this.hi = hi
    return true
  }

  /** True when no multi-byte sequence is left open. */
  get complete (): boolean {
    return this.need === 0
  }

  /** Forget any open sequence, ready for the next message. */
  reset (): void {
    this.need = 0
    this.lo = 0x80
    this.hi = 0xbf
  }
}

/** Whole-buffer UTF-8 check in plain JavaScript; the driver passes Node's native `buffer.isUtf8` instead. */
export function isUtf8 (bytes: Uint8Array): boolean {
  // ASCII runs are the common case: skip them before starting the validator.
  let i = 0
  const len = bytes.length
  while (i < len && bytes[i] < 0x80) i++
  if (i === len) return true
  const v = new Utf8Validator()
  return v.push(bytes, i) && v.complete
}

/**
 * Text marks: a received text message carries a mark, so that `sink(source)` echoes text as
 * text; {@link asText} marks bytes a handler made.
 *
 * @packageDocumentation
 */

/** Its constructor returns the object it is given, so a subclass's fields land on that object. */
class Stamp {
  constructor (target: object) {
    return target as Stamp
  }
}

/**
 * The mark is a private field stamped onto the message (the constructor-return idiom): as cheap
 * as a plain property (a WeakSet entry per message cost a fifth of a text echo's time, a
 * non-enumerable `Object.defineProperty` a quarter), yet no property at all, so printing a
 * message or comparing it with `deepEqual` (ava's, `node:assert`'s) sees only its bytes.
 */
class TextMark extends Stamp {
  #text = true

  static has (bytes: object): boolean {
    return #text in bytes
  }
}

/** Was this message received as text (or marked with {@link asText})? */
export function isText (message: Uint8Array): boolean {
  return TextMark.has(message)
}

/**
 * Mark bytes (valid UTF-8) to be sent as a text message by `sink` or `send`. Returns them. The
 * mark is invisible: `deepEqual` and `console.log` see the bytes only.
 */
export function asText<T extends Uint8Array> (bytes: T): T {
  if (!TextMark.has(bytes)) new TextMark(bytes)
  return bytes
}

/** Mark a message that cannot carry the mark yet (one the driver just made): no check first. */
export function markNew (bytes: Uint8Array): void {
  new TextMark(bytes)
}

/**
 * Text marks: a received text message carries a mark, so that `sink(source)` echoes text as
 * text; {@link asText} marks bytes a handler made.
 *
 * @packageDocumentation
 */

/**
 * Marks a received text message, so that `sink(source)` echoes text as text. A property on the
 * message itself: a WeakSet entry per message cost far more (a fifth of a text echo's time).
 */
export const kText = Symbol.for('wspipe.text')

/** A message that may carry the text mark. */
export type Marked = Uint8Array & { [kText]?: true }

/** Was this message received as text (or marked with {@link asText})? */
export function isText (message: Uint8Array): boolean {
  return (message as Marked)[kText] === true
}

/** Mark bytes (valid UTF-8) to be sent as a text message by `sink`. Returns them. */
export function asText<T extends Uint8Array> (bytes: T): T {
  (bytes as Marked)[kText] = true
  return bytes
}


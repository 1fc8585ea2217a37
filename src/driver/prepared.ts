/**
 * Prepared messages: a message encoded once as an unmasked server frame, so that a broadcast
 * writes the same bytes to every connection instead of encoding once per connection (server
 * frames are never masked, RFC 6455 §5.1). The frame rides on the message as a mark, like the
 * text mark: a prepared message is still a plain `Uint8Array` to everyone else. The frame is
 * {@link SharedBytes}: however many queues hold it, a memory budget counts it once.
 *
 * @packageDocumentation
 */

import { Buffer } from 'node:buffer'
import { frameHeaderSize, writeFrameHeader } from '../protocol/encode.js'
import { Opcode } from '../protocol/opcode.js'
import { SharedBytes } from './budget.js'
import { asText, isText } from '../text-mark.js'
import type { OutgoingMessage } from './types.js'

/** Marks a message that carries its own encoded server frame. */
export const kFrame = Symbol.for('wspipe.frame')

/** A message that may carry its encoded frame. */
export type Prepared = Uint8Array & { [kFrame]?: SharedBytes }

/** The encoded frame `message` carries, if it was prepared. */
export function preparedFrame (message: Uint8Array): Uint8Array | undefined {
  return (message as Prepared)[kFrame]?.bytes
}

/** The encoded frame `message` carries, as the shared bytes a budget counts once; undefined if it was not prepared. */
export function preparedShare (message: Uint8Array): SharedBytes | undefined {
  return (message as Prepared)[kFrame]
}

/**
 * Encode `message` once as one unfragmented, unmasked frame (text for a string or a text-marked
 * message, binary otherwise). Returns the payload as a view into that frame, carrying the text
 * mark and the frame: one allocation, and the caller's message is neither copied twice nor marked.
 */
export function prepareMessage (message: OutgoingMessage): Uint8Array {
  let payload: Uint8Array
  let text: boolean
  if (typeof message === 'string') {
    payload = Buffer.from(message)
    text = true
  } else if (message instanceof Uint8Array) {
    if (preparedFrame(message) !== undefined) return message
    payload = message
    text = isText(message)
  } else {
    throw new TypeError('a message must be a string or a Uint8Array')
  }
  const length = payload.length
  const headerSize = frameHeaderSize(length, false)
  // Its own memory, not the shared pool: a slow subscriber holding it must not pin 8 KiB, and
  // its size is all it keeps alive.
  const frame = Buffer.allocUnsafeSlow(headerSize + length)
  writeFrameHeader(frame, 0, text ? Opcode.Text : Opcode.Binary, length, true, false, false)
  frame.set(payload, headerSize)
  const prepared = frame.subarray(headerSize) as Prepared
  if (text) asText(prepared)
  prepared[kFrame] = new SharedBytes(frame)
  return prepared
}

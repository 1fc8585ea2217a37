/**
 * What the Node layers take from `node:crypto`: the SHA-1 of `Sec-WebSocket-Accept`, the
 * client's handshake key, and masking keys. The pure layers receive these as functions.
 *
 * @packageDocumentation
 */

import { createHash, getRandomValues, randomBytes } from 'node:crypto'
import { acceptValue } from './handshake.js'

/** `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2 item 5.4). */
export function acceptFor (key: string): string {
  return acceptValue(key, (input) => createHash('sha1').update(input).digest('base64'))
}

/** A fresh `Sec-WebSocket-Key`: base64 of 16 random bytes (§4.1). */
export function newKey (): string {
  return randomBytes(16).toString('base64')
}

// Masking keys come from a pool refilled in bulk: one getRandomValues call per 1,024 frames.
const maskPool = new Uint8Array(4096)
let maskPoolAt = maskPool.length

/** Fill a 4-byte masking key with unpredictable bytes (§5.3). */
export function fillMask (key: Uint8Array): void {
  if (maskPoolAt === maskPool.length) {
    getRandomValues(maskPool)
    maskPoolAt = 0
  }
  key[0] = maskPool[maskPoolAt]; key[1] = maskPool[maskPoolAt + 1]; key[2] = maskPool[maskPoolAt + 2]; key[3] = maskPool[maskPoolAt + 3]
  maskPoolAt += 4
}

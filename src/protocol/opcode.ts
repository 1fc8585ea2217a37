/**
 * Frame opcodes, RFC 6455 §5.2 and §11.8.
 *
 * @packageDocumentation
 */

/** The opcodes RFC 6455 defines. Every other value is reserved and refused (§5.2). */
export const Opcode = {
  /** §5.4: continues the message the previous data frame started. */
  Continuation: 0x0,
  /** §5.6: the message is UTF-8 text. */
  Text: 0x1,
  /** §5.6: the message is arbitrary bytes. */
  Binary: 0x2,
  /** §5.5.1: the closing handshake. */
  Close: 0x8,
  /** §5.5.2: asks the peer for a pong. */
  Ping: 0x9,
  /** §5.5.3: answers a ping, or is a unidirectional heartbeat. */
  Pong: 0xa
} as const

/** One of the opcodes in {@link Opcode}. */
export type Opcode = typeof Opcode[keyof typeof Opcode]

/** True for close, ping and pong: §5.5, "Control frames are identified by opcodes where the most significant bit of the opcode is 1". */
export function isControlOpcode (opcode: number): boolean {
  return (opcode & 0x8) !== 0
}

/** True for the opcodes RFC 6455 defines; the rest are reserved (§5.2). */
export function isKnownOpcode (opcode: number): boolean {
  return opcode <= 0x2 || (opcode >= 0x8 && opcode <= 0xa)
}

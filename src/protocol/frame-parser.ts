/**
 * The frame parser: bytes in, {@link Frame}s out (RFC 6455 §5.2). Synchronous, with no I/O and
 * no dependence on Node, so it can be fed byte arrays in tests, fuzzed, and run anywhere.
 *
 * @example
 * ```ts
 * const parser = new FrameParser({ role: 'server' })
 * for (const frame of parser.push(chunk)) console.log(frame.opcode, frame.payload)
 * ```
 *
 * @packageDocumentation
 */

import { ProtocolError } from './errors.js'
import { Gatherer } from './gather.js'
import { applyMask, copyUnmasked, maskInView } from './mask.js'
import { isControlOpcode, isKnownOpcode, Opcode } from './opcode.js'

/** Which end of the connection this parser sits on: it decides the masking rule of §5.1. */
export type Role = 'server' | 'client'

/** One decoded frame. The mask bit, length and key are wire details and are not kept. */
export interface Frame {
  /** §5.2: this is the final fragment of its message. */
  readonly fin: boolean
  /** §5.2: extension bits, always false unless an extension negotiated them. */
  readonly rsv1: boolean
  /** §5.2: second extension bit. */
  readonly rsv2: boolean
  /** §5.2: third extension bit. */
  readonly rsv3: boolean
  /** One of {@link Opcode}. */
  readonly opcode: number
  /** The unmasked payload. A view of the received bytes when the frame lay inside one chunk. */
  readonly payload: Uint8Array
}

/** Options of {@link FrameParser}. */
export interface FrameParserOptions {
  /** `'server'` expects masked frames, `'client'` unmasked ones (§5.1). */
  role: Role
  /**
   * The largest payload accepted in one data frame, in bytes; a larger declared length is
   * refused with 1009 before any of it is buffered. Control frames are bounded by §5.5 (125
   * bytes) whatever this is. Default: 16 MiB.
   */
  maxFrameSize?: number
  /**
   * Reserved bits an extension negotiated, as a mask of the first header byte
   * (`0x40` for RSV1, `0x20` RSV2, `0x10` RSV3). Default: 0, so any set bit is a 1002 (§5.2).
   */
  allowedReservedBits?: number
  /**
   * Allocates the buffer a payload split across chunks is gathered into; the Node driver passes
   * `Buffer.allocUnsafe` (no zero-fill: every byte is written). Default: `new Uint8Array`.
   */
  alloc?: (size: number) => Uint8Array
  /**
   * Hand out data frames (opcodes 0-2) split across chunks in pieces, one per chunk, rather than
   * gather them: each piece is a {@link Frame} viewing its chunk, unmasked, the first with the
   * frame's opcode and RSV1, later ones as continuations, and only the last with the frame's FIN.
   * A frame then costs no memory however long it is, and its pieces read as the fragments of a
   * message. Control frames are still gathered (at most 125 bytes). Default false.
   */
  streamData?: boolean
}

/**
 * Takes whole small frames straight from the chunk as {@link FrameParser.push} parses them, so
 * no {@link Frame} (nor payload view) is made for them: a receiver that handles each one at once.
 */
export interface WholeFrameTaker {
  /**
   * The frame with first header byte `b0`, whole, its payload (at most 125 bytes) at
   * `chunk[start, end)` and still masked with `key` (as `view.getInt32` reads the key; `view` is
   * a DataView of `chunk`). An unmasked frame (a client's parser) comes with key 0 and no view.
   * A taker that copies the payload unmasks it in the copy (mask.ts's `maskInView` unmasks in place).
   * Offered only while no frame of this push waits in `frames` before it, so the order stays the
   * wire's. False: it goes into `frames` as a {@link Frame}, and the bytes must be as they were.
   */
  takeFrame: (b0: number, view: DataView | undefined, chunk: Uint8Array, start: number, end: number, key: number) => boolean
  /**
   * A whole frame (first header byte `b0`, `length` bytes) that arrived over several chunks and
   * was kept in `parts` ({@link FrameParser.keepParts}), unmasked in place, offered before it is
   * joined. Same order rule as `takeFrame`. True: taken as parts (they are the taker's now, and
   * are never joined); false: joined into one buffer, it goes into `frames`.
   */
  takeParts?: (b0: number, parts: readonly Uint8Array[], length: number) => boolean
}

/** Default of {@link FrameParserOptions.maxFrameSize}. */
export const DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024

/** The frame being received when its payload spans chunks. */
export interface IncompleteFrame {
  /** One of {@link Opcode}. */
  readonly opcode: number
  /** This is the final fragment of its message. */
  readonly fin: boolean
  /** The first extension bit (permessage-deflate's "compressed"). */
  readonly rsv1: boolean
  /** The payload length the header declared. */
  readonly length: number
  /** Unmasked payload bytes received so far, in order. */
  readonly parts: readonly Uint8Array[]
  /** Bytes in `parts`. */
  readonly received: number
}

const MAX_HEADER = 14
const NO_HEADER = new Uint8Array(0)
/**
 * A split frame up to this long is copied straight into its final buffer from its first part,
 * unmasked part by part while each is in cache, instead of being held in parts (small ones
 * copied into a tail) and joined at the end: one copy per byte rather than up to two. Its
 * declared length is counted from the header on ({@link FrameParser.heldBytes}), and is no more
 * than one socket read holds.
 */
const EAGER_MAX = 64 * 1024
/**
 * Whether a split frame of `length` bytes, `received` of them arrived, goes into its final buffer
 * now: at once up to {@link EAGER_MAX}; a longer one once half of it has arrived, so a bare
 * header cannot make the parser allocate a large declared length and memory held stays within 2x
 * the bytes received (the rule of DESIGN "Limits"; {@link FrameParser.heldBytes} counts the
 * declared length for the budget). Plain arithmetic, not a shift: lengths pass 2^31 (a 32-bit
 * shift turned negative there and kept frames over 1 GiB in parts).
 */
export function goesDirect (length: number, received: number): boolean {
  return length <= EAGER_MAX || received * 2 >= length
}

interface Gathering extends IncompleteFrame {
  /** The payload so far: small parts copied out, so none pins the larger read it came in. */
  gatherer: Gatherer
  parts: Uint8Array[]
  received: number
  m0: number
  m1: number
  m2: number
  m3: number
  /** Bytes from the start already unmasked. The rest is unmasked on demand or when the frame completes. */
  unmasked: number
  /** The final buffer, once a large frame gathers straight into it (`parts` is then its filled prefix). */
  direct: Uint8Array | undefined
}

/** A data frame handed out in pieces ({@link FrameParserOptions.streamData}). */
interface Piece {
  /** Its first header byte. */
  b0: number
  length: number
  /** Payload bytes handed out so far: also where the masking key's cycle stands. */
  done: number
  /** The first piece (with the frame's opcode) is out: it goes at once, even empty, so the header is judged at once. */
  started: boolean
  m0: number
  m1: number
  m2: number
  m3: number
}

/** Parses a stream of frames from chunks of any size, down to one byte. */
export class FrameParser {
  private readonly masked: boolean
  private readonly maxFrameSize: number
  /** Payload lengths up to this take the small-frame path: a 7-bit length within maxFrameSize. */
  private readonly smallMax: number
  private readonly allowedRsv: number
  private readonly alloc: (size: number) => Uint8Array
  /**
   * A taker may take long split frames as their parts ({@link WholeFrameTaker.takeParts}): keep
   * them by reference (the gatherer's rule, gather.ts: small parts copied, memory within 2x) rather
   * than copying them into one buffer as they come. Set before each {@link FrameParser.push}.
   */
  keepParts = false

  /** Header bytes of a header split across chunks (at most 14). */
  private header: Uint8Array = NO_HEADER
  /** First header byte of the frame being gathered. */
  private currentB0 = 0
  private headerLength = 0

  /** The frame whose payload is being gathered, if any. */
  private current: Gathering | undefined
  private readonly streamData: boolean
  /** The data frame being handed out in pieces ({@link FrameParserOptions.streamData}), if any. */
  private piece: Piece | undefined

  /** A parser for frames sent to `options.role` (a server's parser requires masked frames, §5.1), within `maxFrameSize`. */
  constructor (options: FrameParserOptions) {
    this.masked = options.role === 'server'
    this.maxFrameSize = options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE
    this.allowedRsv = options.allowedReservedBits ?? 0
    this.alloc = options.alloc ?? newBytes
    this.streamData = options.streamData ?? false
    this.smallMax = Math.min(125, this.maxFrameSize)
  }

  /**
   * The frame whose payload has only partly arrived, with what has arrived unmasked, so callers
   * can check it early (e.g. UTF-8). Reading it costs an unmasking pass; {@link FrameParser.pending}
   * does not.
   */
  get incomplete (): IncompleteFrame | undefined {
    const cur = this.current
    if (cur !== undefined && this.masked && cur.unmasked < cur.received) unmaskFrom(cur)
    return cur
  }

  /** The same frame as {@link FrameParser.incomplete} (the same object), with its `parts` possibly still masked. */
  get pending (): Omit<IncompleteFrame, 'parts'> | undefined {
    return this.current
  }

  /** Bytes held across calls: a partial header plus any partial payload. */
  get bufferedBytes (): number {
    return this.headerLength + (this.current?.received ?? 0)
  }

  /**
   * Memory held or about to be, in bytes: a partial header, and for a frame still arriving the
   * larger of what holding its parts costs (copies' room, pinned reads, per-part overhead) and
   * the length its header declared. A budget that counts this refuses a large frame from its
   * header, before its bytes are read, rather than part-way through.
   */
  get heldBytes (): number {
    const cur = this.current
    return cur === undefined ? this.headerLength : MAX_HEADER + Math.max(cur.gatherer.held, cur.length)
  }

  /** Drop whatever is buffered (the connection failed: nothing more will be parsed). */
  discard (): void {
    this.current = undefined
    this.piece = undefined
    this.header = NO_HEADER
    this.headerLength = 0
  }

  /**
   * Feed the next chunk. Returns the frames it completed, appended to `frames` if given; throws
   * a {@link ProtocolError} on the first rule broken. Frames completed earlier in the same chunk
   * are then still in `frames`, so a caller can deliver them before failing (the messages before
   * a bad frame are the peer's). The chunk is unmasked in place. After a throw the parser must
   * not be used. A `taker` is offered each whole small frame first (see {@link WholeFrameTaker}).
   */
  push (chunk: Uint8Array, frames: Frame[] = [], taker?: WholeFrameTaker): Frame[] {
    let off = 0
    const len = chunk.length

    if (this.piece !== undefined) {
      off = this.nextPiece(chunk, 0, frames)
      if (off < 0) return frames
    }
    if (this.current !== undefined) {
      off = this.continuePayload(chunk, frames, 0, taker)
      if (off < 0) return frames
    }
    if (this.headerLength > 0) {
      off = this.continueHeader(chunk, off, frames)
      if (off < 0) return frames
    }

    // The fast path: headers and payloads read straight out of the chunk.
    const masked = this.masked
    const maskBit = masked ? 0x80 : 0
    const headerLen = masked ? 6 : 2
    const smallMax = this.smallMax
    const rsvRefused = 0x70 & ~this.allowedRsv
    const buffer = chunk.buffer
    const base = chunk.byteOffset
    // Made at the first small frame of this chunk that needs it, dropped with it (it must not pin the read).
    let view: DataView | undefined
    while (off < len) {
      const avail = len - off
      if (avail < 2) {
        this.stashHeader(chunk, off)
        return frames
      }
      const b0 = chunk[off]
      const b1 = chunk[off + 1]
      const len7 = b1 & 0x7f
      // A small frame whose first two bytes break no rule (each is checked in checkFirstBytes
      // below; any doubt takes that path, which throws the right error): a data opcode, or a
      // control opcode with FIN set; the mask bit as §5.1 wants; no reserved bit not negotiated.
      if (len7 <= smallMax && (b1 & 0x80) === maskBit && (b0 & rsvRefused) === 0 && isSmallOpcode(b0)) {
        const start = off + headerLen
        const end = start + len7
        if (end <= len) {
          off = end
          if (taker !== undefined && frames.length === 0) {
            // Offered still masked: an echo unmasks it as it copies it (§5.3's XOR, once).
            if (masked) {
              view ??= new DataView(buffer, base, len)
              if (taker.takeFrame(b0, view, chunk, start, end, view.getInt32(start - 4))) continue
            } else if (taker.takeFrame(b0, undefined, chunk, start, end, 0)) {
              continue
            }
          }
          if (masked && len7 > 0) {
            view ??= new DataView(buffer, base, len)
            maskInView(view, chunk, start, end, view.getInt32(start - 4))
          }
          // A plain view made directly: `subarray` would look up the chunk's species constructor
          // (a Node Buffer's is JavaScript, and cost a quarter of the time at 16 B per frame).
          frames.push(makeFrame(b0, new Uint8Array(buffer, base + start, len7)))
          continue
        }
      }
      const need = headerSize(b1)
      if (avail < need) {
        this.stashHeader(chunk, off)
        return frames
      }
      off = this.readFrame(chunk, off, need, frames)
      if (off < 0) return frames
    }
    return frames
  }

  /**
   * Read a complete header at `chunk[off..]`, then the payload, or as much of it as is there.
   * Returns the offset after the frame, or -1 when the chunk ended inside the payload.
   */
  private readFrame (chunk: Uint8Array, off: number, headerLen: number, frames: Frame[]): number {
    const b0 = chunk[off]
    const b1 = chunk[off + 1]
    const length = this.checkHeader(chunk, off, b0, b1)
    const start = off + headerLen
    let m0 = 0; let m1 = 0; let m2 = 0; let m3 = 0
    if (this.masked) {
      m0 = chunk[start - 4]; m1 = chunk[start - 3]; m2 = chunk[start - 2]; m3 = chunk[start - 1]
    }
    const end = start + length
    if (end <= chunk.length) {
      // A plain view made directly: `subarray` would look up the chunk's species constructor (a
      // Node Buffer's is JavaScript, and cost a quarter of the time at 16 B per frame).
      const payload = new Uint8Array(chunk.buffer, chunk.byteOffset + start, length)
      if (this.masked && length > 0) applyMask(payload, m0, m1, m2, m3)
      frames.push(makeFrame(b0, payload))
      return end
    }
    if (this.streamData && (b0 & 0x08) === 0) {
      this.piece = { b0, length, done: 0, started: false, m0, m1, m2, m3 }
      return this.nextPiece(chunk, start, frames)
    }
    // A frame split across chunks stays masked until it completes (or a caller asks for its
    // bytes): unmasking the gathered payload in one pass while it is hot in cache is faster.
    const part = chunk.subarray(start)
    this.current = startGathering(b0, length, m0, m1, m2, m3)
    if (part.length > 0) this.addPart(this.current, part)
    this.currentB0 = b0
    return -1
  }

  /** Validate the header at `buf[off..]` (all of it present) and return the payload length. */
  private checkHeader (buf: Uint8Array, off: number, b0: number, b1: number): number {
    this.checkFirstBytes(b0, b1)
    let length = b1 & 0x7f
    if (length === 126) {
      length = (buf[off + 2] << 8) | buf[off + 3]
      // §5.2: "the minimal number of bytes MUST be used to encode the length".
      if (length < 126) throw new ProtocolError('WS_ERR_INVALID_LENGTH')
    } else if (length === 127) {
      const hi = ((buf[off + 2] << 24) | (buf[off + 3] << 16) | (buf[off + 4] << 8) | buf[off + 5]) >>> 0
      // §5.2: "the most significant bit MUST be 0".
      if (hi >= 0x80000000) throw new ProtocolError('WS_ERR_LENGTH_TOP_BIT')
      const lo = ((buf[off + 6] << 24) | (buf[off + 7] << 16) | (buf[off + 8] << 8) | buf[off + 9]) >>> 0
      length = hi * 0x100000000 + lo
      if (length < 65536) throw new ProtocolError('WS_ERR_INVALID_LENGTH')
    }
    // A control frame is bounded by §5.5 (125 bytes), whatever the data limit: a peer's close must pass.
    if (length > this.maxFrameSize && (b0 & 0x08) === 0) throw new ProtocolError('WS_ERR_FRAME_TOO_BIG', `${length} > ${this.maxFrameSize}`)
    return length
  }

  /** Keep the start of a header that the chunk cut short. */
  private stashHeader (chunk: Uint8Array, off: number): void {
    const n = chunk.length - off
    // Made only when a header is split across chunks; most connections never need it.
    if (this.header === NO_HEADER) this.header = new Uint8Array(MAX_HEADER)
    this.header.set(chunk.subarray(off), 0)
    this.headerLength = n
    // Check what is there already, so a bad first byte fails now rather than later.
    if (n >= 2) this.checkPartialHeader()
  }

  /** Complete a split header with bytes from `chunk`. Returns the new offset, or -1 when done with the chunk. */
  private continueHeader (chunk: Uint8Array, off: number, frames: Frame[]): number {
    const header = this.header
    let have = this.headerLength
    // Take just enough bytes to know the header's size, then the rest of it.
    while (have < 2 && off < chunk.length) header[have++] = chunk[off++]
    if (have < 2) {
      this.headerLength = have
      return -1
    }
    const need = headerSize(header[1])
    while (have < need && off < chunk.length) header[have++] = chunk[off++]
    this.headerLength = have
    if (have < need) {
      this.checkPartialHeader()
      return -1
    }
    this.headerLength = 0
    // Re-read the header from the small buffer; its payload starts at `off` in the chunk.
    const b0 = header[0]
    const b1 = header[1]
    const length = this.checkHeader(header, 0, b0, b1)
    let m0 = 0; let m1 = 0; let m2 = 0; let m3 = 0
    if (this.masked) {
      m0 = header[need - 4]; m1 = header[need - 3]; m2 = header[need - 2]; m3 = header[need - 1]
    }
    if (this.streamData && (b0 & 0x08) === 0) {
      this.piece = { b0, length, done: 0, started: false, m0, m1, m2, m3 }
      // A frame with an empty payload comes out whole, as its one (empty, first) piece.
      return this.nextPiece(chunk, off, frames)
    }
    this.current = startGathering(b0, length, m0, m1, m2, m3)
    this.currentB0 = b0
    return this.continuePayload(chunk, frames, off)
  }

  /**
   * Hand out the piece of the streamed frame that `chunk[off..]` holds, unmasked in place.
   * Returns the offset after the frame once it is complete, or -1 when the chunk ran out first.
   */
  private nextPiece (chunk: Uint8Array, off: number, frames: Frame[]): number {
    const piece = this.piece!
    const want = piece.length - piece.done
    const take = Math.min(want, chunk.length - off)
    if (take === 0 && piece.started) return -1
    const payload = new Uint8Array(chunk.buffer, chunk.byteOffset + off, take)
    if (this.masked && take > 0) applyMask(payload, piece.m0, piece.m1, piece.m2, piece.m3, piece.done)
    const b0 = piece.b0
    const last = take === want
    // Pieces after the first continue the message; only the last keeps the frame's FIN.
    const opcode = piece.started ? Opcode.Continuation : b0 & 0x4f
    piece.started = true
    frames.push(makeFrame((last ? b0 & 0x80 : 0) | opcode, payload))
    piece.done += take
    if (!last) return -1
    this.piece = undefined
    return off + take
  }

  /** Payload bytes still to come of the frame being handed out in pieces (0 when none is). */
  get pieceRemaining (): number {
    const piece = this.piece
    return piece === undefined ? 0 : piece.length - piece.done
  }

  /** Validate the first two header bytes before the rest of the header has arrived. */
  private checkPartialHeader (): void {
    this.checkFirstBytes(this.header[0], this.header[1])
  }

  /** The rules the first two header bytes decide on their own. */
  private checkFirstBytes (b0: number, b1: number): void {
    // §5.2: "RSV1, RSV2, RSV3: MUST be 0 unless an extension is negotiated that defines meanings".
    if ((b0 & 0x70 & ~this.allowedRsv) !== 0) throw new ProtocolError('WS_ERR_UNEXPECTED_RSV')
    const opcode = b0 & 0x0f
    // §5.2: "If an unknown opcode is received, the receiving endpoint MUST _Fail the WebSocket Connection_."
    if (!isKnownOpcode(opcode)) throw new ProtocolError('WS_ERR_INVALID_OPCODE', String(opcode))
    // §5.1: a server MUST close on an unmasked frame; a client MUST close on a masked one.
    if (((b1 & 0x80) !== 0) !== this.masked) throw new ProtocolError(this.masked ? 'WS_ERR_EXPECTED_MASK' : 'WS_ERR_UNEXPECTED_MASK')
    if (isControlOpcode(opcode)) {
      // §5.5: "All control frames MUST have a payload length of 125 bytes or less and MUST NOT be fragmented."
      if ((b0 & 0x80) === 0) throw new ProtocolError('WS_ERR_FRAGMENTED_CONTROL')
      if ((b1 & 0x7f) > 125) throw new ProtocolError('WS_ERR_CONTROL_TOO_LONG')
    }
  }

  /**
   * The whole payload of a frame that arrived in parts, unmasked. Each part is copied and then
   * unmasked in place while it is still in cache: one pass over the result, not two.
   */
  private gather (cur: Gathering): Uint8Array {
    const parts = cur.parts
    const masked = this.masked && cur.unmasked < cur.length
    if (parts.length === 1) {
      const only = parts[0]
      if (masked) applyMask(only.subarray(cur.unmasked), cur.m0, cur.m1, cur.m2, cur.m3, cur.unmasked)
      return only
    }
    if (cur.length === 0) return new Uint8Array(0)
    const out = this.alloc(cur.length)
    copyParts(out, cur, masked)
    return out
  }

  /**
   * Add bytes from `chunk[off..]` to the frame being gathered. Returns the offset after the
   * frame once it is complete, or -1 when the chunk ran out first.
   */
  private continuePayload (chunk: Uint8Array, frames: Frame[], off = 0, taker?: WholeFrameTaker): number {
    const cur = this.current!
    const want = cur.length - cur.received
    const take = Math.min(want, chunk.length - off)
    if (take < want) {
      if (take > 0) this.addPart(cur, chunk.subarray(off, off + take))
      return -1
    }
    if (cur.direct !== undefined) {
      if (take > 0) copyIn(cur, chunk.subarray(off, off + take), this.masked)
      this.current = undefined
      frames.push(makeFrame(this.currentB0, cur.direct))
      return off + take
    }
    const b0 = this.currentB0
    if (taker?.takeParts !== undefined && frames.length === 0 && cur.parts.length > 0 && cur.length > EAGER_MAX) {
      // Offered as parts: the last one through the gatherer too, so a few bytes at the end of
      // a read do not pin all of it while the parts are held (an echo's write).
      if (take > 0) {
        cur.gatherer.append(chunk.subarray(off, off + take))
        cur.received += take
      }
      if (this.masked) unmaskFrom(cur)
      this.current = undefined
      if (taker.takeParts(b0, cur.parts, cur.length)) return off + take
      frames.push(makeFrame(b0, this.gather(cur)))
      return off + take
    }
    // The part that completes the frame is gathered now, not held: no need to copy it out first.
    if (take > 0) {
      cur.parts.push(chunk.subarray(off, off + take))
      cur.received += take
    }
    const payload = this.gather(cur)
    this.current = undefined
    frames.push(makeFrame(b0, payload))
    return off + take
  }

  /** Add a part that does not complete the frame: held by the gatherer, or copied into the final buffer. */
  private addPart (cur: Gathering, part: Uint8Array): void {
    if (cur.direct === undefined) {
      if (this.keepParts ? cur.length > EAGER_MAX : !goesDirect(cur.length, cur.received + part.length)) {
        cur.gatherer.append(part, cur.length - cur.received)
        cur.received += part.length
        return
      }
      // Large enough and far enough along: move what was gathered into the final buffer.
      // Each held part is copied and unmasked in one step (through the kernel: 2 copies of each
      // byte, not the 3 of a copy followed by unmasking in place).
      const out = this.alloc(cur.length)
      const pos = copyParts(out, cur, this.masked && cur.unmasked < cur.received)
      cur.unmasked = pos
      cur.direct = out
      cur.parts.length = 0
      cur.parts.push(out.subarray(0, pos))
    }
    copyIn(cur, part, this.masked)
  }
}

/**
 * Copy the parts of `cur` into `out` from its start, unmasking the bytes not yet unmasked when
 * `masked` (each part copied and unmasked while it is in cache). Returns the bytes copied.
 */
function copyParts (out: Uint8Array, cur: Gathering, masked: boolean): number {
  let pos = 0
  for (const part of cur.parts) {
    const end = pos + part.length
    if (masked && pos >= cur.unmasked) {
      copyUnmasked(out, pos, part, cur.m0, cur.m1, cur.m2, cur.m3, pos)
    } else {
      out.set(part, pos)
      if (masked && end > cur.unmasked) applyMask(out.subarray(cur.unmasked, end), cur.m0, cur.m1, cur.m2, cur.m3, cur.unmasked)
    }
    pos = end
  }
  return pos
}

/** Copy `part` into the final buffer after what it holds, and unmask it there while it is in cache. */
function copyIn (cur: Gathering, part: Uint8Array, masked: boolean): void {
  const out = cur.direct!
  const at = cur.received
  if (masked) copyUnmasked(out, at, part, cur.m0, cur.m1, cur.m2, cur.m3, at)
  else out.set(part, at)
  const end = at + part.length
  cur.received = cur.unmasked = end
  cur.parts[0] = out.subarray(0, end)
}

/** The default allocator: zero-filled, as plain JavaScript offers. */
function newBytes (size: number): Uint8Array {
  return new Uint8Array(size)
}

/**
 * Data opcodes 0-2 with or without FIN, control opcodes 8-10 with FIN (§5.5: control frames are
 * not fragmented): what a small frame's first byte may hold, reserved bits aside.
 */
function isSmallOpcode (b0: number): boolean {
  const opcode = b0 & 0x0f
  return opcode <= 2 || (opcode >= 8 && opcode <= 10 && (b0 & 0x80) !== 0)
}

/** Header size in bytes from the second header byte: 2, plus 2 or 8 of extended length, plus 4 of mask key. */
function headerSize (b1: number): number {
  const len7 = b1 & 0x7f
  return 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + ((b1 & 0x80) !== 0 ? 4 : 0)
}

function startGathering (b0: number, length: number, m0: number, m1: number, m2: number, m3: number): Gathering {
  const gatherer = new Gatherer()
  return { opcode: b0 & 0x0f, fin: (b0 & 0x80) !== 0, rsv1: (b0 & 0x40) !== 0, length, gatherer, parts: gatherer.parts, received: 0, m0, m1, m2, m3, unmasked: 0, direct: undefined }
}

/** Unmask the bytes of `cur` received since the last call, in place. */
function unmaskFrom (cur: Gathering): void {
  let pos = 0
  for (const part of cur.parts) {
    const end = pos + part.length
    if (end > cur.unmasked) {
      const from = cur.unmasked - pos
      applyMask(part.subarray(from), cur.m0, cur.m1, cur.m2, cur.m3, cur.unmasked)
      cur.unmasked = end
    }
    pos = end
  }
}


function makeFrame (b0: number, payload: Uint8Array): Frame {
  return {
    fin: (b0 & 0x80) !== 0,
    rsv1: (b0 & 0x40) !== 0,
    rsv2: (b0 & 0x20) !== 0,
    rsv3: (b0 & 0x10) !== 0,
    opcode: b0 & 0x0f,
    payload
  }
}

/**
 * The seam between the pure session and a per-message compression extension (RFC 7692): the
 * session decides which frames carry compressed data (RSV1, §6) and hands whole messages to a
 * {@link MessageCompression}; the extension (zlib, in the Node layer) does the rest. The session
 * never learns how compression works, so it stays free of `node:` imports.
 *
 * @packageDocumentation
 */

/**
 * What the session needs from a per-message compression extension. Both calls are synchronous:
 * the message is whole when it goes in, and whole when it comes out.
 */
export interface MessageCompression {
  /**
   * Inflate one received message whose first frame had RSV1 set (RFC 7692 §6.2). `parts` are its
   * compressed payloads in order (fragments, not yet joined). Must stop once the output passes
   * `maxSize` bytes and throw a `ProtocolError` `WS_ERR_MESSAGE_TOO_BIG` (1009); corrupt data
   * throws `WS_ERR_INVALID_COMPRESSED` (1007). Or return `undefined` to leave it for later (too
   * large to inflate now, say): the session then hands it out as a `compressed` event and
   * handles nothing received after it until `Session.decompressed()` brings its bytes.
   */
  decompress: (parts: readonly Uint8Array[], maxSize: number) => Uint8Array | undefined
  /**
   * Compress one message to send (§6.1), or return `undefined` to send it uncompressed (RSV1
   * clear), e.g. below a size threshold.
   */
  compress: (data: Uint8Array) => Uint8Array | undefined
  /** Memory the extension holds between messages (kept LZ77 windows, a message left for later), in bytes. */
  readonly heldBytes: number
}

/**
 * Close codes: RFC 6455 §7.4 and the IANA "WebSocket Close Code Number" registry.
 *
 * One table says what each code means and whether a peer may put it on the wire; the
 * predicate {@link isValidCloseCode} reads the table instead of doing arithmetic.
 *
 * @packageDocumentation
 */

/** Named close codes. */
export const CloseCode = {
  /** §7.4.1: the purpose for which the connection was established has been fulfilled. */
  Normal: 1000,
  /** §7.4.1: the endpoint is going away (server shutting down, page navigated away). */
  GoingAway: 1001,
  /** §7.4.1: the peer broke the protocol. */
  ProtocolError: 1002,
  /** §7.4.1: the endpoint received a type of data it cannot accept. */
  UnsupportedData: 1003,
  /** §7.4.1: reserved, meaning not yet defined. Never sent. */
  Reserved: 1004,
  /** §7.4.1: no status code was present in the close frame. Never sent. */
  NoStatusReceived: 1005,
  /** §7.4.1: the connection closed without a close frame. Never sent. */
  Abnormal: 1006,
  /** §7.4.1: a message's data was not consistent with its type (e.g. invalid UTF-8 in text). */
  InvalidPayload: 1007,
  /** §7.4.1: a message violates the endpoint's policy. */
  PolicyViolation: 1008,
  /** §7.4.1: a message is too big to process. */
  MessageTooBig: 1009,
  /** §7.4.1: the client expected the server to negotiate an extension. */
  MandatoryExtension: 1010,
  /** §7.4.1: the server met an unexpected condition. */
  InternalError: 1011,
  /** IANA: the service is restarting. */
  ServiceRestart: 1012,
  /** IANA: try again later. */
  TryAgainLater: 1013,
  /** IANA: a gateway or proxy received an invalid response from upstream. */
  BadGateway: 1014,
  /** §7.4.1: the TLS handshake failed. Never sent. */
  TlsHandshake: 1015
} as const

/** A close code named in {@link CloseCode}. */
export type CloseCode = typeof CloseCode[keyof typeof CloseCode]

interface CloseCodeInfo {
  readonly name: string
  /** May appear in a close frame on the wire. */
  readonly sendable: boolean
}

/** Every code in 1000–1015 with its meaning; codes not listed here below 3000 are invalid. */
export const CLOSE_CODES: ReadonlyMap<number, CloseCodeInfo> = new Map([
  [1000, { name: 'normal closure', sendable: true }],
  [1001, { name: 'going away', sendable: true }],
  [1002, { name: 'protocol error', sendable: true }],
  [1003, { name: 'unsupported data', sendable: true }],
  [1004, { name: 'reserved', sendable: false }],
  [1005, { name: 'no status received', sendable: false }],
  [1006, { name: 'abnormal closure', sendable: false }],
  [1007, { name: 'invalid payload data', sendable: true }],
  [1008, { name: 'policy violation', sendable: true }],
  [1009, { name: 'message too big', sendable: true }],
  [1010, { name: 'mandatory extension', sendable: true }],
  [1011, { name: 'internal error', sendable: true }],
  [1012, { name: 'service restart', sendable: true }],
  [1013, { name: 'try again later', sendable: true }],
  [1014, { name: 'bad gateway', sendable: true }],
  [1015, { name: 'TLS handshake', sendable: false }]
])

/**
 * May this code appear in a close frame? RFC 6455 §7.4.1–§7.4.2: 1000–1003 and 1007–1014 are
 * defined for the wire, 3000–3999 are registered with IANA for libraries and frameworks,
 * 4000–4999 are private; 1004–1006, 1015, everything else below 3000 and 5000+ are not.
 */
export function isValidCloseCode (code: number): boolean {
  if (code >= 3000 && code <= 4999) return Number.isInteger(code)
  return CLOSE_CODES.get(code)?.sendable === true
}

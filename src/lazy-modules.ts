/**
 * Node's TLS, HTTPS and HTTP/2 modules, loaded the first time wss:// or HTTP/2 is used: a ws://
 * server or client never holds their code (about 0.9 MB of V8 heap per process, measured with
 * Node 20: node:tls 490 KB, node:https 370 KB, node:http2 the rest).
 *
 * @packageDocumentation
 */

let https: typeof import('node:https') | undefined
let http2: typeof import('node:http2') | undefined

/** node:https, loaded once. */
export async function loadHttps (): Promise<typeof import('node:https')> {
  return (https ??= await import('node:https'))
}

/** node:https if it was loaded, else undefined. */
export function loadedHttps (): typeof import('node:https') | undefined {
  return https
}

/** node:http2, loaded once. */
export async function loadHttp2 (): Promise<typeof import('node:http2')> {
  return (http2 ??= await import('node:http2'))
}

/**
 * A TLS server (`tls.Server`, `https.Server`, an HTTP/2 secure server) told from a plain one
 * without loading node:tls: only TLS servers have `setSecureContext`.
 */
export function isTlsServer (server: object): boolean {
  return typeof (server as { setSecureContext?: unknown }).setSecureContext === 'function'
}
